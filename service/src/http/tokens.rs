//! `POST /v1/tokens/events`: a token lifecycle event updates the token store.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, shallow_object};
use super::limits::{MAX_ID, printable};
use crate::audit::Event;
use crate::state::AppState;
use crate::store::TokenUpdate;
use crate::tokens::{self, TokenChange, TokenEventKind, TokenState};
use warrant_engine::Timestamp;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tokens/events", post(record_event))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct TokenEvent {
    #[garde(skip)]
    kind: TokenEventKind,
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    token_id: String,
    /// The owning user's entity id.
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    owner: String,
    /// The connection's entity id.
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    connection: String,
    /// Who caused the event (defaults to the owner).
    #[serde(default)]
    #[garde(inner(length(min = 1, max = MAX_ID), custom(printable)))]
    #[schema(min_length = 1, max_length = 1024)]
    actor: Option<String>,
    #[serde(default)]
    #[garde(inner(length(max = 256)))]
    #[schema(max_length = 256)]
    role: Option<String>,
    /// RFC 3339; required for `token.issued` and `token.refreshed`.
    #[serde(default)]
    #[garde(inner(length(max = 64)))]
    #[schema(format = DateTime, max_length = 64)]
    expires_at: Option<String>,
    /// RFC 3339: when the user authenticated for this token (for
    /// `token.issued`; default: when the event arrives). Rules such as
    /// `token-max-age` compare it with `now`; a refresh keeps it.
    #[serde(default)]
    #[garde(inner(length(max = 64)))]
    #[schema(format = DateTime, max_length = 64)]
    issued_at: Option<String>,
    /// Recorded with the event in the audit log.
    #[serde(default)]
    #[garde(custom(shallow_object))]
    details: Option<Map<String, Value>>,
}

impl TokenEvent {
    pub(crate) fn token_id(&self) -> &str {
        &self.token_id
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEventRecorded {
    /// The audit record's `seq`.
    seq: u64,
    /// The audit record's `mac`.
    mac: String,
    kind: TokenEventKind,
    /// The token's state after the event (null for `token.used`).
    #[schema(required = true)]
    token: Option<TokenState>,
}

/// `text` as a [`Timestamp`], or a 400 naming `field`.
fn rfc3339(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(text).map_err(|_| {
        ApiError::bad_request("invalid_field", format!("`{field}`: `{text}` is not an RFC 3339 time")).with_field(field)
    })
}

#[utoipa::path(
    post,
    path = "/v1/tokens/events",
    operation_id = "record_token_event",
    tag = "tokens",
    summary = "Record a token lifecycle event",
    description = "Applies the event to the token store and appends it to the audit log in one \
        transaction; answers once it is durable. A refused event (409) changes and records nothing. \
        Resending the last event for a token is safe; a revoked token stays revoked (409 `token_revoked`).",
    request_body = TokenEvent,
    responses(
        (status = 201, description = "recorded: the audit record's `seq` and `mac`, and the token's state", body = TokenEventRecorded),
        (status = 409, description = "the event contradicts the token's state (`token_revoked`, `token_mismatch`)", body = ErrorBody),
    ),
    security(("bearer" = ["events:write"]))
)]
async fn record_event(
    State(state): State<AppState>,
    ApiJson(event): ApiJson<TokenEvent>,
) -> Result<(StatusCode, Json<TokenEventRecorded>), ApiError> {
    Ok((StatusCode::CREATED, Json(record(&state, event).await?)))
}

/// Applies a validated event to the token store and records it, in one
/// transaction: what `POST /v1/tokens/events` does, and what
/// `serve --demo` seeds its tokens with.
pub(crate) async fn record(state: &AppState, event: TokenEvent) -> Result<TokenEventRecorded, ApiError> {
    let expires_at = match &event.expires_at {
        Some(text) => Some(rfc3339("expires_at", text)?),
        None if matches!(event.kind, TokenEventKind::Issued | TokenEventKind::Refreshed) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("`expires_at` is required for `{}`", event.kind.as_str()),
            )
            .with_field("expires_at"));
        }
        None => None,
    };
    let issued_at = event.issued_at.as_deref().map(|t| rfc3339("issued_at", t)).transpose()?;
    let change = TokenChange {
        kind: event.kind,
        token_id: event.token_id.clone(),
        owner: event.owner.clone(),
        connection: event.connection.clone(),
        role: event.role.clone(),
        expires_at,
        issued_at,
    };
    // The change and its record commit together: a refused event changes
    // nothing and records nothing (its 409 says why); a retry after a
    // failure re-applies the same state, so events are safe to resend.
    let now = Timestamp::now();
    let update = TokenUpdate::new(event.token_id.clone(), move |before: Option<&TokenState>| {
        tokens::apply(before, &change, now)
    });
    let kind = event.kind;
    let recorded = state
        .audit()
        .apply_tokens(vec![update], move |outcomes| match outcomes {
            [Ok(token)] => Some(token_record(event, token.as_ref())),
            _ => None,
        })
        .await?;
    let outcome =
        recorded.outcomes.into_iter().next().ok_or_else(|| ApiError::internal("the change went unanswered"))?;
    let token = outcome?;
    let appended = recorded.appended.ok_or_else(|| ApiError::internal("the event was not recorded"))?;
    Ok(TokenEventRecorded { seq: appended.seq, mac: appended.mac, kind, token })
}

/// The audit record of an applied event, with the token's state after it.
fn token_record(event: TokenEvent, token: Option<&TokenState>) -> Event {
    let mut record = Event::new(event.kind.into(), event.actor.unwrap_or_else(|| event.owner.clone()));
    record.token_id = Some(event.token_id);
    record.token_owner = Some(event.owner);
    record.connection = Some(event.connection);
    record.details = event.details.unwrap_or_default();
    if let Some(t) = token {
        record.details.insert("status".into(), json!(t.status));
        record.details.insert("role".into(), json!(t.role));
        record.details.insert("expires_at".into(), json!(t.expires_at));
        if let Some(issued_at) = &t.issued_at {
            record.details.insert("issued_at".into(), json!(issued_at));
        }
    }
    record
}
