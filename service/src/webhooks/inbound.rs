//! What a verified inbound delivery does to the token store.
//!
//! Accepted payload (Standard Webhooks' `{type, timestamp?, data}` shape;
//! other top-level and `data` fields are ignored):
//!
//! ```json
//! {"type": "token.revoked",      "data": {"token_id": "t1", "owner": "ann", "connection": "snow"}}
//! {"type": "token.refreshed",    "data": {"token_id": "t1", "owner": "ann", "connection": "snow",
//!                                         "expires_at": "2030-01-01T00:00:00Z", "role"?: "ANALYST"}}
//! {"type": "user.deprovisioned", "data": {"owner": "ann", "connection"?: "snow"}}
//! ```
//!
//! `user.deprovisioned` revokes every token of `owner` (on `connection` only,
//! if given). Events about an unknown token register it, as token events do:
//! a revoke is never lost because the issue was.

use serde_json::{Map, Value};

use crate::store::{Store, StoreError, TokenUpdate};
use crate::tokens::{TokenChange, TokenConflict, TokenEventKind, TokenState, apply};

/// Longest id accepted in a payload.
const MAX_ID: usize = 1024;

/// The event types a source may send.
pub const TYPES: [&str; 3] = ["token.revoked", "token.refreshed", "user.deprovisioned"];

/// Why a verified delivery was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("`{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("the event type `{0}` is not one of `token.revoked`, `token.refreshed`, `user.deprovisioned`")]
    Unsupported(String),
    #[error(transparent)]
    Conflict(#[from] TokenConflict),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an event changed.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The payload's `type`.
    pub kind: &'static str,
    /// The user the event is about.
    pub owner: String,
    /// The single token a `token.*` event names.
    pub token: Option<(String, String)>,
    /// Tokens whose state changed, after the change.
    pub changed: Vec<TokenState>,
}

struct Data<'a>(&'a Map<String, Value>);

impl Data<'_> {
    fn optional(&self, field: &'static str) -> Result<Option<String>, EventError> {
        match self.0.get(field.trim_start_matches("data.")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => Ok(Some(s.clone())),
            Some(_) => Err(EventError::Invalid { field, message: format!("expected a string of 1 to {MAX_ID} bytes") }),
        }
    }

    fn required(&self, field: &'static str) -> Result<String, EventError> {
        self.optional(field)?.ok_or(EventError::Invalid { field, message: "missing".into() })
    }
}

/// Parses `body` (already verified) and applies it at `now` (RFC 3339).
pub async fn apply_event(store: &Store, body: &[u8], now: &str) -> Result<Applied, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
    let Value::Object(payload) = value else {
        return Err(EventError::Invalid { field: "", message: "expected a JSON object".into() });
    };
    let kind = match payload.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(EventError::Invalid { field: "type", message: "expected a string".into() }),
    };
    let Some(kind) = TYPES.into_iter().find(|t| *t == kind) else {
        return Err(EventError::Unsupported(kind.to_owned()));
    };
    let empty = Map::new();
    let data = match payload.get("data") {
        Some(Value::Object(d)) => Data(d),
        None => Data(&empty),
        Some(_) => return Err(EventError::Invalid { field: "data", message: "expected an object".into() }),
    };
    if kind == "user.deprovisioned" {
        let owner = data.required("data.owner")?;
        let connection = data.optional("data.connection")?;
        return deprovision(store, owner, connection, now).await;
    }
    let token_id = data.required("data.token_id")?;
    let owner = data.required("data.owner")?;
    let connection = data.required("data.connection")?;
    let (event, expires_at) = if kind == "token.refreshed" {
        let text = data.required("data.expires_at")?;
        let expires = chrono::DateTime::parse_from_rfc3339(&text).map_err(|_| EventError::Invalid {
            field: "data.expires_at",
            message: format!("`{text}` is not an RFC 3339 time"),
        })?;
        let utc = expires.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        (TokenEventKind::Refreshed, Some(utc))
    } else {
        (TokenEventKind::Revoked, None)
    };
    let change = TokenChange {
        kind: event,
        token_id: token_id.clone(),
        owner: owner.clone(),
        connection: connection.clone(),
        role: data.optional("data.role")?,
        expires_at,
        // Webhooks refresh or revoke; neither restarts a token's age.
        issued_at: None,
    };
    let after = store.update_token(&token_id, |before| apply(before, &change, now)).await??;
    Ok(Applied { kind, owner, token: Some((token_id, connection)), changed: after.into_iter().collect() })
}

/// Revokes every live token of `owner` (on `connection`, if given) in one
/// transaction: a deprovisioning is applied whole or not at all, and costs
/// one commit however many tokens the user holds.
async fn deprovision(
    store: &Store,
    owner: String,
    connection: Option<String>,
    now: &str,
) -> Result<Applied, EventError> {
    let updates: Vec<TokenUpdate<'_, TokenConflict>> = store
        .tokens_of_owner(&owner)
        .await?
        .into_iter()
        .filter(|t| t.status != "revoked" && connection.as_ref().is_none_or(|c| *c == t.connection))
        .map(|token| {
            // Decided on the state read inside the write: the token may have
            // changed since the listing.
            TokenUpdate::new(token.token_id, move |before: Option<&TokenState>| match before {
                Some(b) if b.status != "revoked" => {
                    let change = TokenChange {
                        kind: TokenEventKind::Revoked,
                        token_id: b.token_id.clone(),
                        owner: b.owner.clone(),
                        connection: b.connection.clone(),
                        role: None,
                        expires_at: None,
                        issued_at: None,
                    };
                    apply(Some(b), &change, now)
                }
                _ => Ok(None),
            })
        })
        .collect();
    let mut changed = Vec::new();
    for outcome in store.update_tokens(updates).await? {
        changed.extend(outcome?);
    }
    Ok(Applied { kind: "user.deprovisioned", owner, token: None, changed })
}
