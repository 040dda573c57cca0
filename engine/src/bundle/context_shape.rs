//! What each action's context looks like, read once from the schema: which
//! actions take a `now` the service fills in, and which context keys are
//! datetimes whose RFC 3339 spellings we normalise to Cedar's.
//!
//! Cedar's `Schema` has no accessor for an action's context type, so this
//! reads the schema's JSON form (common types resolved by name).

use std::collections::HashMap;

use cedar_policy::SchemaFragment;
use serde_json::Value;

/// The context keys of one action that need the service's help.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextShape {
    /// The context declares a `now: datetime` attribute.
    pub takes_now: bool,
    /// Keys declared as `datetime` (including `now`).
    pub datetime_keys: Vec<String>,
}

/// Context shapes by the action's full uid (`Ns::Action::"id"`).
#[derive(Debug, Clone, Default)]
pub struct ContextShapes {
    by_action: HashMap<String, ContextShape>,
}

impl ContextShapes {
    pub(crate) fn from_cedarschema(text: &str) -> Result<Self, String> {
        let (fragment, _) = SchemaFragment::from_cedarschema_str(text).map_err(|e| e.to_string())?;
        let json = fragment.to_json_value().map_err(|e| e.to_string())?;
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
        let c = shapes.get(&r#"A::Action::"c""#.parse().unwrap()).unwrap();
        assert_eq!(c, &ContextShape::default());
    }
}
