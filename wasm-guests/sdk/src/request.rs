//! The request a rule decides, with its context parsed once.

use serde_json::{Map, Value};

/// A Cedar entity: its full type name (`Analytics::User`) and id (`u7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    type_name: String,
    id: String,
}

impl EntityRef {
    pub fn new(type_name: impl Into<String>, id: impl Into<String>) -> Self {
        Self { type_name: type_name.into(), id: id.into() }
    }

    /// The entity type, namespace included (`Analytics::Action`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The request being decided.
#[derive(Debug, Clone)]
pub struct Request {
    principal: EntityRef,
    action: EntityRef,
    resource: EntityRef,
    context: Map<String, Value>,
}

impl Request {
    /// A request whose `context_json` must be a JSON object.
    ///
    /// # Errors
    /// When `context_json` is not JSON, or is JSON but not an object.
    pub fn new(
        principal: EntityRef,
        action: EntityRef,
        resource: EntityRef,
        context_json: &str,
    ) -> Result<Self, serde_json::Error> {
        let context = serde_json::from_str::<Map<String, Value>>(context_json)?;
        Ok(Self { principal, action, resource, context })
    }

    pub fn principal(&self) -> &EntityRef {
        &self.principal
    }

    pub fn action(&self) -> &EntityRef {
        &self.action
    }

    pub fn resource(&self) -> &EntityRef {
        &self.resource
    }

    /// The action's name, without its type: `run_query` for
    /// `Analytics::Action::"run_query"`.
    pub fn action_id(&self) -> &str {
        self.action.id()
    }

    /// Whether the action's name is one of `actions`.
    pub fn action_in<S: AsRef<str>>(&self, actions: &[S]) -> bool {
        actions.iter().any(|a| a.as_ref() == self.action_id())
    }

    /// The whole context.
    pub fn context(&self) -> &Map<String, Value> {
        &self.context
    }

    /// The context value at `key`, with a Cedar extension value
    /// (`{"__extn": {"fn": "datetime", "arg": "2030-01-01"}}`) unwrapped to
    /// its argument. `None` when absent or `null`.
    pub fn context_value(&self, key: &str) -> Option<&Value> {
        let value = self.context.get(key)?;
        let value = value.get("__extn").and_then(|extn| extn.get("arg")).unwrap_or(value);
        (!value.is_null()).then_some(value)
    }

    /// The context string at `key` (extension values unwrapped). `None` when
    /// absent, `null` or not a string.
    pub fn context_str(&self, key: &str) -> Option<&str> {
        self.context_value(key)?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::request;
    use serde_json::json;

    #[test]
    fn context_must_be_an_object() {
        let e = || EntityRef::new("T", "x");
        assert!(Request::new(e(), e(), e(), "{}").is_ok());
        assert!(Request::new(e(), e(), e(), "[]").is_err());
        assert!(Request::new(e(), e(), e(), "").is_err());
        assert!(Request::new(e(), e(), e(), "{\"a\":").is_err());
    }

    #[test]
    fn context_str_unwraps_cedar_extension_values() {
        let req = request(
            "use_token",
            json!({
                "plain": "2030-01-01T00:00:00Z",
                "extn": {"__extn": {"fn": "datetime", "arg": "2030-01-01"}},
                "number": 3,
                "null": null,
            }),
        );
        assert_eq!(req.context_str("plain"), Some("2030-01-01T00:00:00Z"));
        assert_eq!(req.context_str("extn"), Some("2030-01-01"));
        assert_eq!(req.context_str("number"), None);
        assert_eq!(req.context_value("number"), Some(&json!(3)));
        assert_eq!(req.context_value("null"), None);
        assert_eq!(req.context_str("missing"), None);
    }

    #[test]
    fn action_matching_uses_the_action_name() {
        let req = Request::new(
            EntityRef::new("Analytics::User", "u7"),
            EntityRef::new("Analytics::Action", "run_query"),
            EntityRef::new("Analytics::Connection", "c1"),
            "{}",
        )
        .unwrap();
        assert_eq!(req.action_id(), "run_query");
        assert!(req.action_in(&["use_token", "run_query"]));
        assert!(!req.action_in::<&str>(&[]));
        assert_eq!(req.principal().type_name(), "Analytics::User");
        assert_eq!(req.resource().id(), "c1");
    }
}
