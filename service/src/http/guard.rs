//! The API-key guard: every route but health, metadata and (signature-
//! verified) webhooks needs a key with the route's scope. 401 without a
//! valid key, 403 with the wrong scope; refusals of a presented key are
//! audited (`api_key.rejected`).
//!
//! The OpenAPI document names this guard's scheme [`SCHEME`]; each guarded
//! operation lists the scope it needs under it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use warrant_engine::Timestamp;

use super::error::ApiError;
use super::throttle::{Throttle, retry_after};
use crate::audit::rejections::Bucket;
use crate::audit::{Event, Kind};
use crate::auth::{KeyRefusal, Scope};
use crate::state::AppState;

/// The name of the API-key security scheme in the OpenAPI document.
pub const SCHEME: &str = "bearer";

/// How the document describes [`SCHEME`].
pub fn security_scheme() -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("wrnt_<id>_<secret>")
            .description(Some(
                "An API key minted with `warrant keys create --scope SCOPE…`. Each operation names the \
                 scope it needs (`decide`, `events:write`, `audit:read`, `policy:admin`).",
            ))
            .build(),
    )
}

/// The id of the API key a request was made with (a request extension).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Caller {
    /// How audit records name this caller.
    pub fn actor(&self) -> String {
        format!("api_key:{}", self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Guard {
    pub state: AppState,
    pub scope: Scope,
    pub throttle: Arc<Throttle>,
}

/// 429 with `Retry-After`.
pub fn throttled(wait: std::time::Duration) -> Response {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry after the given delay")
        .retry_after(retry_after(wait))
        .into_response()
}

pub async fn require(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let checked = guard.state.auth().check(guard.state.store(), header, guard.scope, Timestamp::now()).await;
    match checked {
        Err(e) => ApiError::internal(e).into_response(),
        Ok(Ok(id)) => {
            if let Err(wait) = guard.throttle.admit_key(&id) {
                return throttled(wait);
            }
            req.extensions_mut().insert(Caller(id));
            next.run(req).await
        }
        Ok(Err((refusal, id))) => {
            if matches!(refusal, KeyRefusal::Missing | KeyRefusal::Expired | KeyRefusal::Revoked | KeyRefusal::Scope(_))
            {
                // Malformed and unknown keys are counted with their summaries.
                crate::metrics::refused(Kind::ApiKeyRejected.as_str(), refusal.code());
            }
            let outsider = matches!(refusal, KeyRefusal::Malformed | KeyRefusal::Unknown).then(|| refusal.code());
            if let Some(reason) = outsider {
                // No secret was proven: counted, and summarised once a
                // minute, never one record per request (audit/rejections.rs).
                let actor = "api_key:*".to_owned();
                let bucket =
                    Bucket { kind: Kind::ApiKeyRejected, actor, reason, place: guard.scope.as_str().to_owned() };
                guard.state.audit().rejections().note(bucket);
            } else if refusal != KeyRefusal::Missing {
                // The caller holds the key's secret (revoked, expired, or
                // outside its scope): accountable, so recorded each time.
                let mut event = Event::new(
                    Kind::ApiKeyRejected,
                    id.as_deref().map_or_else(|| "unknown".to_owned(), |i| format!("api_key:{i}")),
                );
                event.details.insert("reason".into(), serde_json::json!(refusal.to_string()));
                event.details.insert("scope".into(), serde_json::json!(guard.scope.as_str()));
                event.details.insert("path".into(), serde_json::json!(req.uri().path()));
                if let Err(e) = guard.state.audit().append(event).await {
                    tracing::error!(error = %e, "could not audit a refused API key");
                }
            }
            let (status, code) = if refusal.is_forbidden() {
                (StatusCode::FORBIDDEN, "forbidden")
            } else {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            };
            let mut error = ApiError::new(status, code, refusal.to_string());
            if outsider.is_some() {
                error = error.from_outsider();
            }
            let mut response = error.into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}
