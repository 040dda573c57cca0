//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    summary = "Liveness (public)",
    responses((status = 200, description = "the process answers", body = super::openapi::Health))
)]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready to decide: a bundle is active and the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    summary = "Readiness (public)",
    responses(
        (status = 200, description = "a bundle is active and the store answers", body = super::openapi::Ready),
        (status = 503, description = "the store does not answer", body = super::openapi::Unready),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let digest = state.snapshot().bundle.digest().to_owned();
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready", "policy_digest": digest}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": "store unavailable"})))
        }
    }
}
