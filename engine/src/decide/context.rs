//! A request's context on its way to Cedar.
//!
//! What each action's context looks like is read once from the schema:
//! which actions take a `now` the service fills in, and which context keys
//! are datetimes whose RFC 3339 spellings we normalise to Cedar's. Cedar's
//! `Schema` has no accessor for an action's context type, so this reads the
//! schema's JSON form (common types resolved by name).
//!
//! Per request, the context is completed from that shape and, in the
//! common case, built directly instead of through Cedar's JSON parser.

use std::collections::HashMap;

use cedar_policy::{CedarSchemaError, Context, RestrictedExpression, SchemaError, SchemaFragment};
use serde_json::{Map, Value};

use crate::time::{self, Timestamp};

/// Why the action contexts of a schema could not be read. The schema has
/// already parsed by then, so this is Cedar's own error, passed on as it is
/// (boxed: Cedar's errors are large and this path is cold).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextShapeError {
    #[error(transparent)]
    Parse(Box<CedarSchemaError>),
    #[error(transparent)]
    Json(Box<SchemaError>),
}

/// The context keys of one action that need the service's help.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextShape {
    /// The context declares a `now: datetime` attribute.
    pub takes_now: bool,
    /// Keys declared as `datetime` (including `now`).
    pub datetime_keys: Vec<String>,
    /// Every key declared, required or optional (what a caller may send).
    pub keys: Vec<String>,
}

/// Context shapes by the action's full uid (`Ns::Action::"id"`).
#[derive(Debug, Clone, Default)]
pub struct ContextShapes {
    by_action: HashMap<String, ContextShape>,
}

impl ContextShapes {
    pub(crate) fn from_cedarschema(text: &str) -> Result<Self, ContextShapeError> {
        let (fragment, _) =
            SchemaFragment::from_cedarschema_str(text).map_err(|e| ContextShapeError::Parse(Box::new(e)))?;
        let json = fragment.to_json_value().map_err(|e| ContextShapeError::Json(Box::new(e)))?;
        let mut by_action = HashMap::new();
        let Value::Object(namespaces) = json else {
            return Ok(Self::default());
        };
        for (ns, body) in &namespaces {
            let common = body.get("commonTypes").cloned().unwrap_or(Value::Null);
            let Some(Value::Object(actions)) = body.get("actions") else {
                continue;
            };
            for (action, def) in actions {
                let context = def.get("appliesTo").and_then(|a| a.get("context"));
                let shape = context.map(|ty| shape_of(ty, ns, &common, &namespaces, 0)).unwrap_or_default();
                let uid = if ns.is_empty() {
                    format!("Action::{}", quoted(action))
                } else {
                    format!("{ns}::Action::{}", quoted(action))
                };
                by_action.insert(uid, shape);
            }
        }
        Ok(Self { by_action })
    }

    /// The shape of `action`'s context (empty when the action declares none).
    pub fn get(&self, action: &cedar_policy::EntityUid) -> Option<&ContextShape> {
        self.by_action.get(&action.to_string())
    }
}

fn quoted(id: &str) -> String {
    serde_json::to_string(id).unwrap_or_else(|_| format!("\"{id}\""))
}

/// Common types can refer to each other; deeper than this is a cycle or abuse.
const MAX_TYPE_DEPTH: usize = 16;

fn shape_of(
    ty: &Value,
    ns: &str,
    common: &Value,
    namespaces: &serde_json::Map<String, Value>,
    depth: usize,
) -> ContextShape {
    if depth > MAX_TYPE_DEPTH {
        return ContextShape::default();
    }
    let kind = ty.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "Record" => {
            let mut shape = ContextShape::default();
            if let Some(Value::Object(attrs)) = ty.get("attributes") {
                for (name, attr) in attrs {
                    shape.keys.push(name.clone());
                    if is_datetime(attr, ns, common, namespaces, depth + 1) {
                        shape.datetime_keys.push(name.clone());
                        if name == "now" {
                            shape.takes_now = true;
                        }
                    }
                }
            }
            shape
        }
        _ => match resolve_common(ty, ns, common, namespaces) {
            Some(target) => shape_of(&target, ns, common, namespaces, depth + 1),
            None => ContextShape::default(),
        },
    }
}

fn is_datetime(
    ty: &Value,
    ns: &str,
    common: &Value,
    namespaces: &serde_json::Map<String, Value>,
    depth: usize,
) -> bool {
    if depth > MAX_TYPE_DEPTH {
        return false;
    }
    let kind = ty.get("type").and_then(Value::as_str).unwrap_or_default();
    let name = ty.get("name").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "Extension" => name == "datetime",
        "EntityOrCommon" if name == "datetime" || name == "__cedar::datetime" => true,
        _ => match resolve_common(ty, ns, common, namespaces) {
            Some(target) => is_datetime(&target, ns, common, namespaces, depth + 1),
            None => false,
        },
    }
}

/// Follows a reference to a common type (`{"type": "EntityOrCommon", "name": N}`
/// or `{"type": N}`) in this namespace, a qualified one, or the empty one.
fn resolve_common(ty: &Value, ns: &str, common: &Value, namespaces: &serde_json::Map<String, Value>) -> Option<Value> {
    let kind = ty.get("type").and_then(Value::as_str)?;
    let name = if kind == "EntityOrCommon" { ty.get("name").and_then(Value::as_str)? } else { kind };
    if let Some((qualifier, short)) = name.rsplit_once("::") {
        return namespaces.get(qualifier)?.get("commonTypes")?.get(short).cloned();
    }
    common
        .get(name)
        .cloned()
        .or_else(|| namespaces.get("")?.get("commonTypes")?.get(name).cloned())
        .filter(|_| !ns.is_empty() || common.get(name).is_some() || namespaces.contains_key(""))
}

/// A Cedar context built directly from JSON scalars: strings (as datetimes
/// for the schema's datetime keys), booleans and integers. `None` for
/// anything else (records, sets, entity references, extension values, other
/// numbers): the caller parses those through Cedar's JSON path.
///
/// The last few contexts built are kept per thread: most requests carry only
/// `now`, which concurrent requests share at millisecond precision, and
/// evaluating `datetime("…")` (Cedar's regex parse) is the larger part of
/// building one.
pub(super) fn fast_context(context: &Map<String, Value>, datetime_keys: Option<&[String]>) -> Option<Context> {
    const KEEP: usize = 4;
    type Built = (Map<String, Value>, Vec<String>, Context);
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<Built>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let datetime_keys = datetime_keys.unwrap_or_default();
    let hit = RECENT.with_borrow(|recent| {
        recent.iter().find(|(m, k, _)| m == context && k.as_slice() == datetime_keys).map(|(_, _, c)| c.clone())
    });
    if hit.is_some() {
        return hit;
    }
    let built = build_context(context, datetime_keys)?;
    RECENT.with_borrow_mut(|recent| {
        if recent.len() >= KEEP {
            recent.remove(0);
        }
        recent.push((context.clone(), datetime_keys.to_vec(), built.clone()));
    });
    Some(built)
}

fn build_context(context: &Map<String, Value>, datetime_keys: &[String]) -> Option<Context> {
    let mut pairs = Vec::with_capacity(context.len());
    for (key, value) in context {
        let expr = match value {
            Value::String(s) if datetime_keys.iter().any(|k| k == key) => datetime(s),
            Value::String(s) => RestrictedExpression::new_string(s.clone()),
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
            _ => return None,
        };
        pairs.push((key.clone(), expr));
    }
    Context::from_pairs(pairs).ok()
}

/// `datetime("text")`. cedar-policy's `RestrictedExpression::new_datetime`
/// parses the name `datetime` with its LALRPOP parser on every call (a lexer
/// and a lazy DFA built each time: about 7% of an HTTP decision in
/// profiles), so the last few per thread are kept: concurrent requests share
/// `now` at millisecond precision.
fn datetime(text: &str) -> RestrictedExpression {
    const KEEP: usize = 4;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(String, RestrictedExpression)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, expr)) = recent.iter().find(|(t, _)| t == text) {
            return expr.clone();
        }
        let expr = RestrictedExpression::new_datetime(text);
        if recent.len() >= KEEP {
            recent.remove(0);
        }
        recent.push((text.to_owned(), expr.clone()));
        expr
    })
}

/// `given` with `now` filled in (when the action takes one and the caller
/// left it out) and datetimes normalised to Cedar's spelling.
pub(super) fn complete_context(
    shape: Option<&ContextShape>,
    given: &Map<String, Value>,
    now: Timestamp,
) -> Map<String, Value> {
    let mut context = given.clone();
    if let Some(shape) = shape {
        if shape.takes_now && !context.contains_key("now") {
            context.insert("now".into(), Value::String(now.to_string()));
        }
        for key in &shape.datetime_keys {
            if let Some(Value::String(text)) = context.get(key)
                && let Some(normal) = time::normalize(text)
            {
                context.insert(key.clone(), Value::String(normal));
            }
        }
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_now_and_datetimes_through_common_types() {
        let schema = r#"
            namespace A {
                type Ctx = { now: datetime, when?: datetime, surface?: String };
                entity U;
                action a appliesTo { principal: U, resource: U, context: Ctx };
                action b appliesTo { principal: U, resource: U, context: { at: datetime } };
                action c appliesTo { principal: U, resource: U };
            }
        "#;
        let shapes = ContextShapes::from_cedarschema(schema).unwrap();
        let a = shapes.get(&r#"A::Action::"a""#.parse().unwrap()).unwrap();
        assert!(a.takes_now);
        let mut keys = a.datetime_keys.clone();
        keys.sort();
        assert_eq!(keys, vec!["now", "when"]);
        let b = shapes.get(&r#"A::Action::"b""#.parse().unwrap()).unwrap();
        assert!(!b.takes_now);
        assert_eq!(b.datetime_keys, vec!["at"]);
        let mut keys = a.keys.clone();
        keys.sort();
        assert_eq!(keys, vec!["now", "surface", "when"], "every key, datetime or not");
        assert_eq!(b.keys, vec!["at"]);
        let c = shapes.get(&r#"A::Action::"c""#.parse().unwrap()).unwrap();
        assert_eq!(c, &ContextShape::default());
    }
}
