//! Where a policy that strict validation accepts can still error when it
//! is evaluated.
//!
//! Cedar's typechecker is proved sound (cedar-spec, `type_of_is_sound`): a
//! validated expression evaluates to a value of its type, or fails in one
//! of three ways. An entity it reads an attribute or tag of is missing from
//! the store; an extension function rejects its input; 64-bit arithmetic
//! overflows. This module finds the places each can happen, by walking each
//! static policy's and template's conditions (their EST) with the types the
//! schema gives the request's principal, resource and context:
//!
//! - `+`, `-`, `*` and unary `-`, unless every operand is a literal and the
//!   result fits (a literal overflow is reported as certain);
//! - (extension constructors such as `ip(…)` cannot fail: strict
//!   validation takes only literals there, and checks them);
//! - `offset`, `durationSince` and `toDate`, which overflow at the ends of
//!   the datetime range;
//! - an attribute or tag read through an entity that is not the request's
//!   own principal, resource or action: an entity literal
//!   (`Team::"eng".lead`), an entity the context names (`context.owner.team`),
//!   or, in a forbid, an entity another entity's attribute refers to
//!   (`resource.project.locked`; Cedar does not check that references
//!   resolve).
//!
//! A read guarded by `has` (or `hasTag`) on the same entity is not reported:
//! `has` is false for a missing entity, so `resource.project has locked &&
//! resource.project.locked` cannot error.
//!
//! Left out on purpose: reads of the request's principal and resource (when
//! one is missing from the store every policy reading it errors; the
//! decision reports it as missing, see `warrant eval`), and, in a permit,
//! reads through another entity's attribute: an error there leaves the
//! permit out, which is what a permit over a dangling reference should do,
//! and the pack relies on it.
//!
//! In warrant an error never allows: a permit that errors does not apply,
//! and a forbid that errors denies the request, whatever its conditions
//! (`decide/mod.rs`). So each finding is a place where a request can be
//! denied that its author meant to allow: a warning.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use cedar_policy::{Effect, PolicyId, PolicySet, RequestEnv, Schema};
use serde_json::{Map, Value};

/// One place a policy can error at run time.
#[derive(Debug)]
pub(super) struct MayError {
    /// The static policy or template.
    pub id: PolicyId,
    pub effect: Effect,
    /// The expression that can error, in EST form (the lints print and
    /// locate it).
    pub expr: Value,
    /// Why it can error.
    pub why: Why,
}

/// Why an expression can error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    /// Arithmetic on a value not known when the policy is written.
    MayOverflow,
    /// Arithmetic on literals whose result does not fit in 64 bits.
    Overflows,
    /// `offset`, `durationSince`, `toDate`.
    DatetimeOverflow,
    /// An attribute or tag read through an entity that may be missing.
    /// `guard` is what to write after the entity to guard the read: ` has
    /// a` or `.hasTag(…)`.
    Missing { entity: Value, through: Through, guard: String },
}

/// How the entity whose attribute is read was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Through {
    /// An entity literal in the policy.
    Literal,
    /// An entity the request's context names.
    Context,
    /// An entity an attribute of a stored entity refers to.
    Reference,
}

/// Every place a policy can error at run time, in policy id order.
/// `conditions` holds each static policy and template of `policies` with
/// its effect and EST; `schema_text` is the bundle's `.cedarschema`,
/// `schema` the same, parsed. The schema's types are read only when a
/// finding depends on them (most policies need none).
pub(super) fn may_error<'p>(
    schema_text: &str,
    schema: &Schema,
    policies: &PolicySet,
    conditions: impl Iterator<Item = (&'p PolicyId, Effect, &'p Value)>,
) -> Vec<MayError> {
    let types: OnceCell<Types> = OnceCell::new();
    let read_types = || {
        types.get_or_init(|| {
            cedar_policy::schema_str_to_json_with_resolved_types(schema_text)
                .map(|(json, _)| Types::new(&json))
                .unwrap_or_default()
        })
    };
    let mut found = Vec::new();
    for (id, effect, est) in conditions {
        let mut walk = Walk {
            types: &read_types,
            request: Request { id, schema, policies, env: OnceCell::new() },
            effect,
            found: Vec::new(),
            seen: HashSet::new(),
        };
        for condition in est.get("conditions").and_then(Value::as_array).into_iter().flatten() {
            if let Some(body) = condition.get("body") {
                walk.visit(body, &Guards::default(), false);
            }
        }
        found.extend(walk.found.into_iter().map(|(expr, why)| MayError { id: id.clone(), effect, expr, why }));
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// The request a policy can be asked about, read from the schema when
/// first needed.
struct Request<'a> {
    id: &'a PolicyId,
    schema: &'a Schema,
    policies: &'a PolicySet,
    env: OnceCell<Env>,
}

impl Request<'_> {
    fn env(&self) -> &Env {
        self.env.get_or_init(|| {
            let envs: Vec<RequestEnv> = match self.policies.policy(self.id) {
                Some(p) => p.get_valid_request_envs(self.schema).collect(),
                None => self
                    .policies
                    .template(self.id)
                    .map(|t| t.get_valid_request_envs(self.schema).collect())
                    .unwrap_or_default(),
            };
            let mut env = Env::default();
            for e in &envs {
                env.principal.insert(e.principal().to_string());
                env.resource.insert(e.resource().to_string());
                env.actions.push(e.action().to_string());
            }
            env.actions.sort();
            env.actions.dedup();
            env
        })
    }
}

/// What the schema says of the request of a policy: the types its
/// principal and resource can have, and the actions it can be asked for
/// (whose contexts give the context's type).
#[derive(Default)]
struct Env {
    principal: BTreeSet<String>,
    resource: BTreeSet<String>,
    actions: Vec<String>,
}

/// The type of an expression, as far as the walk needs it.
#[derive(Debug, Clone)]
enum Ty<'s> {
    /// An entity of one of these types.
    Entity(BTreeSet<String>),
    /// A record with these attributes (a union: any of the maps).
    Record(Vec<&'s Map<String, Value>>),
    Long,
    /// Anything else, or not known.
    Other,
}

impl<'s> Ty<'s> {
    fn merge(self, other: Ty<'s>) -> Ty<'s> {
        match (self, other) {
            (Ty::Entity(mut a), Ty::Entity(b)) => {
                a.extend(b);
                Ty::Entity(a)
            }
            (Ty::Record(mut a), Ty::Record(b)) => {
                a.extend(b);
                Ty::Record(a)
            }
            (Ty::Long, Ty::Long) => Ty::Long,
            _ => Ty::Other,
        }
    }
}

/// The schema, with common types resolved, read for the walk.
#[derive(Default)]
struct Types {
    /// Entity type → what it declares.
    entities: HashMap<String, EntityType>,
    /// Qualified common type name → its definition.
    common: HashMap<String, Value>,
    /// Action uid (`NS::Action::"a"`) → its context's type.
    contexts: HashMap<String, Value>,
}

/// An entity type's attributes and its tags' type, as the schema declares
/// them.
struct EntityType {
    attributes: Option<Map<String, Value>>,
    tags: Option<Value>,
}

impl Types {
    fn new(json: &Value) -> Self {
        let mut types = Types::default();
        let Some(namespaces) = json.as_object() else { return types };
        for (ns, body) in namespaces {
            let qualified = |name: &str| if ns.is_empty() { name.to_owned() } else { format!("{ns}::{name}") };
            for (name, def) in body.get("commonTypes").and_then(Value::as_object).into_iter().flatten() {
                types.common.insert(qualified(name), def.clone());
            }
            for (name, def) in body.get("entityTypes").and_then(Value::as_object).into_iter().flatten() {
                let attributes = def.get("shape").and_then(|s| s.get("attributes")).and_then(Value::as_object);
                types.entities.insert(
                    qualified(name),
                    EntityType { attributes: attributes.cloned(), tags: def.get("tags").cloned() },
                );
            }
            for (name, def) in body.get("actions").and_then(Value::as_object).into_iter().flatten() {
                if let Some(context) = def.get("appliesTo").and_then(|a| a.get("context")) {
                    let uid = qualified(&format!("Action::{}", Value::String(name.clone())));
                    types.contexts.insert(uid, context.clone());
                }
            }
        }
        types
    }

    /// The context's type, for a request of any of `actions`.
    fn context(&self, actions: &[String]) -> Ty<'_> {
        let each = actions.iter().map(|a| self.contexts.get(a).map_or(Ty::Other, |ty| self.resolve(ty, 0)));
        each.reduce(Ty::merge).unwrap_or(Ty::Other)
    }

    /// The type a schema type expression stands for.
    fn resolve<'s>(&'s self, ty: &'s Value, depth: usize) -> Ty<'s> {
        let Some(name) = ty.get("type").and_then(Value::as_str) else { return Ty::Other };
        match name.strip_prefix("__cedar::").unwrap_or(name) {
            "Entity" => {
                ty.get("name").and_then(Value::as_str).map_or(Ty::Other, |n| Ty::Entity(BTreeSet::from([n.to_owned()])))
            }
            "Record" => ty.get("attributes").and_then(Value::as_object).map_or(Ty::Other, |a| Ty::Record(vec![a])),
            "Long" => Ty::Long,
            "String" | "Bool" | "Set" | "Extension" | "ipaddr" | "decimal" | "datetime" | "duration" => Ty::Other,
            common if depth < 16 => self.common.get(common).map_or(Ty::Other, |def| self.resolve(def, depth + 1)),
            _ => Ty::Other,
        }
    }

    /// The type of attribute `attr` of a value of type `of`.
    fn attribute<'s>(&'s self, of: &Ty<'s>, attr: &str) -> Ty<'s> {
        let declared: Vec<&'s Value> = match of {
            Ty::Entity(names) => names
                .iter()
                .filter_map(|n| self.entities.get(n).and_then(|t| t.attributes.as_ref()))
                .filter_map(|attrs| attrs.get(attr))
                .collect(),
            Ty::Record(maps) => maps.iter().filter_map(|m| m.get(attr)).collect(),
            Ty::Long | Ty::Other => Vec::new(),
        };
        declared.into_iter().map(|ty| self.resolve(ty, 0)).reduce(Ty::merge).unwrap_or(Ty::Other)
    }

    /// The type of the tags of an entity of type `of`.
    fn tags<'s>(&'s self, of: &Ty<'s>) -> Ty<'s> {
        let Ty::Entity(names) = of else { return Ty::Other };
        names
            .iter()
            .filter_map(|n| self.entities.get(n).and_then(|t| t.tags.as_ref()))
            .map(|ty| self.resolve(ty, 0))
            .reduce(Ty::merge)
            .unwrap_or(Ty::Other)
    }
}

/// What holds where an expression is evaluated, because of the `&&`, `||`
/// or `if` around it: `left has attr` (attr `Some`) and
/// `left.hasTag(key)` (the key's EST in `tag`) facts.
#[derive(Default, Clone)]
struct Guards<'v> {
    has: Vec<(&'v Value, String)>,
    tags: Vec<(&'v Value, &'v Value)>,
}

impl<'v> Guards<'v> {
    fn with(&self, more: Guards<'v>) -> Guards<'v> {
        let mut all = self.clone();
        all.has.extend(more.has);
        all.tags.extend(more.tags);
        all
    }

    /// What holds when `expr` is true.
    fn when_true(expr: &'v Value) -> Guards<'v> {
        let mut g = Guards::default();
        if let Some(both) = expr.get("&&") {
            for side in ["left", "right"] {
                if let Some(e) = both.get(side) {
                    g = g.with(Guards::when_true(e));
                }
            }
        } else if let Some(has) = expr.get("has")
            && let Some(left) = has.get("left")
        {
            match has.get("attr") {
                Some(Value::String(a)) => g.has.push((left, a.clone())),
                // `e has a.b` holds `e has a`; the deeper steps read `e.a`,
                // an expression the EST does not hold to compare against.
                Some(Value::Array(path)) => {
                    if let Some(Value::String(a)) = path.first() {
                        g.has.push((left, a.clone()));
                    }
                }
                _ => {}
            }
        } else if let Some(has) = expr.get("hasTag")
            && let (Some(left), Some(key)) = (has.get("left"), has.get("right"))
        {
            g.tags.push((left, key));
        } else if let Some(not) = expr.get("!").and_then(|n| n.get("arg")) {
            g = Guards::when_false(not);
        }
        g
    }

    /// What holds when `expr` is false.
    fn when_false(expr: &'v Value) -> Guards<'v> {
        if let Some(either) = expr.get("||") {
            let mut g = Guards::default();
            for side in ["left", "right"] {
                if let Some(e) = either.get(side) {
                    g = g.with(Guards::when_false(e));
                }
            }
            g
        } else if let Some(not) = expr.get("!").and_then(|n| n.get("arg")) {
            Guards::when_true(not)
        } else {
            Guards::default()
        }
    }

    fn has(&self, left: &Value, attr: &str) -> bool {
        self.has.iter().any(|(l, a)| a == attr && *l == left)
    }

    fn has_tag(&self, left: &Value, key: &Value) -> bool {
        self.tags.iter().any(|(l, k)| *l == left && *k == key)
    }
}

/// The extension constructors (whose arguments strict validation requires
/// to be literals).
const CONSTRUCTORS: [&str; 4] = ["ip", "decimal", "datetime", "duration"];

/// The datetime methods that overflow at the ends of the range.
const DATETIME_ARITHMETIC: [&str; 3] = ["offset", "durationSince", "toDate"];

struct Walk<'t, F> {
    /// The schema's types, read on first use.
    types: &'t F,
    request: Request<'t>,
    effect: Effect,
    found: Vec<(Value, Why)>,
    /// Findings already made for this policy, as `why`+expression text, so
    /// an expression written twice is reported once.
    seen: HashSet<String>,
}

impl<'t, F: Fn() -> &'t Types> Walk<'t, F> {
    fn report(&mut self, expr: &Value, why: Why) {
        if self.seen.insert(format!("{why:?}{expr}")) {
            self.found.push((expr.clone(), why));
        }
    }

    /// Visits `expr` under `guards`; `in_arithmetic` is set under an
    /// arithmetic operator already reported (its operands are not reported
    /// again).
    fn visit<'v>(&mut self, expr: &'v Value, guards: &Guards<'v>, in_arithmetic: bool) {
        let Some(object) = expr.as_object() else { return };
        let Some((op, body)) = object.iter().next() else { return };
        let side = |name: &str| body.get(name);
        match op.as_str() {
            "Value" | "Var" | "Slot" | "Unknown" => {}
            "&&" => {
                if let (Some(l), Some(r)) = (side("left"), side("right")) {
                    self.visit(l, guards, false);
                    self.visit(r, &guards.with(Guards::when_true(l)), false);
                }
            }
            "||" => {
                if let (Some(l), Some(r)) = (side("left"), side("right")) {
                    self.visit(l, guards, false);
                    self.visit(r, &guards.with(Guards::when_false(l)), false);
                }
            }
            "if-then-else" => {
                if let (Some(c), Some(t), Some(e)) = (side("if"), side("then"), side("else")) {
                    self.visit(c, guards, false);
                    self.visit(t, &guards.with(Guards::when_true(c)), false);
                    self.visit(e, &guards.with(Guards::when_false(c)), false);
                }
            }
            "+" | "-" | "*" => {
                let (Some(l), Some(r)) = (side("left"), side("right")) else { return };
                if !in_arithmetic {
                    match fold(expr) {
                        Some(None) => self.report(expr, Why::Overflows),
                        Some(Some(_)) => {}
                        None => self.report(expr, Why::MayOverflow),
                    }
                }
                self.visit(l, guards, true);
                self.visit(r, guards, true);
            }
            "neg" => {
                let Some(arg) = side("arg") else { return };
                if !in_arithmetic && fold(expr).is_none() {
                    self.report(expr, Why::MayOverflow);
                }
                self.visit(arg, guards, true);
            }
            "." | "getTag" => {
                let Some(left) = side("left") else { return };
                self.visit(left, guards, false);
                let guarded = match (op.as_str(), side("attr").and_then(Value::as_str), side("right")) {
                    (".", Some(attr), _) => guards.has(left, attr),
                    ("getTag", _, Some(key)) => {
                        self.visit(key, guards, false);
                        guards.has_tag(left, key)
                    }
                    _ => true,
                };
                if !guarded && let Some(through) = self.may_be_missing(left) {
                    let guard = match (op.as_str(), side("attr").and_then(Value::as_str)) {
                        (".", Some(attr)) => format!(" has {attr}"),
                        _ => ".hasTag(…)".to_owned(),
                    };
                    self.report(expr, Why::Missing { entity: left.clone(), through, guard });
                }
            }
            "Set" => {
                for e in body.as_array().into_iter().flatten() {
                    self.visit(e, guards, false);
                }
            }
            "Record" => {
                for e in body.as_object().into_iter().flat_map(Map::values) {
                    self.visit(e, guards, false);
                }
            }
            "has" | "is" | "like" | "!" | "isEmpty" | "==" | "!=" | "in" | "<" | "<=" | ">" | ">=" | "contains"
            | "containsAll" | "containsAny" | "hasTag" => {
                for name in ["left", "right", "arg", "in"] {
                    if let Some(e) = side(name) {
                        self.visit(e, guards, false);
                    }
                }
            }
            function => {
                let args: &'v [Value] = body.as_array().map_or(&[], Vec::as_slice);
                if DATETIME_ARITHMETIC.contains(&function) && !args.iter().all(is_literal_call) {
                    self.report(expr, Why::DatetimeOverflow);
                }
                for arg in args {
                    self.visit(arg, guards, false);
                }
            }
        }
    }

    /// How the entity `expr` stands for was reached, when reading its
    /// attributes can find it missing and the finding is reported (see the
    /// module documentation); `None` for the request's own entities,
    /// non-entities and permits' reads through stored references.
    fn may_be_missing(&self, expr: &Value) -> Option<Through> {
        if expr.get("Var").is_some() {
            return None;
        }
        if expr.get("Value").is_some_and(|v| v.get("__entity").is_some()) {
            return Some(Through::Literal);
        }
        let through = match root(expr) {
            Some("context") => Through::Context,
            _ if self.effect == Effect::Forbid => Through::Reference,
            _ => return None,
        };
        matches!(self.ty(expr), Ty::Entity(_)).then_some(through)
    }

    fn ty(&self, expr: &Value) -> Ty<'t> {
        let types: &'t Types = (self.types)();
        let Some((op, body)) = expr.as_object().and_then(|o| o.iter().next()) else { return Ty::Other };
        match op.as_str() {
            "Var" => match body.as_str() {
                Some("principal") => Ty::Entity(self.request.env().principal.clone()),
                Some("resource") => Ty::Entity(self.request.env().resource.clone()),
                Some("context") => types.context(&self.request.env().actions),
                _ => Ty::Other,
            },
            "Value" => match body {
                Value::Number(_) => Ty::Long,
                _ => match body.get("__entity").and_then(|e| e.get("type")).and_then(Value::as_str) {
                    Some(t) => Ty::Entity(BTreeSet::from([t.to_owned()])),
                    None => Ty::Other,
                },
            },
            "." => match (body.get("left"), body.get("attr").and_then(Value::as_str)) {
                (Some(left), Some(attr)) => types.attribute(&self.ty(left), attr),
                _ => Ty::Other,
            },
            "getTag" => body.get("left").map_or(Ty::Other, |left| types.tags(&self.ty(left))),
            "if-then-else" => match (body.get("then"), body.get("else")) {
                (Some(t), Some(e)) => self.ty(t).merge(self.ty(e)),
                _ => Ty::Other,
            },
            "+" | "-" | "*" | "neg" => Ty::Long,
            _ => Ty::Other,
        }
    }
}

/// The variable an attribute chain starts from (`context` for
/// `context.a.b`).
fn root(expr: &Value) -> Option<&str> {
    match expr.get(".").and_then(|d| d.get("left")) {
        Some(left) => root(left),
        None => expr.get("Var").and_then(Value::as_str),
    }
}

/// A literal, or an extension call on literals only (`duration("1h")`).
fn is_literal_call(expr: &Value) -> bool {
    if expr.get("Value").is_some() {
        return true;
    }
    match expr.as_object().and_then(|o| o.iter().next()) {
        Some((op, Value::Array(args))) if CONSTRUCTORS.contains(&op.as_str()) => args.iter().all(is_literal_call),
        _ => false,
    }
}

/// The value of an arithmetic expression over literals: `Some(Some(n))`,
/// `Some(None)` when it overflows, `None` when an operand is not a literal.
fn fold(expr: &Value) -> Option<Option<i64>> {
    if let Some(n) = expr.get("Value") {
        return n.as_i64().map(Some);
    }
    let (op, body) = expr.as_object()?.iter().next()?;
    if op == "neg" {
        return Some(fold(body.get("arg")?)?.and_then(i64::checked_neg));
    }
    let l = fold(body.get("left")?)?;
    let r = fold(body.get("right")?)?;
    let (Some(l), Some(r)) = (l, r) else { return Some(None) };
    Some(match op.as_str() {
        "+" => l.checked_add(r),
        "-" => l.checked_sub(r),
        "*" => l.checked_mul(r),
        _ => return None,
    })
}
