//! What the schema declares that a request may fill in beyond ids: each
//! action's context keys (which are datetimes, whether it takes a `now`,
//! and the keys of its `action` record, where AuthZEN `action.properties`
//! go), and each entity type's attributes (what `properties` may set).
//!
//! AuthZEN tells PDPs to ignore what they do not understand: a context key,
//! property or action property the schema does not declare is dropped before
//! Cedar sees it and named in the decision (`Decision::ignored`), or, when
//! the operator asks for it ([`Undeclared::Refuse`], `--strict-context`),
//! refused with a 400 naming it.
//!
//! Cedar's `Schema` has no accessor for an action's context type or an
//! entity type's attributes, so this reads the schema's JSON form (common
//! types resolved by name), once per bundle.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;

use cedar_policy::{CedarSchemaError, EntityId, EntityTypeName, EntityUid, SchemaError, SchemaFragment};
use serde_json::{Map, Value};

use crate::request::Undeclared;

/// The context key that carries an action's AuthZEN `properties`.
pub const ACTION_PROPERTIES_KEY: &str = "action";

/// Why the declarations of a schema could not be read. The schema has
/// already parsed by then, so this is Cedar's own error, passed on as it is
/// (boxed: Cedar's errors are large and this path is cold).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeclaredError {
    #[error(transparent)]
    Parse(Box<CedarSchemaError>),
    #[error(transparent)]
    Json(Box<SchemaError>),
}

/// The context keys of one action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextShape {
    /// The context declares a `now: datetime` attribute.
    pub takes_now: bool,
    /// Keys declared as `datetime` (including `now`).
    pub datetime_keys: Vec<String>,
    /// Every key declared, required or optional (what a caller may send).
    pub keys: Vec<String>,
    /// The attributes of the context's `action` record, when it declares
    /// one: the action properties a caller may send.
    pub action_keys: Option<Vec<String>>,
}

/// Everything above, for every action and entity type of a schema.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// By the action's uid (`Ns::Action::"id"`), looked up as it is: a
    /// decision asks twice, and formatting the uid to text each time was
    /// measurable.
    contexts: HashMap<EntityUid, ContextShape>,
    /// Attribute names by qualified entity type (`Ns::Type`).
    attributes: HashMap<String, Vec<String>>,
    /// Enumerated entity types (`entity Stage enum ["draft", "live"]`),
    /// whose ids request validation checks one by one.
    enums: HashSet<EntityTypeName>,
}

impl Declared {
    pub(crate) fn from_cedarschema(text: &str) -> Result<Self, DeclaredError> {
        let (fragment, _) =
            SchemaFragment::from_cedarschema_str(text).map_err(|e| DeclaredError::Parse(Box::new(e)))?;
        let json = fragment.to_json_value().map_err(|e| DeclaredError::Json(Box::new(e)))?;
        let mut declared = Self::default();
        let Value::Object(namespaces) = json else {
            return Ok(declared);
        };
        for (ns, body) in &namespaces {
            let types = Types { ns, common: body.get("commonTypes").unwrap_or(&Value::Null), namespaces: &namespaces };
            let qualified = |name: &str| if ns.is_empty() { name.to_owned() } else { format!("{ns}::{name}") };
            if let Some(Value::Object(actions)) = body.get("actions") {
                for (action, def) in actions {
                    let context = def.get("appliesTo").and_then(|a| a.get("context"));
                    let shape = context.map(|ty| types.context_shape(ty)).unwrap_or_default();
                    if let Ok(ty) = EntityTypeName::from_str(&qualified("Action")) {
                        declared.contexts.insert(EntityUid::from_type_name_and_id(ty, EntityId::new(action)), shape);
                    }
                }
            }
            if let Some(Value::Object(entity_types)) = body.get("entityTypes") {
                for (name, def) in entity_types {
                    let attributes = def.get("shape").and_then(|s| types.record_keys(s, 0)).unwrap_or_default();
                    if def.get("enum").is_some()
                        && let Ok(ty) = EntityTypeName::from_str(&qualified(name))
                    {
                        declared.enums.insert(ty);
                    }
                    declared.attributes.insert(qualified(name), attributes);
                }
            }
        }
        Ok(declared)
    }

    /// The shape of `action`'s context (empty when the action declares none).
    pub fn context(&self, action: &EntityUid) -> Option<&ContextShape> {
        self.contexts.get(action)
    }

    /// Whether `ty` is an enumerated entity type.
    pub fn is_enum(&self, ty: &EntityTypeName) -> bool {
        self.enums.contains(ty)
    }

    /// The attributes `ty` declares (empty for a type without any).
    pub fn attributes(&self, ty: &EntityTypeName) -> &[String] {
        self.attributes.get(&ty.to_string()).map_or(&[], Vec::as_slice)
    }
}

/// `given` less the names `declared` lacks. Each name dropped is added to
/// `ignored` as `prefix.name`; under [`Undeclared::Refuse`] the first one is
/// the error instead (as `prefix.name`).
pub(crate) fn keep_declared<'a>(
    given: &'a Map<String, Value>,
    declared: &[String],
    prefix: &str,
    undeclared: Undeclared,
    ignored: &mut Vec<String>,
) -> Result<Cow<'a, Map<String, Value>>, String> {
    let is_declared = |key: &String| declared.iter().any(|d| d == key);
    if given.keys().all(is_declared) {
        return Ok(Cow::Borrowed(given));
    }
    let mut kept = Map::with_capacity(given.len());
    for (key, value) in given {
        if is_declared(key) {
            kept.insert(key.clone(), value.clone());
        } else if undeclared == Undeclared::Refuse {
            return Err(format!("{prefix}.{key}"));
        } else {
            ignored.push(format!("{prefix}.{key}"));
        }
    }
    Ok(Cow::Owned(kept))
}

/// Common types can refer to each other; deeper than this is a cycle or abuse.
const MAX_TYPE_DEPTH: usize = 16;

/// Type references in one namespace of a schema's JSON form.
struct Types<'a> {
    ns: &'a str,
    common: &'a Value,
    namespaces: &'a Map<String, Value>,
}

impl Types<'_> {
    fn context_shape(&self, ty: &Value) -> ContextShape {
        let mut shape = ContextShape::default();
        let Some((attrs, depth)) = self.record(ty, 0) else { return shape };
        for (name, attr) in &attrs {
            shape.keys.push(name.clone());
            if self.is_datetime(attr, depth + 1) {
                shape.datetime_keys.push(name.clone());
                if name == "now" {
                    shape.takes_now = true;
                }
            }
            if name == ACTION_PROPERTIES_KEY {
                shape.action_keys = self.record_keys(attr, depth + 1);
            }
        }
        shape
    }

    /// The attribute names of a record type (through common types).
    fn record_keys(&self, ty: &Value, depth: usize) -> Option<Vec<String>> {
        self.record(ty, depth).map(|(attrs, _)| attrs.keys().cloned().collect())
    }

    /// The attributes of a record type, and the depth they were found at.
    fn record(&self, ty: &Value, depth: usize) -> Option<(Map<String, Value>, usize)> {
        if depth > MAX_TYPE_DEPTH {
            return None;
        }
        if ty.get("type").and_then(Value::as_str) == Some("Record") {
            let attrs = ty.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default();
            return Some((attrs, depth));
        }
        self.record(&self.resolve_common(ty)?, depth + 1)
    }

    fn is_datetime(&self, ty: &Value, depth: usize) -> bool {
        if depth > MAX_TYPE_DEPTH {
            return false;
        }
        let kind = ty.get("type").and_then(Value::as_str).unwrap_or_default();
        let name = ty.get("name").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "Extension" => name == "datetime",
            "EntityOrCommon" if name == "datetime" || name == "__cedar::datetime" => true,
            _ => self.resolve_common(ty).is_some_and(|target| self.is_datetime(&target, depth + 1)),
        }
    }

    /// Follows a reference to a common type (`{"type": "EntityOrCommon", "name": N}`
    /// or `{"type": N}`) in this namespace, a qualified one, or the empty one.
    fn resolve_common(&self, ty: &Value) -> Option<Value> {
        let kind = ty.get("type").and_then(Value::as_str)?;
        let name = if kind == "EntityOrCommon" { ty.get("name").and_then(Value::as_str)? } else { kind };
        if let Some((qualifier, short)) = name.rsplit_once("::") {
            return self.namespaces.get(qualifier)?.get("commonTypes")?.get(short).cloned();
        }
        self.common
            .get(name)
            .cloned()
            .or_else(|| self.namespaces.get("")?.get("commonTypes")?.get(name).cloned())
            .filter(|_| !self.ns.is_empty() || self.common.get(name).is_some() || self.namespaces.contains_key(""))
    }
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
        let declared = Declared::from_cedarschema(schema).unwrap();
        let a = declared.context(&r#"A::Action::"a""#.parse().unwrap()).unwrap();
        assert!(a.takes_now);
        let mut keys = a.datetime_keys.clone();
        keys.sort();
        assert_eq!(keys, vec!["now", "when"]);
        let b = declared.context(&r#"A::Action::"b""#.parse().unwrap()).unwrap();
        assert!(!b.takes_now);
        assert_eq!(b.datetime_keys, vec!["at"]);
        let mut keys = a.keys.clone();
        keys.sort();
        assert_eq!(keys, vec!["now", "surface", "when"], "every key, datetime or not");
        assert_eq!(b.keys, vec!["at"]);
        let c = declared.context(&r#"A::Action::"c""#.parse().unwrap()).unwrap();
        assert_eq!(c, &ContextShape::default());
    }

    #[test]
    fn finds_entity_attributes_and_the_action_record() {
        let schema = r#"
            type Props = { soft?: Bool, reason?: String };
            namespace A {
                entity U = { role?: String, level: Long };
                entity R = { status: String };
                entity G;
                action del appliesTo { principal: U, resource: R, context: { action?: Props, ip?: String } };
            }
        "#;
        let declared = Declared::from_cedarschema(schema).unwrap();
        let names = |ty: &str| {
            let mut names = declared.attributes(&ty.parse().unwrap()).to_vec();
            names.sort();
            names
        };
        assert_eq!(names("A::U"), ["level", "role"]);
        assert_eq!(names("A::R"), ["status"]);
        assert!(names("A::G").is_empty());
        let del = declared.context(&r#"A::Action::"del""#.parse().unwrap()).unwrap();
        let mut action_keys = del.action_keys.clone().unwrap();
        action_keys.sort();
        assert_eq!(action_keys, ["reason", "soft"]);
    }

    #[test]
    fn undeclared_names_are_dropped_and_named_or_refused() {
        let given: Map<String, Value> = serde_json::from_str(r#"{"a": 1, "b": 2, "c": 3}"#).unwrap();
        let declared = ["a".to_owned(), "c".to_owned()];
        let mut ignored = Vec::new();
        let kept = keep_declared(&given, &declared, "context", Undeclared::Ignore, &mut ignored).unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(ignored, ["context.b"]);
        let refused = keep_declared(&given, &declared, "context", Undeclared::Refuse, &mut Vec::new());
        assert_eq!(refused.unwrap_err(), "context.b");
        let all = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert!(matches!(keep_declared(&given, &all, "x", Undeclared::Refuse, &mut ignored), Ok(Cow::Borrowed(_))));
    }
}
