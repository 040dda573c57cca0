//! Answering a partial evaluation's residual from the candidate indexes.
//!
//! Type-aware partial evaluation (Cedar's `tpe`) with the searched-for entity
//! unknown leaves, per policy, an expression over that entity alone — for the
//! pack's `browse_schema`, `resource.granted_roles.containsAny(["analyst",
//! "PUBLIC"])`. [`Residuals::compile`] turns such an expression into the set
//! of candidates for which it is true and the set for which it errors,
//! following Cedar's evaluation order exactly (`&&`/`||` short-circuit, an
//! error anywhere else propagates). An expression outside the forms below
//! compiles to `None` and the search decides every candidate instead.
//!
//! Indexed forms, `v` the unknown variable: `v.a` (a boolean), `v.a == lit`,
//! `v.a != lit`, `v.a < n` (and `<=`, `>`, `>=`),
//! `v.a.contains(lit)`, `v.a.containsAny([lits])`, `v.a.containsAll([lits])`,
//! `v has a`, `v == E`, `v in E`, `v in [Es]`, `v is T`, `v is T in E`,
//! boolean literals, `!`, `&&`, `||`, `if … then … else …`, and any of those
//! over an attribute of an entity missing from the store (an error).

use cedar_policy::Entities;
use cedar_policy::pst::{
    ActionConstraint, BinaryOp, Clause, Effect, EntityUID, Expr, Literal, PrincipalConstraint, ResourceConstraint,
    UnaryOp, Var,
};

use crate::entities::candidates::{AttrIndex, Bits, Candidates, Key};

/// Where an expression is true and where it errors, over the candidates;
/// false everywhere else.
#[derive(Debug, Clone)]
pub(crate) struct Tri {
    pub(crate) t: Bits,
    pub(crate) e: Bits,
}

impl Tri {
    fn constant(len: usize, value: bool) -> Self {
        Self { t: if value { Bits::all(len) } else { Bits::none(len) }, e: Bits::none(len) }
    }

    fn error(len: usize) -> Self {
        Self { t: Bits::none(len), e: Bits::all(len) }
    }

    fn f(&self) -> Bits {
        self.t.union(&self.e).complement()
    }

    fn not(self) -> Self {
        Self { t: self.f(), e: self.e }
    }

    /// `a && b`: an error or false on the left stops there.
    fn and(self, b: Self) -> Self {
        let e = self.e.union(&self.t.intersect(&b.e));
        Self { t: self.t.intersect(&b.t), e }
    }

    /// `a || b`: an error or true on the left stops there.
    fn or(self, b: Self) -> Self {
        let f = self.f();
        Self { t: self.t.union(&f.intersect(&b.t)), e: self.e.union(&f.intersect(&b.e)) }
    }

    fn if_then_else(self, then: Self, otherwise: Self) -> Self {
        let f = self.f();
        Self {
            t: self.t.intersect(&then.t).union(&f.intersect(&otherwise.t)),
            e: self.e.union(&self.t.intersect(&then.e)).union(&f.intersect(&otherwise.e)),
        }
    }
}

/// Compiles residual expressions over `var` against one type's candidates.
pub(crate) struct Residuals<'a> {
    pub(crate) var: Var,
    pub(crate) candidates: &'a Candidates,
    /// The whole store: attribute and ancestor indexes are built from it, and
    /// it says which literal entities exist.
    pub(crate) entities: &'a Entities,
    /// The candidates' type, qualified.
    pub(crate) type_name: String,
}

impl Residuals<'_> {
    /// A residual policy's effect and where it is true / errors. `None` when
    /// its scope is constrained (TPE leaves it unconstrained) or a condition
    /// is outside the indexed forms.
    pub(crate) fn policy(&self, policy: &cedar_policy::pst::Policy) -> Option<(Effect, Tri)> {
        let body = policy.body();
        let unconstrained = matches!(body.principal, PrincipalConstraint::Any)
            && matches!(body.action, ActionConstraint::Any)
            && matches!(body.resource, ResourceConstraint::Any);
        if !unconstrained {
            return None;
        }
        // Cedar's condition is `when₁ && … && !unless₁ && …`, in order.
        let mut condition = Tri::constant(self.len(), true);
        for clause in body.clauses() {
            let part = match clause {
                Clause::When(e) => self.compile(e)?,
                Clause::Unless(e) => self.compile(e)?.not(),
            };
            condition = condition.and(part);
        }
        Some((body.effect, condition))
    }

    fn len(&self) -> usize {
        self.candidates.len()
    }

    pub(crate) fn compile(&self, expr: &Expr) -> Option<Tri> {
        let n = self.len();
        match expr {
            Expr::Literal(Literal::Bool(b)) => Some(Tri::constant(n, *b)),
            Expr::UnaryOp { op: UnaryOp::Not, expr } => Some(self.compile(expr)?.not()),
            Expr::BinaryOp { op: BinaryOp::And, left, right } => Some(self.compile(left)?.and(self.compile(right)?)),
            Expr::BinaryOp { op: BinaryOp::Or, left, right } => Some(self.compile(left)?.or(self.compile(right)?)),
            Expr::IfThenElse { cond, then_expr, else_expr } => {
                Some(self.compile(cond)?.if_then_else(self.compile(then_expr)?, self.compile(else_expr)?))
            }
            Expr::BinaryOp { left, right, .. } if self.missing_attr(left) || self.missing_attr(right) => {
                // Every operator but `&&` and `||` (matched above) evaluates
                // both operands: an error on either side is the answer.
                Some(Tri::error(n))
            }
            Expr::GetAttr { .. } => {
                // A boolean attribute used as a condition; anything else
                // there is a type error.
                let index = self.candidates.attr(self.var_attr(expr)?, self.entities);
                let t = Bits::from_positions(n, lookup(&index.scalars, &Key::Bool(true)));
                let f = Bits::from_positions(n, lookup(&index.scalars, &Key::Bool(false)));
                Some(Tri { e: t.union(&f).complement(), t })
            }
            Expr::BinaryOp {
                op: op @ (BinaryOp::Less | BinaryOp::LessEq | BinaryOp::Greater | BinaryOp::GreaterEq),
                left,
                right,
            } => self.compare(*op, left, right),
            Expr::BinaryOp { op: BinaryOp::Eq, left, right } => self.equals(left, right),
            Expr::BinaryOp { op: BinaryOp::NotEq, left, right } => Some(self.equals(left, right)?.not()),
            Expr::BinaryOp { op: BinaryOp::Contains, left, right } => {
                let attr = self.var_attr(left)?;
                let key = literal_key(right)?;
                Some(self.attr_tri(attr, |index| Bits::from_positions(n, lookup(&index.elements, &key))))
            }
            Expr::BinaryOp { op: BinaryOp::ContainsAny, left, right } => {
                let attr = self.var_attr(left)?;
                let keys = literal_keys(right)?;
                Some(self.attr_tri(attr, |index| {
                    keys.iter()
                        .fold(Bits::none(n), |acc, k| acc.union(&Bits::from_positions(n, lookup(&index.elements, k))))
                }))
            }
            Expr::BinaryOp { op: BinaryOp::ContainsAll, left, right } => {
                let attr = self.var_attr(left)?;
                let keys = literal_keys(right)?;
                Some(self.attr_tri(attr, |index| {
                    keys.iter().fold(Bits::from_positions(n, &index.present), |acc, k| {
                        acc.intersect(&Bits::from_positions(n, lookup(&index.elements, k)))
                    })
                }))
            }
            Expr::BinaryOp { op: BinaryOp::In, left, right } if self.is_var(left) => {
                let ancestors: Vec<&EntityUID> = match right.as_ref() {
                    Expr::Literal(Literal::EntityUID(e)) => vec![e],
                    Expr::Set(items) => items
                        .iter()
                        .map(|i| match i.as_ref() {
                            Expr::Literal(Literal::EntityUID(e)) => Some(e),
                            _ => None,
                        })
                        .collect::<Option<_>>()?,
                    _ => return None,
                };
                Some(self.within(&ancestors))
            }
            Expr::HasAttr { expr, attrs } if self.is_var(expr) && attrs.tail.is_empty() => {
                let index = self.candidates.attr(&attrs.head, self.entities);
                Some(Tri { t: Bits::from_positions(n, &index.present), e: Bits::none(n) })
            }
            Expr::Is { expr, entity_type, in_expr } if self.is_var(expr) => {
                let is = Tri::constant(n, entity_type.to_string() == self.type_name);
                match in_expr.as_deref() {
                    None => Some(is),
                    Some(Expr::Literal(Literal::EntityUID(e))) => Some(is.and(self.within(&[e]))),
                    Some(_) => None,
                }
            }
            _ => None,
        }
    }

    /// `left == right` with one side an attribute of the variable (or the
    /// variable itself) and the other a literal.
    fn equals(&self, left: &Expr, right: &Expr) -> Option<Tri> {
        let n = self.len();
        let (side, literal) = if literal_key(right).is_some() { (left, right) } else { (right, left) };
        let key = literal_key(literal)?;
        if self.is_var(side) {
            let mut t = Bits::none(n);
            if let Key::Entity(ty, id) = &key
                && *ty == self.type_name
                && let Some(p) = self.candidates.position_of(id)
            {
                t.insert(p);
            }
            return Some(Tri { t, e: Bits::none(n) });
        }
        let attr = self.var_attr(side)?;
        Some(self.attr_tri(attr, |index| Bits::from_positions(n, lookup(&index.scalars, &key))))
    }

    /// `v.attr < n` and the like (either side), over a `Long` attribute.
    fn compare(&self, op: BinaryOp, left: &Expr, right: &Expr) -> Option<Tri> {
        let n = self.len();
        let (attr, bound, op) = match (self.var_attr(left), literal_key(right), self.var_attr(right), literal_key(left))
        {
            (Some(attr), Some(Key::Long(bound)), _, _) => (attr, bound, op),
            // `n < v.attr` is `v.attr > n`.
            (_, _, Some(attr), Some(Key::Long(bound))) => (
                attr,
                bound,
                match op {
                    BinaryOp::Less => BinaryOp::Greater,
                    BinaryOp::LessEq => BinaryOp::GreaterEq,
                    BinaryOp::Greater => BinaryOp::Less,
                    _ => BinaryOp::LessEq,
                },
            ),
            _ => return None,
        };
        let holds = |value: i64| match op {
            BinaryOp::Less => value < bound,
            BinaryOp::LessEq => value <= bound,
            BinaryOp::Greater => value > bound,
            _ => value >= bound,
        };
        let index = self.candidates.attr(attr, self.entities);
        let present = Bits::from_positions(n, &index.present);
        let mut longs = Bits::none(n);
        let mut t = Bits::none(n);
        for (key, positions) in &index.scalars {
            if let Key::Long(value) = key {
                let these = Bits::from_positions(n, positions);
                longs = longs.union(&these);
                if holds(*value) {
                    t = t.union(&these);
                }
            }
        }
        // Comparing anything but a `Long` is a type error.
        Some(Tri { t, e: present.intersect(&longs).complement() })
    }

    /// An expression on `v.attr`: true where `f` says, an error where the
    /// candidate has no such attribute.
    fn attr_tri(&self, attr: &str, f: impl FnOnce(&AttrIndex) -> Bits) -> Tri {
        let index = self.candidates.attr(attr, self.entities);
        let present = Bits::from_positions(self.len(), &index.present);
        Tri { t: f(&index).intersect(&present), e: present.complement() }
    }

    /// `v in [ancestors]`: the candidates equal to or below any of them.
    fn within(&self, ancestors: &[&EntityUID]) -> Tri {
        let n = self.len();
        let mut t = Bits::none(n);
        for a in ancestors {
            let key = Key::Entity(a.ty.to_string(), a.eid.to_string());
            t = t.union(&Bits::from_positions(n, self.candidates.descendants_of(&key, self.entities)));
            if a.ty.to_string() == self.type_name
                && let Some(p) = self.candidates.position_of(&a.eid)
            {
                t.insert(p);
            }
        }
        Tri { t, e: Bits::none(n) }
    }

    fn is_var(&self, expr: &Expr) -> bool {
        matches!(expr, Expr::Var(v) if *v == self.var)
    }

    /// `v.attr` → `attr`.
    fn var_attr<'e>(&self, expr: &'e Expr) -> Option<&'e str> {
        match expr {
            Expr::GetAttr { expr, attr } if self.is_var(expr) => Some(attr.as_str()),
            _ => None,
        }
    }

    /// An attribute of a literal entity that is not in the store: reading it
    /// is an error for every candidate.
    fn missing_attr(&self, expr: &Expr) -> bool {
        match expr {
            Expr::GetAttr { expr, .. } => match expr.as_ref() {
                Expr::Literal(Literal::EntityUID(e)) => {
                    let missing = cedar_policy::EntityUid::from_type_name_and_id(
                        match e.ty.to_string().parse() {
                            Ok(t) => t,
                            Err(_) => return false,
                        },
                        cedar_policy::EntityId::new(e.eid.as_str()),
                    );
                    self.entities.get(&missing).is_none()
                }
                _ => false,
            },
            _ => false,
        }
    }
}

fn lookup<'m>(map: &'m std::collections::HashMap<Key, Vec<u32>>, key: &Key) -> &'m [u32] {
    map.get(key).map_or(&[], Vec::as_slice)
}

fn literal_key(expr: &Expr) -> Option<Key> {
    match expr {
        Expr::Literal(Literal::Bool(b)) => Some(Key::Bool(*b)),
        Expr::Literal(Literal::Long(n)) => Some(Key::Long(*n)),
        Expr::Literal(Literal::String(s)) => Some(Key::String(s.to_string())),
        Expr::Literal(Literal::EntityUID(e)) => Some(Key::Entity(e.ty.to_string(), e.eid.to_string())),
        _ => None,
    }
}

/// A set literal of literals.
fn literal_keys(expr: &Expr) -> Option<Vec<Key>> {
    match expr {
        Expr::Set(items) => items.iter().map(|i| literal_key(i)).collect(),
        _ => None,
    }
}
