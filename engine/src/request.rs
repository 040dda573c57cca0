//! A request as clients pose it, before any name is resolved, and why a
//! bundle may refuse one. Deciding and searching both read these, so they
//! live apart from either.

use serde_json::{Map, Value};

/// An entity named in a request, with optional attributes to merge over the
/// stored entity of the same id.
#[derive(Debug, Clone, Default)]
pub struct EntityRef {
    pub type_name: String,
    pub id: String,
    pub properties: Option<Map<String, Value>>,
}

/// A request as clients pose it, before any name is resolved.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub principal: EntityRef,
    pub action: String,
    /// AuthZEN `action.properties`: they reach Cedar as the context's
    /// `action` record, where the action's context declares one.
    pub action_properties: Option<Map<String, Value>>,
    pub resource: EntityRef,
    pub context: Map<String, Value>,
    /// Extra Cedar entities JSON documents seen only by this request.
    pub entities: Vec<Value>,
    /// What to do with context keys and properties the schema does not declare.
    pub undeclared: Undeclared,
}

/// What to do with a context key, property or action property the schema
/// does not declare (`engine/src/decide/declared.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Undeclared {
    /// Drop it, and name it in the decision (AuthZEN: a PDP ignores what it
    /// does not understand).
    #[default]
    Ignore,
    /// Refuse the request, naming it (`--strict-context`).
    Refuse,
}

/// A request the bundle cannot answer because the request is wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("unknown entity type `{name}`")]
    UnknownEntityType { field: &'static str, name: String },
    #[error("unknown action `{name}`")]
    UnknownAction { name: String },
    #[error("invalid context: {0}")]
    InvalidContext(String),
    #[error("invalid entity: {message}")]
    InvalidEntity { field: &'static str, message: String },
    #[error("`{name}` is not declared by the schema (undeclared names are refused: `--strict-context`)")]
    Undeclared { name: String },
    #[error("{0}")]
    NotApplicable(String),
}

impl RequestError {
    /// Stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownEntityType { .. } => "unknown_entity_type",
            Self::UnknownAction { .. } => "unknown_action",
            Self::InvalidContext(_) => "invalid_context",
            Self::InvalidEntity { .. } => "invalid_entity",
            Self::Undeclared { .. } => "undeclared",
            Self::NotApplicable(_) => "invalid_request",
        }
    }

    /// The request field at fault (AuthZEN names), when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::UnknownEntityType { field, .. } | Self::InvalidEntity { field, .. } => Some(field),
            // The undeclared name itself: `context.ip`, `subject.properties.dept`.
            Self::Undeclared { name } => Some(name),
            Self::UnknownAction { .. } => Some("action"),
            Self::InvalidContext(_) => Some("context"),
            Self::NotApplicable(_) => None,
        }
    }
}
