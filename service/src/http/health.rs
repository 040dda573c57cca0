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
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready to decide: a bundle is active and the store answers.
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
