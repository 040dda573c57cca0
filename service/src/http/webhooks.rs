//! `POST /v1/webhooks/{source}`: an inbound delivery from a configured
//! source. No API key: the signature over the raw body authenticates it.
//!
//! In order, each refusal accounted for and nothing applied. Refusals up to
//! and including the replay check (anyone could send those) are counted and
//! summarised once a minute as `webhook.rejected` with `details.summary`
//! (`audit/rejections.rs`); refusals of a signed delivery's payload (4.) are
//! recorded one by one (details: `source`, `reason`, `status`, `webhook_id`,
//! the body's size and SHA-256, never the body):
//! 1. unknown source → 404 `unknown_source`; body over the limit → 413;
//! 2. missing or malformed signature headers → 400; bad signature, or a
//!    timestamp more than 5 minutes off either way → 401;
//! 3. a delivery id seen before → 409 `replayed`;
//! 4. a payload that is not a supported event → 400 (`malformed_json`,
//!    `invalid_body`, `unsupported_event`); one that contradicts the token's
//!    state → 409.
//!
//! Accepted: the change is applied, audited as `webhook.received`, and
//! answered 200 [`WebhookAccepted`].
//!
//! The operation is documented by [`Document`] rather than `#[utoipa::path]`:
//! its body is raw bytes under a signature, not a JSON request type, so the
//! JSON-body responses (`415`) the document adds to other operations do not
//! apply.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use sha2::Digest as _;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Type};
use utoipa::{Modify, ToSchema};
use warrant_engine::Timestamp;

use super::error::{self, ApiError};
use crate::audit::rejections::Bucket;
use crate::audit::{Event, Kind};
use crate::state::AppState;
use crate::webhooks::Scheme;
use crate::webhooks::inbound::{EventError, InboundType, Planned, TYPES, changed, plan_event};
use crate::webhooks::verify::{self, Rejection, TOLERANCE_SECS};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{source}", post(receive))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// Tokens whose state changed.
    applied: usize,
    /// The `webhook.received` record's `seq`.
    seq: u64,
}

/// One delivery's refusal, before it is audited.
struct WebhookRefusal {
    error: ApiError,
    webhook_id: Option<String>,
    /// The delivery carried a valid signature of a configured source: its
    /// sender is accountable, so the refusal is recorded on its own.
    signed: bool,
}

impl WebhookRefusal {
    /// A refusal before (or of) the signature: anyone could have sent it.
    fn new(error: ApiError, webhook_id: Option<String>) -> Self {
        Self { error, webhook_id, signed: false }
    }

    /// A refusal of a delivery whose signature verified.
    fn signed(error: ApiError, webhook_id: String) -> Self {
        Self { error, webhook_id: Some(webhook_id), signed: true }
    }
}

async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookAccepted>, ApiError> {
    let claimed = verify::claimed_id(&headers);
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the limit",
                )
                .closing_connection()
            } else {
                ApiError::bad_request("unreadable_body", rejection.body_text())
            };
            return Err(reject(&state, &source, WebhookRefusal::new(error, claimed), None).await);
        }
    };
    match accept(&state, &source, &headers, &body).await {
        Ok(answer) => Ok(Json(answer)),
        Err(refusal) => Err(reject(&state, &source, refusal, Some(&body)).await),
    }
}

async fn accept(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<WebhookAccepted, WebhookRefusal> {
    let claimed = verify::claimed_id(headers);
    let Some(source) = state.webhooks().source(name) else {
        let error = ApiError::new(StatusCode::NOT_FOUND, "unknown_source", format!("no webhook source `{name}`"));
        return Err(WebhookRefusal::new(error, claimed));
    };
    // 1. The signature over the raw bytes; nothing has parsed them yet.
    let now = Timestamp::now();
    let verified = match source.scheme {
        Scheme::Standard => verify::verify_standard(&source.secrets, headers, body, now.unix_seconds()),
        Scheme::Sha256 => verify::verify_sha256(&source.secrets, headers, body),
    }
    .map_err(|r| WebhookRefusal::new(refusal_error(&r), claimed.clone()))?;
    let id = verified.id;
    // 2. Replays. A Standard Webhooks id need only be kept while its
    // timestamp is within tolerance; a `sha256` body digest for good.
    let expires = verified
        .timestamp
        .and_then(|t| Timestamp::from_unix_seconds(t.saturating_add(TOLERANCE_SECS + 60)))
        .map(|t| t.max(now));
    let store = state.store();
    let fresh = store
        .webhook_seen(name, &id, now, expires)
        .await
        .map_err(|e| WebhookRefusal::new(e.into(), Some(id.clone())))?;
    if !fresh {
        let error =
            ApiError::new(StatusCode::CONFLICT, "replayed", format!("the delivery `{id}` was already received"));
        return Err(WebhookRefusal::new(error, Some(id)));
    }
    // 3. The event: its changes and its record in one transaction.
    let planned = match plan_event(store, body, now).await {
        Ok(p) => p,
        Err(e) => {
            if let EventError::Store(_) = e {
                forget(state, name, &id).await;
            }
            return Err(WebhookRefusal::signed(event_error(e), id));
        }
    };
    let Planned { kind, owner, token, updates } = planned;
    let mut event = Event::new(Kind::WebhookReceived, format!("webhook:{name}"));
    event.token_owner = Some(owner);
    if let Some((token_id, connection)) = token {
        event.token_id = Some(token_id);
        event.connection = Some(connection);
    }
    event.details.insert("source".into(), json!(name));
    event.details.insert("webhook_id".into(), json!(id));
    event.details.insert("type".into(), json!(kind.as_str()));
    let keys = state.keys().clone();
    let recorded = state
        .audit()
        .apply_tokens(updates, move |outcomes| {
            // A refused change stores nothing; the refusal is recorded as
            // `webhook.rejected` instead.
            let changed = changed(outcomes).ok()?;
            let digests: Vec<String> = changed.iter().map(|t| keys.digest(&t.token_id)).collect();
            event.details.insert("applied".into(), json!(changed.len()));
            event.details.insert("tokens".into(), json!(digests));
            Some(event)
        })
        .await;
    let recorded = match recorded {
        Ok(r) => r,
        Err(e) => {
            // Nothing applied and nothing recorded: let the sender retry.
            forget(state, name, &id).await;
            return Err(WebhookRefusal::new(ApiError::internal(e), None));
        }
    };
    let revoked: Vec<String> = match changed(&recorded.outcomes) {
        Ok(changed) => changed.iter().map(|t| t.token_id.clone()).collect(),
        Err(conflict) => return Err(WebhookRefusal::signed(conflict.clone().into(), id)),
    };
    let applied = revoked.len();
    if kind == InboundType::UserDeprovisioned
        && let Some(vault) = state.vault()
    {
        // The user's tokens are revoked here already (the record above);
        // those the vault holds are revoked at their providers too.
        vault.deprovision(state.backing(), &revoked, &format!("webhook:{name}")).await;
    }
    match recorded.appended {
        Some(appended) => Ok(WebhookAccepted { applied, seq: appended.seq }),
        None => Err(WebhookRefusal::new(ApiError::internal("an applied delivery was not recorded"), None)),
    }
}

async fn forget(state: &AppState, source: &str, id: &str) {
    if let Err(e) = state.store().webhook_forget(source, id).await {
        tracing::error!(error = %e, source, "cannot forget a failed webhook delivery; its retry will be refused");
    }
}

fn refusal_error(r: &Rejection) -> ApiError {
    let status = if r.is_malformed() { StatusCode::BAD_REQUEST } else { StatusCode::UNAUTHORIZED };
    let error = ApiError::new(status, r.code(), r.to_string());
    match r {
        Rejection::MissingHeader(h) | Rejection::MalformedHeader(h) => error.with_field(*h),
        _ => error,
    }
}

fn event_error(e: EventError) -> ApiError {
    match e {
        EventError::Malformed(_) => ApiError::bad_request("malformed_json", e.to_string()),
        EventError::Invalid { field, .. } => ApiError::bad_request("invalid_body", e.to_string()).with_field(field),
        EventError::Unsupported(_) => ApiError::bad_request("unsupported_event", e.to_string()).with_field("type"),
        EventError::Conflict(c) => c.into(),
        EventError::Store(s) => s.into(),
    }
}

/// Accounts for a refused delivery and returns its error. A signed
/// delivery's refusal is recorded on its own, by size and SHA-256 of the
/// body, never the body (it may carry tokens). Anything else anyone could
/// have sent is counted and summarised (`audit/rejections.rs`): an outsider
/// cannot grow the log one record per request.
async fn reject(state: &AppState, source: &str, refusal: WebhookRefusal, body: Option<&[u8]>) -> ApiError {
    let WebhookRefusal { error, webhook_id, signed } = refusal;
    if error.status().is_server_error() {
        // Our failure, not the sender's: logged with the response (`mod.rs`).
        return error;
    }
    let configured = state.webhooks().source(source).is_some();
    if !signed {
        let (actor, place) = if configured {
            (format!("webhook:{source}"), source.to_owned())
        } else {
            ("webhook:*".to_owned(), "*".to_owned())
        };
        state.audit().rejections().note(Bucket { kind: Kind::WebhookRejected, actor, reason: error.code(), place });
        return error.from_outsider();
    }
    let mut event = Event::new(Kind::WebhookRejected, format!("webhook:{source}"));
    event.details.insert("source".into(), json!(source));
    event.details.insert("reason".into(), json!(error.code()));
    event.details.insert("status".into(), json!(error.status().as_u16()));
    if let Some(id) = webhook_id {
        event.details.insert("webhook_id".into(), json!(id));
    }
    if let Some(body) = body {
        event.details.insert("body_bytes".into(), json!(body.len()));
        event.details.insert("body_sha256".into(), json!(hex::encode(sha2::Sha256::digest(body))));
    }
    match state.audit().append(event).await {
        Ok(_) => error,
        Err(e) => ApiError::internal(e),
    }
}

/// Documents `POST /v1/webhooks/{source}`: authenticated by a signature over
/// the raw body, not an API key.
#[derive(Debug)]
pub struct Document;

impl Modify for Document {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(string()))
                .build()
        };
        let source = ParameterBuilder::new()
            .name("source")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("a source configured in the webhooks file"))
            .schema(Some(string()))
            .build();
        // The payload as `crate::webhooks::inbound` reads it, once verified:
        // no request type exists to derive this from.
        let payload = ObjectBuilder::new()
            .description(Some("A webhook payload (Standard Webhooks' `{type, timestamp?, data}`)."))
            .property(
                "type",
                string()
                    .description(Some("`token.revoked`, `token.refreshed` or `user.deprovisioned`."))
                    .enum_values(Some(TYPES)),
            )
            .required("type")
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("`token_id`, `owner`, `connection`, `expires_at`, `role`, as the type needs.")),
            )
            .required("data")
            .build();
        doc.components.get_or_insert_with(Default::default).schemas.insert("WebhookEvent".to_owned(), payload.into());
        let json = |schema: &str| ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build();
        let refused = |description: &str| RefOr::T(error::documented(description));
        let accepted = ResponseBuilder::new()
            .description("applied and audited as `webhook.received`")
            .content("application/json", json("WebhookAccepted"))
            .build();
        let operation = OperationBuilder::new()
            .tag("webhooks")
            .summary(Some("Receive a signed delivery (no API key)"))
            .description(Some(
                "Authenticated by its signature: Standard Webhooks (`webhook-id`, `webhook-timestamp`, \
                 `webhook-signature`) or an HMAC-SHA256 of the body (`x-signature-256` or \
                 `x-hub-signature-256`), as the source is configured. Payloads: `token.revoked`, \
                 `token.refreshed`, `user.deprovisioned` (`{\"type\", \"data\"}`). Every refusal is \
                 audited as `webhook.rejected`.",
            ))
            .operation_id(Some("receive_webhook"))
            .parameter(source)
            .parameter(header("webhook-id", "Standard Webhooks: the delivery id"))
            .parameter(header("webhook-timestamp", "Standard Webhooks: Unix seconds, within 5 minutes"))
            .parameter(header("webhook-signature", "Standard Webhooks: `v1,<base64 HMAC>`…"))
            .parameter(header("x-signature-256", "`sha256=<hex HMAC of the body>`"))
            .parameter(header("x-hub-signature-256", "`sha256=<hex HMAC of the body>` (GitHub's name)"))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json("WebhookEvent"))
                    .required(Some(Required::True))
                    .build(),
            ))
            .response("200", accepted)
            .response("400", refused("missing or malformed signature headers, or an unsupported payload"))
            .response("401", refused("a bad signature, or a timestamp more than 5 minutes off"))
            .response("404", refused("no such source (`unknown_source`)"))
            .response("409", refused("a replayed delivery (`replayed`), or one the token's state contradicts"))
            .response("413", RefOr::Ref(Ref::from_response_name("PayloadTooLarge")))
            .build();
        doc.paths.add_path_operation("/v1/webhooks/{source}", vec![HttpMethod::Post], operation);
    }
}
