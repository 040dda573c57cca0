//! Liveness, readiness and metrics: public, for orchestrators and scrapers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::Failure;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    status: &'static str,
    /// The active bundle's digest.
    policy_digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unready {
    /// `unavailable`.
    status: &'static str,
    reason: &'static str,
}

/// `/readyz`'s answer: 200 [`Ready`], or 503 [`Unready`] with why the store
/// did not answer kept for the log.
#[derive(Debug)]
pub enum Readiness {
    Ready(Ready),
    Unready(Unready, Failure),
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        match self {
            Self::Ready(ready) => (StatusCode::OK, Json(ready)).into_response(),
            Self::Unready(unready, failure) => {
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(unready)).into_response();
                response.extensions_mut().insert(failure);
                response
            }
        }
    }
}

/// The process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    summary = "Liveness (public)",
    responses((status = 200, description = "the process answers", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready to decide: a bundle is active and the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    summary = "Readiness (public)",
    responses(
        (status = 200, description = "a bundle is active and the store answers", body = Ready),
        (status = 503, description = "the store does not answer", body = Unready),
    )
)]
async fn readyz(State(state): State<AppState>) -> Readiness {
    let policy_digest = state.snapshot().bundle.digest().to_owned();
    match state.store().ping().await {
        Ok(()) => Readiness::Ready(Ready { status: "ready", policy_digest }),
        Err(e) => Readiness::Unready(
            Unready { status: "unavailable", reason: "store unavailable" },
            Failure(format!("readiness check: {e}")),
        ),
    }
}

/// The service's metrics in the OpenMetrics text format (`crate::metrics`).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    summary = "Metrics for Prometheus (public)",
    responses((status = 200, description = "OpenMetrics text: requests by route and status, decisions by outcome, \
        audit commit latency and batch size, rule failures by kind, refusals by reason, open connections",
        body = String, content_type = "application/openmetrics-text"))
)]
async fn metrics() -> Response {
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], crate::metrics::render()).into_response()
}
