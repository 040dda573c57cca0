//! What strict validation accepts but is almost certainly a mistake:
//! Cedar's validation warnings, and the project's own lints for policies
//! that can never apply and conditions that can never hold.
//!
//! Severity follows what the mistake costs. A forbid that can never apply,
//! a `when` branch of a forbid that can never match, or an `unless` branch
//! of a permit that can never match is a protection its author believes in
//! and that does not exist: an error, and the bundle is refused. Dead code
//! that can only make decisions stricter than written (a permit that never
//! applies, a forbid's exception that never excepts) and Cedar's other
//! warnings (confusable identifiers and strings) are warnings: reported,
//! never the reason for a refusal.
//!
//! A policy another one covers is a warning too: a permit or a forbid that
//! another of the same effect makes redundant, and a permit a forbid makes
//! dead (`shadowed`). So is each place a policy can error when evaluated
//! (overflow, a read through an entity that may be missing), found by
//! `can_error`.
//!
//! Conditions that can never hold are found with Cedar's own typechecker:
//! each `&&`/`||` operand of a policy's conditions that the typechecker
//! could find always false (a `has`, `is`, `==`, `in` or `!` test, or a
//! literal `false`) becomes a one-condition probe policy with the same
//! scope, and the probes are validated together; a probe Cedar calls
//! impossible is an operand that is false for every request the policy
//! could match. `resource has ownr` where no resource type declares `ownr`
//! is the typical one: Cedar types it `false` and then does not look at the
//! `resource.ownr` it guards, so the typo passes validation.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, Effect, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint,
    ResourceConstraint, Template, ValidationMode, ValidationResult, Validator,
};
use cedar_policy::{Schema, ValidationWarning};
use regex::Regex;
use serde_json::{Value, json};

use super::can_error::{self, MayError, Through, Why};
use crate::diagnostic::{Diagnostic, line_column};

/// How much a finding matters (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Severity {
    /// The bundle is refused.
    Error,
    /// Reported; the bundle loads.
    Warning,
}

/// One finding of the lints.
#[derive(Debug)]
pub(super) struct Finding {
    pub severity: Severity,
    pub diagnostic: Diagnostic,
}

/// Where the lints find a policy's text.
pub(super) struct Sources<'a, 's> {
    /// Policy or template id → (file, file text).
    pub origin: &'a HashMap<PolicyId, (&'s str, &'s str)>,
    /// `links.json` (path, text), where linked policies are reported.
    pub links: Option<(&'s str, &'s str)>,
    /// Where a finding no policy file holds is reported.
    pub schema_path: &'s str,
    /// The schema's text, for the types of what policies read.
    pub schema_text: &'s str,
}

/// The findings for `policies`, already strictly validated (`validation`)
/// against `schema`, in file and line order.
pub(super) fn lint(
    schema: &Schema,
    policies: &PolicySet,
    validation: &ValidationResult,
    sources: &Sources<'_, '_>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut never: HashMap<PolicyId, Never> = HashMap::new();
    for warning in validation.validation_warnings() {
        let id = warning.policy_id();
        match warning {
            ValidationWarning::ImpossiblePolicy(_) | ValidationWarning::InvalidActionApplication(_) => {
                let entry = never
                    .entry(id.clone())
                    .or_insert_with(|| Never { no_action_applies: false, at: sources.locate(id, warning) });
                entry.no_action_applies |= matches!(warning, ValidationWarning::InvalidActionApplication(_));
            }
            other => {
                let mut d = sources.locate(id, other);
                let named = format!("`{id}`");
                if !d.message.contains(&named) {
                    d.message = format!("policy {named}: {}", d.message);
                }
                findings.push(Finding { severity: Severity::Warning, diagnostic: d });
            }
        }
    }
    // Each static policy and template in Cedar's JSON form (EST), read by
    // the two lints that walk conditions (linked policies share their
    // template's conditions).
    let statics = policies.policies().filter(|p| p.is_static()).map(|p| (p.id(), p.to_json().ok(), true));
    let templates = policies.templates().map(|t| (t.id(), t.to_json().ok(), false));
    let ests: Vec<(&PolicyId, Value, bool)> =
        statics.chain(templates).filter_map(|(id, json, is_static)| Some((id, json?, is_static))).collect();
    let dead = dead_operands(schema, &ests, sources, policies);
    for (id, operands) in &dead {
        if never.contains_key(id) {
            continue;
        }
        let Some(effect) = effect_of(policies, id) else { continue };
        findings.extend(operands.iter().map(|operand| unreachable(id, effect, operand)));
    }
    for (id, at) in never {
        let Some(effect) = effect_of(policies, &id) else { continue };
        let dead_here = dead.get(&id).map(Vec::as_slice).unwrap_or_default();
        findings.push(never_applies(&id, effect, at, dead_here));
    }
    findings.extend(shadowed(policies, sources));
    findings.extend(errors_at_run_time(schema, policies, &ests, sources));
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            let d = &f.diagnostic;
            (d.file.clone(), d.line, d.column, d.message.clone())
        };
        key(a).cmp(&key(b))
    });
    findings
}

/// A policy Cedar found can never apply: where, and whether because no
/// action in its scope applies to the types its scope allows.
struct Never {
    no_action_applies: bool,
    at: Diagnostic,
}

/// An operand of a policy's `when` or `unless` that is always false.
#[derive(Debug)]
struct Dead {
    clause: Clause,
    /// The operand as Cedar prints it.
    text: String,
    /// For `x has a`: `a`.
    attribute: Option<String>,
    /// Where it is in the policy's file (where the policy starts, when the
    /// operand cannot be found in its text); the message is left empty.
    at: Diagnostic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    When,
    Unless,
}

fn effect_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Permit => "permit",
        Effect::Forbid => "forbid",
    }
}

fn effect_of(policies: &PolicySet, id: &PolicyId) -> Option<Effect> {
    policies.policy(id).map(Policy::effect).or_else(|| policies.template(id).map(Template::effect))
}

fn never_applies(id: &PolicyId, effect: Effect, never: Never, dead: &[Dead]) -> Finding {
    let severity = match effect {
        Effect::Forbid => Severity::Error,
        Effect::Permit => Severity::Warning,
    };
    let in_when: Vec<&Dead> = dead.iter().filter(|d| d.clause == Clause::When).collect();
    let why = if never.no_action_applies {
        "no action its scope names applies to a principal and a resource of the types its scope allows \
         (see the actions' `appliesTo` in the schema)"
            .to_owned()
    } else if in_when.is_empty() {
        "its conditions are false for every request the schema allows".to_owned()
    } else {
        let each: Vec<String> = in_when.iter().map(|d| always_false(d)).collect();
        each.join(", and ")
    };
    let mut diagnostic = in_when.first().map_or(never.at, |d| d.at.clone());
    diagnostic.message = format!("{} `{id}` can never apply: {why}", effect_name(effect));
    Finding { severity, diagnostic }
}

/// A dead operand of a policy that can still apply.
fn unreachable(id: &PolicyId, effect: Effect, dead: &Dead) -> Finding {
    // Dead code that would have denied is a missing protection.
    let severity = match (effect, dead.clause) {
        (Effect::Forbid, Clause::When) | (Effect::Permit, Clause::Unless) => Severity::Error,
        (Effect::Forbid, Clause::Unless) | (Effect::Permit, Clause::When) => Severity::Warning,
    };
    let consequence = match dead.clause {
        Clause::When => "that part of its `when` can never match",
        Clause::Unless => "that part of its `unless` never excepts anything",
    };
    let mut diagnostic = dead.at.clone();
    diagnostic.message = format!("in {} `{id}`, {}, so {consequence}", effect_name(effect), always_false(dead));
    Finding { severity, diagnostic }
}

/// `` `x has a` is always false (…)``, what makes an operand dead.
fn always_false(dead: &Dead) -> String {
    match &dead.attribute {
        _ if dead.text == "false" => "a condition is the literal `false`".to_owned(),
        Some(a) => format!("`{}` is always false (the schema declares no attribute `{a}` there: a typo?)", dead.text),
        None => format!("`{}` is always false", dead.text),
    }
}

impl Sources<'_, '_> {
    /// `warning` located in the file of policy `id`.
    fn locate(&self, id: &PolicyId, warning: &ValidationWarning) -> Diagnostic {
        match self.origin.get(id) {
            Some((file, text)) => Diagnostic::from_cedar(file, text, warning),
            None => match self.links {
                Some((file, text)) => at_text(file, text, &format!("\"{id}\""), warning.to_string()),
                None => Diagnostic::file(self.schema_path, warning),
            },
        }
    }
}

/// A diagnostic in `file` at the first occurrence of `needle` in `text`.
fn at_text(file: &str, text: &str, needle: &str, message: String) -> Diagnostic {
    let mut d = Diagnostic::file(file, message);
    if let Some(offset) = text.find(needle) {
        let (line, column) = line_column(text, offset);
        d.line = Some(line);
        d.column = Some(column);
    }
    d
}

/// EST operators whose result Cedar's typechecker can find always false.
const MAY_BE_FALSE: [&str; 5] = ["has", "is", "==", "in", "!"];

/// The always-false operands of every static policy and template, by id
/// (linked policies share their template's conditions).
fn dead_operands(
    schema: &Schema,
    ests: &[(&PolicyId, Value, bool)],
    sources: &Sources<'_, '_>,
    policies: &PolicySet,
) -> HashMap<PolicyId, Vec<Dead>> {
    let mut probes = PolicySet::new();
    let mut probed: HashMap<PolicyId, (PolicyId, Clause, Value, String)> = HashMap::new();
    for (id, json, is_static) in ests {
        let (id, is_static) = (*id, *is_static);
        for (clause, operand) in operands(json) {
            let probe_id = PolicyId::new(format!("warrant-probe-{}", probed.len()));
            let probe = json!({
                "effect": "permit",
                "principal": json.get("principal"),
                "action": json.get("action"),
                "resource": json.get("resource"),
                "conditions": [{"kind": "when", "body": operand}],
            });
            let rendered = if is_static {
                Policy::from_json(Some(probe_id.clone()), probe).ok().map(|p| (p.to_string(), probes.add(p).is_ok()))
            } else {
                Template::from_json(Some(probe_id.clone()), probe)
                    .ok()
                    .map(|t| (t.to_string(), probes.add_template(t).is_ok()))
            };
            if let Some((text, true)) = rendered {
                let text = condition_text(&text).unwrap_or(&text).to_owned();
                probed.insert(probe_id, (id.clone(), clause, operand.clone(), text));
            }
        }
    }
    if probed.is_empty() {
        return HashMap::new();
    }
    let validation = Validator::new(schema.clone()).validate(&probes, ValidationMode::Strict);
    let mut dead: HashMap<PolicyId, Vec<Dead>> = HashMap::new();
    for warning in validation.validation_warnings() {
        let probe_id = warning.policy_id();
        let is_impossible = matches!(warning, ValidationWarning::ImpossiblePolicy(_));
        let has_errors = validation.validation_errors().any(|e| e.policy_id() == probe_id);
        let Some((id, clause, operand, text)) = probed.get(probe_id) else { continue };
        if !is_impossible || has_errors {
            continue;
        }
        let attribute = operand.get("has").and_then(|h| h.get("attr")).and_then(Value::as_str).map(str::to_owned);
        let at = locate_operand(policies, id, text, sources);
        dead.entry(id.clone()).or_default().push(Dead { clause: *clause, text: text.clone(), attribute, at });
    }
    for operands in dead.values_mut() {
        operands.sort_by_key(|d| (d.at.line, d.at.column));
    }
    dead
}

/// Where operand `printed` of policy `id` is in its file: at the operand
/// when its text can be found, else where the policy starts, else nowhere
/// in particular.
fn locate_operand(policies: &PolicySet, id: &PolicyId, printed: &str, sources: &Sources<'_, '_>) -> Diagnostic {
    let Some((file, file_text)) = sources.origin.get(id) else {
        return Diagnostic::file(sources.schema_path, "");
    };
    let mut at = Diagnostic::file(file, "");
    let policy_text =
        policies.policy(id).and_then(Policy::to_cedar).or_else(|| policies.template(id).map(Template::to_cedar));
    if let Some(policy_text) = policy_text
        && let Some(start) = file_text.find(&policy_text)
    {
        let offset = start + find_operand(&policy_text, printed).unwrap_or(0);
        let (line, column) = line_column(file_text, offset);
        at.line = Some(line);
        at.column = Some(column);
    }
    at
}

/// The operands of the `&&`/`||` trees of a policy's conditions (in EST
/// form) that the typechecker could find always false, with their clause.
fn operands(policy: &Value) -> Vec<(Clause, &Value)> {
    let mut found = Vec::new();
    for condition in policy.get("conditions").and_then(Value::as_array).into_iter().flatten() {
        let clause = match condition.get("kind").and_then(Value::as_str) {
            Some("when") => Clause::When,
            Some("unless") => Clause::Unless,
            _ => continue,
        };
        if let Some(body) = condition.get("body") {
            collect(body, clause, &mut found);
        }
    }
    found
}

fn collect<'v>(expr: &'v Value, clause: Clause, found: &mut Vec<(Clause, &'v Value)>) {
    for op in ["&&", "||"] {
        if let Some(both) = expr.get(op) {
            for side in ["left", "right"] {
                if let Some(operand) = both.get(side) {
                    collect(operand, clause, found);
                }
            }
            return;
        }
    }
    let literal_false = expr.get("Value") == Some(&Value::Bool(false));
    if literal_false || MAY_BE_FALSE.iter().any(|op| expr.get(op).is_some()) {
        found.push((clause, expr));
    }
}

/// The condition of a one-condition probe as Cedar prints it:
/// `permit(…) when { <condition> };`.
fn condition_text(probe: &str) -> Option<&str> {
    let start = probe.find(" when { ")? + " when { ".len();
    let end = probe.rfind(" };")?;
    probe.get(start..end).map(str::trim)
}

/// Where, in `policy` (its source text), the operand Cedar prints as
/// `printed` starts: its tokens in order, with any spacing and parentheses
/// between them, identifiers and string literals interchangeable (`has a`
/// is `has "a"`).
fn find_operand(policy: &str, printed: &str) -> Option<usize> {
    static TOKEN: std::sync::LazyLock<Option<Regex>> = std::sync::LazyLock::new(|| {
        Regex::new(r#""(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|::|==|!=|<=|>=|&&|\|\||[^\s()]"#).ok()
    });
    let token = TOKEN.as_ref()?;
    let parts: Vec<String> = token
        .find_iter(printed)
        .map(|t| {
            let t = t.as_str();
            let bare = t.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(t);
            let is_name = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_name { format!("(?:{0}|\"{0}\")", regex::escape(bare)) } else { regex::escape(t) }
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Regex::new(&parts.join(r"[\s()]*")).ok()?.find(policy).map(|m| m.start())
}

/// Where a policy can error when evaluated (`can_error`), each a warning at
/// the expression that can.
fn errors_at_run_time(
    schema: &Schema,
    policies: &PolicySet,
    ests: &[(&PolicyId, Value, bool)],
    sources: &Sources<'_, '_>,
) -> Vec<Finding> {
    let conditions = ests.iter().filter_map(|(id, est, _)| Some((*id, effect_of(policies, id)?, est)));
    can_error::may_error(sources.schema_text, schema, policies, conditions)
        .into_iter()
        .filter_map(|found| {
            let printed = print(&found.expr)?;
            let mut diagnostic = locate_operand(policies, &found.id, &printed, sources);
            diagnostic.message = may_error_message(&found, &printed)?;
            Some(Finding { severity: Severity::Warning, diagnostic })
        })
        .collect()
}

fn may_error_message(found: &MayError, printed: &str) -> Option<String> {
    let (id, effect) = (&found.id, effect_name(found.effect));
    let then = match found.effect {
        Effect::Permit => "the permit then does not apply",
        Effect::Forbid => "the forbid then denies the request whatever its conditions (warrant fails closed)",
    };
    let why = match &found.why {
        Why::MayOverflow => format!("`{printed}` can overflow a 64-bit integer"),
        Why::Overflows => format!("`{printed}` always overflows a 64-bit integer"),
        Why::DatetimeOverflow => format!("`{printed}` can overflow the datetime range"),
        Why::Missing { entity, through, guard } => {
            let entity = print(entity)?;
            let which = match through {
                Through::Literal => "an entity the policy names",
                Through::Context => "an entity the request's context names",
                Through::Reference => "an entity an attribute refers to (Cedar does not check that references resolve)",
            };
            format!(
                "`{printed}` reads `{entity}`, {which}: it errors when the store has no such entity \
                 (guard it with `{entity}{guard} &&`, false for a missing entity)"
            )
        }
    };
    Some(format!("{effect} `{id}` can error at run time: {why}; {then}"))
}

/// An EST expression as Cedar prints it.
fn print(expr: &Value) -> Option<String> {
    let probe = json!({
        "effect": "permit",
        "principal": {"op": "All"},
        "action": {"op": "All"},
        "resource": {"op": "All"},
        "conditions": [{"kind": "when", "body": expr}],
    });
    let text = Policy::from_json(None, probe).ok()?.to_string();
    condition_text(&text).map(str::to_owned)
}

/// Covered policies located and listed one by one; the rest are counted.
const MAX_SHADOWED: usize = 100;

/// One static policy's scope and conditions, read once for the pairwise
/// comparison of [`shadowed`].
struct Shape<'p> {
    policy: &'p Policy,
    principal: PrincipalConstraint,
    action: ActionConstraint,
    resource: ResourceConstraint,
    /// The `when`/`unless` clauses, built only for pairs whose scopes
    /// already cover (building them costs more than the rest of the check).
    conditions: std::cell::OnceCell<Option<Vec<cedar_policy::pst::Clause>>>,
}

impl Shape<'_> {
    /// `None` when Cedar cannot give them (not expected): then this policy
    /// neither covers nor is covered by one with conditions.
    fn conditions(&self) -> Option<&[cedar_policy::pst::Clause]> {
        self.conditions.get_or_init(|| self.policy.to_pst().ok().map(|p| p.body().clauses().clone())).as_deref()
    }
}

/// Policies another policy covers: B covers A when B's scope contains A's
/// (syntactically: `principal` over anything, `principal in G` over
/// `principal == G` and `principal is T in G`, and so on) and B's
/// conditions are among A's, so B holds whenever A does. Then a permit A
/// under a permit B, or a forbid A under a forbid B, is redundant, and a
/// permit A under a forbid B can never allow. Of two identical policies
/// the later id is reported. Templates and linked policies are left out.
/// The comparison is syntactic: it finds no false covering, and misses
/// coverings only an entity store or a solver could show.
fn shadowed(policies: &PolicySet, sources: &Sources<'_, '_>) -> Vec<Finding> {
    let shapes: Vec<Shape<'_>> = policies
        .policies()
        .filter(|p| p.is_static())
        .map(|policy| Shape {
            policy,
            principal: policy.principal_constraint(),
            action: policy.action_constraint(),
            resource: policy.resource_constraint(),
            conditions: std::cell::OnceCell::new(),
        })
        .collect();
    // Only a policy scoped to the same `principal == U` (or to any
    // principal) can cover one scoped to U; likewise for the resource. So
    // policies are found by those two keys, not compared pairwise.
    let mut by_key: HashMap<(Option<&EntityUid>, Option<&EntityUid>), Vec<&Shape<'_>>> = HashMap::new();
    for shape in &shapes {
        by_key.entry((eq_principal(shape), eq_resource(shape))).or_default().push(shape);
    }
    let mut covered = Vec::new();
    for a in &shapes {
        let (p, r) = (eq_principal(a), eq_resource(a));
        let mut keys = vec![(None, None)];
        if p.is_some() {
            keys.push((p, None));
        }
        if r.is_some() {
            keys.push((None, r));
        }
        if p.is_some() && r.is_some() {
            keys.push((p, r));
        }
        let candidates = keys.iter().filter_map(|k| by_key.get(k)).flatten();
        let id_of = |shape: &Shape<'_>| shape.policy.id().to_string();
        let covering = |b: &&&Shape<'_>| {
            covers(b, a)
                // A permit says nothing about a forbid it covers.
                && !(a.policy.effect() == Effect::Forbid && b.policy.effect() == Effect::Permit)
                // Of two identical policies, only the later id is reported.
                && !(covers(a, b) && a.policy.effect() == b.policy.effect() && id_of(a) < id_of(b))
        };
        // A forbid that covers A says more than a permit that does.
        let Some(b) = candidates.filter(covering).min_by_key(|b| (b.policy.effect() != Effect::Forbid, id_of(b)))
        else {
            continue;
        };
        covered.push((a, b));
    }
    // Each finding is located in its file's text: a bundle of thousands of
    // duplicated grants gets the first ones located and a count of the rest.
    covered.sort_by_key(|(a, _)| a.policy.id().to_string());
    let rest = covered.len().saturating_sub(MAX_SHADOWED);
    let mut findings = Vec::new();
    for (a, b) in covered.into_iter().take(MAX_SHADOWED) {
        let (id, by) = (a.policy.id(), b.policy.id());
        let message = match (a.policy.effect(), b.policy.effect()) {
            (Effect::Permit, Effect::Forbid) => format!(
                "permit `{id}` can never allow: forbid `{by}` holds for every request it does (its scope contains this one's and its conditions are among these)"
            ),
            (effect, _) => format!(
                "{} `{id}` is redundant: {} `{by}` holds for every request it does (its scope contains this one's and its conditions are among these)",
                effect_name(effect),
                effect_name(effect)
            ),
        };
        let mut diagnostic = locate_operand(policies, id, "", sources);
        diagnostic.message = message;
        findings.push(Finding { severity: Severity::Warning, diagnostic });
    }
    if rest > 0 {
        let message = format!("{rest} more policies are covered by another (the first {MAX_SHADOWED} are listed)");
        findings
            .push(Finding { severity: Severity::Warning, diagnostic: Diagnostic::file(sources.schema_path, message) });
    }
    findings
}

/// `U` of a `principal == U` scope.
fn eq_principal<'s>(shape: &'s Shape<'_>) -> Option<&'s EntityUid> {
    match &shape.principal {
        PrincipalConstraint::Eq(u) => Some(u),
        _ => None,
    }
}

/// `R` of a `resource == R` scope.
fn eq_resource<'s>(shape: &'s Shape<'_>) -> Option<&'s EntityUid> {
    match &shape.resource {
        ResourceConstraint::Eq(u) => Some(u),
        _ => None,
    }
}

/// Whether `b` holds for every request `a` holds for (see [`shadowed`]).
fn covers(b: &Shape<'_>, a: &Shape<'_>) -> bool {
    action_covers(&b.action, &a.action)
        && b.policy.id() != a.policy.id()
        && entity_scope_covers(scope_of_principal(&b.principal), scope_of_principal(&a.principal))
        && entity_scope_covers(scope_of_resource(&b.resource), scope_of_resource(&a.resource))
        && (!b.policy.has_non_scope_constraint()
            || a.policy.has_non_scope_constraint()
                && b.conditions().zip(a.conditions()).is_some_and(|(bc, ac)| bc.iter().all(|c| ac.contains(c))))
}

/// A principal or resource scope, in one shape for both.
enum Scope<'c> {
    Any,
    Eq(&'c EntityUid),
    In(&'c EntityUid),
    Is(&'c EntityTypeName),
    IsIn(&'c EntityTypeName, &'c EntityUid),
}

fn scope_of_principal(c: &PrincipalConstraint) -> Scope<'_> {
    match c {
        PrincipalConstraint::Any => Scope::Any,
        PrincipalConstraint::Eq(u) => Scope::Eq(u),
        PrincipalConstraint::In(u) => Scope::In(u),
        PrincipalConstraint::Is(t) => Scope::Is(t),
        PrincipalConstraint::IsIn(t, u) => Scope::IsIn(t, u),
    }
}

fn scope_of_resource(c: &ResourceConstraint) -> Scope<'_> {
    match c {
        ResourceConstraint::Any => Scope::Any,
        ResourceConstraint::Eq(u) => Scope::Eq(u),
        ResourceConstraint::In(u) => Scope::In(u),
        ResourceConstraint::Is(t) => Scope::Is(t),
        ResourceConstraint::IsIn(t, u) => Scope::IsIn(t, u),
    }
}

/// Whether every entity scope `a` admits, `b` admits (`e in G` holds for
/// `G` itself).
fn entity_scope_covers(b: Scope<'_>, a: Scope<'_>) -> bool {
    match (b, a) {
        (Scope::Any, _) => true,
        (Scope::Eq(x), Scope::Eq(y)) => x == y,
        (Scope::In(g), Scope::In(h) | Scope::IsIn(_, h)) => g == h,
        (Scope::In(g), Scope::Eq(y)) => g == y,
        (Scope::Is(t), Scope::Is(u) | Scope::IsIn(u, _)) => t == u,
        (Scope::Is(t), Scope::Eq(y)) => t == y.type_name(),
        (Scope::IsIn(t, g), Scope::IsIn(u, h)) => t == u && g == h,
        (Scope::IsIn(t, g), Scope::Eq(y)) => t == y.type_name() && g == y,
        _ => false,
    }
}

fn action_covers(b: &ActionConstraint, a: &ActionConstraint) -> bool {
    match (b, a) {
        (ActionConstraint::Any, _) => true,
        (ActionConstraint::Eq(x), ActionConstraint::Eq(y)) => x == y,
        (ActionConstraint::In(list), ActionConstraint::Eq(y)) => list.contains(y),
        (ActionConstraint::In(list), ActionConstraint::In(sub)) => sub.iter().all(|u| list.contains(u)),
        _ => false,
    }
}
