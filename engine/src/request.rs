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
    pub resource: EntityRef,
    pub context: Map<String, Value>,
    /// Extra Cedar entities JSON documents seen only by this request.
    pub entities: Vec<Value>,
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
            Self::NotApplicable(_) => "invalid_request",
        }
    }

    /// The request field at fault (AuthZEN names), when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::UnknownEntityType { field, .. } | Self::InvalidEntity { field, .. } => Some(field),
            Self::UnknownAction { .. } => Some("action"),
            Self::InvalidContext(_) => Some("context"),
            Self::NotApplicable(_) => None,
        }
    }
}
