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
//!
//! A delivery becomes a [`Planned`] set of token changes; the handler applies
//! them through the audit log, in one transaction with their record.

use serde_json::{Map, Value};

use crate::store::{Store, StoreError, TokenUpdate};
use crate::tokens::{TokenChange, TokenConflict, TokenEventKind, TokenState, TokenStatus, apply};
use warrant_engine::Timestamp;

/// Longest id accepted in a payload.
const MAX_ID: usize = 1024;

/// The event types a source may send (the payload's `type`). Not audit
/// record kinds: each delivery is recorded as `webhook.received`, with its
/// type in `details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundType {
    TokenRevoked,
    TokenRefreshed,
    UserDeprovisioned,
}

impl InboundType {
    pub const ALL: [Self; 3] = [Self::TokenRevoked, Self::TokenRefreshed, Self::UserDeprovisioned];

    /// The payload's `type` text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TokenRevoked => "token.revoked",
            Self::TokenRefreshed => "token.refreshed",
            Self::UserDeprovisioned => "user.deprovisioned",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// The event types a source may send, as text (the OpenAPI document's enum).
pub const TYPES: [&str; 3] =
    [InboundType::TokenRevoked.as_str(), InboundType::TokenRefreshed.as_str(), InboundType::UserDeprovisioned.as_str()];

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

/// What a delivery will change, decided on the state read inside the write.
pub struct Planned {
    /// The payload's `type`.
    pub kind: InboundType,
    /// The user the event is about.
    pub owner: String,
    /// The single token a `token.*` event names, with its connection.
    pub token: Option<(String, String)>,
    pub updates: Vec<TokenUpdate<'static, TokenConflict>>,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("kind", &self.kind)
            .field("updates", &self.updates.len())
            .finish_non_exhaustive()
    }
}

/// The tokens whose state a delivery changed, after the change; or the
/// conflict that refused it (nothing of it is stored then).
pub fn changed(outcomes: &[crate::tokens::Applied]) -> Result<Vec<&TokenState>, &TokenConflict> {
    let mut changed = Vec::new();
    for outcome in outcomes {
        changed.extend(outcome.as_ref()?);
    }
    Ok(changed)
}

struct Data<'a>(&'a Map<String, Value>);

impl Data<'_> {
    fn optional(&self, field: &'static str) -> Result<Option<String>, EventError> {
        match self.0.get(field.trim_start_matches("data.")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => match crate::ids::check(s) {
                Ok(()) => Ok(Some(s.clone())),
                Err(message) => Err(EventError::Invalid { field, message }),
            },
            Some(_) => Err(EventError::Invalid { field, message: format!("expected a string of 1 to {MAX_ID} bytes") }),
        }
    }

    fn required(&self, field: &'static str) -> Result<String, EventError> {
        self.optional(field)?.ok_or(EventError::Invalid { field, message: "missing".into() })
    }
}

/// Parses `body` (already verified) into the changes it makes at `now`
/// (RFC 3339). Reads the store only to list a deprovisioned user's tokens.
pub async fn plan_event(store: &Store, body: &[u8], now: Timestamp) -> Result<Planned, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
    let Value::Object(payload) = value else {
        return Err(EventError::Invalid { field: "", message: "expected a JSON object".into() });
    };
    let kind = match payload.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(EventError::Invalid { field: "type", message: "expected a string".into() }),
    };
    let Some(kind) = InboundType::parse(kind) else {
        return Err(EventError::Unsupported(kind.to_owned()));
    };
    let empty = Map::new();
    let data = match payload.get("data") {
        Some(Value::Object(d)) => Data(d),
        None => Data(&empty),
        Some(_) => return Err(EventError::Invalid { field: "data", message: "expected an object".into() }),
    };
    if kind == InboundType::UserDeprovisioned {
        let owner = data.required("data.owner")?;
        let connection = data.optional("data.connection")?;
        return deprovision(store, owner, connection, now).await;
    }
    let token_id = data.required("data.token_id")?;
    let owner = data.required("data.owner")?;
    let connection = data.required("data.connection")?;
    let (event, expires_at) = if kind == InboundType::TokenRefreshed {
        let text = data.required("data.expires_at")?;
        let expires = Timestamp::parse(&text).map_err(|_| EventError::Invalid {
            field: "data.expires_at",
            message: format!("`{text}` is not an RFC 3339 time"),
        })?;
        (TokenEventKind::Refreshed, Some(expires))
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
    let update = TokenUpdate::new(token_id.clone(), move |before: Option<&TokenState>| apply(before, &change, now));
    Ok(Planned { kind, owner, token: Some((token_id, connection)), updates: vec![update] })
}

/// Revokes every live token of `owner` (on `connection`, if given), all in
/// the one transaction of the delivery's record: a deprovisioning is applied
/// whole or not at all, and costs one commit however many tokens the user
/// holds.
async fn deprovision(
    store: &Store,
    owner: String,
    connection: Option<String>,
    now: Timestamp,
) -> Result<Planned, EventError> {
    let updates = store
        .tokens_of_owner(&owner)
        .await?
        .into_iter()
        .filter(|t| t.status != TokenStatus::Revoked && connection.as_ref().is_none_or(|c| *c == t.connection))
        .map(|token| {
            // Decided on the state read inside the write: the token may have
            // changed since the listing.
            TokenUpdate::new(token.token_id, move |before: Option<&TokenState>| match before {
                Some(b) if b.status != TokenStatus::Revoked => {
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
    Ok(Planned { kind: InboundType::UserDeprovisioned, owner, token: None, updates })
}
