//! The witness's HTTP API. Plain text, as the protocol is:
//!
//! - `POST /add-checkpoint`: 200 with the cosignature line; the spec's
//!   refusals (400, 403, 404, 409 with `text/x.tlog.size`, 422), each
//!   logged as a warning; 413 for a body larger than any request can be
//!   (`Connection: close`: the rest is not read);
//! - `GET /<lowercase hex SHA-256(origin)>/checkpoint`: the latest
//!   checkpoint cosigned for that log, with the cosignature (the spec's
//!   optional monitoring endpoint), or 404;
//! - `GET /healthz`, `GET /metrics` (`warrant_witness_checkpoints_total`
//!   by origin and status).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use warrant_engine::audit::witness::{MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE, size_body};

use super::cosigning::{AddError, Cosignature, Witness, now};

const TEXT: &str = "text/plain; charset=utf-8";

/// The witness as a router, so tests can drive it without a socket.
/// Requests taking longer than `timeout` are answered 408; the step that
/// checks and stores a checkpoint is not cut short by it.
pub fn app(witness: Arc<Witness>, timeout: Duration) -> Router {
    let served = Arc::new(Served { witness, metrics: Metrics::new() });
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(served)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    |req: &Request<_>| tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
                )
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::debug!(
                        status = res.status().as_u16(),
                        latency_us = latency.as_micros() as u64,
                        "response"
                    );
                }),
        )
}

struct Served {
    witness: Arc<Witness>,
    metrics: Metrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabels {
    /// A followed log's origin, or `unknown` (bounded: the `--log` set).
    origin: String,
    status: u16,
}

/// The witness's own metrics (the service's registry counts decisions).
struct Metrics {
    registry: Registry,
    checkpoints: Family<CheckpointLabels, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("warrant_witness");
        let checkpoints = Family::<CheckpointLabels, Counter>::default();
        registry.register(
            "checkpoints",
            "add-checkpoint requests answered, by log origin and status (200: cosigned)",
            checkpoints.clone(),
        );
        Self { registry, checkpoints }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// 500, the detail for the log only.
fn internal(origin: Option<&str>, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(origin, %error, "cannot answer add-checkpoint");
    text(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "internal error\n".to_owned())
}

async fn add_checkpoint(State(served): State<Arc<Served>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return served.unread(&rejection),
    };
    let submission = match served.witness.submission(&body) {
        Ok(submission) => submission,
        Err(refusal) => return served.answer(None, Err(refusal.into())),
    };
    // A task of its own: a request timeout or a client gone must not drop
    // the check-and-store step halfway (the transaction would roll back,
    // but on the next use of the connection rather than now).
    let witness = Arc::clone(&served.witness);
    let task = tokio::spawn(async move {
        let outcome = witness.add(&submission, now()).await;
        (submission.origin, outcome)
    });
    match task.await {
        Ok((origin, outcome)) => served.answer(Some(&origin), outcome),
        Err(e) => internal(None, &e),
    }
}

impl Served {
    /// A body that could not be read: too large (413) or cut short. The
    /// rest of it is not read, so the connection cannot serve another
    /// request: the client is told (`Connection: close`), or a pooling
    /// client would send its next request on a dead connection.
    fn unread(&self, rejection: &BytesRejection) -> Response {
        let status = rejection.status();
        let label = CheckpointLabels { origin: "unknown".to_owned(), status: status.as_u16() };
        self.metrics.checkpoints.get_or_create(&label).inc();
        tracing::warn!(status = status.as_u16(), reason = %rejection.body_text(), "checkpoint refused");
        let mut response = text(status, TEXT, format!("{}\n", rejection.body_text()));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// Counts, logs and renders the outcome of an `add-checkpoint`.
    fn answer(&self, origin: Option<&str>, outcome: Result<Cosignature, AddError>) -> Response {
        let status = match &outcome {
            Ok(_) => 200,
            Err(e) => e.status(),
        };
        let label = CheckpointLabels { origin: origin.unwrap_or("unknown").to_owned(), status };
        self.metrics.checkpoints.get_or_create(&label).inc();
        match outcome {
            Ok(cosignature) => {
                tracing::debug!(origin, size = cosignature.tree_size, "checkpoint cosigned");
                text(StatusCode::OK, TEXT, cosignature.lines)
            }
            // A log that is refused showed this witness a view it must not
            // cosign (stale, forked or unsigned): what witnesses are for.
            Err(AddError::Refused(refusal)) => {
                tracing::warn!(origin, status, reason = %refusal, "checkpoint refused");
                let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                match refusal.latest_size() {
                    Some(size) => text(code, SIZE_CONTENT_TYPE, size_body(size)),
                    None => text(code, TEXT, format!("{refusal}\n")),
                }
            }
            Err(e) => internal(origin, &e),
        }
    }
}

async fn checkpoint(State(served): State<Arc<Served>>, Path(origin_hash): Path<String>) -> Response {
    match served.witness.latest_note(&origin_hash).await {
        Ok(Some(note)) => text(StatusCode::OK, TEXT, note),
        Ok(None) => text(StatusCode::NOT_FOUND, TEXT, "no checkpoint cosigned for this log\n".to_owned()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the latest checkpoint");
            text(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "internal error\n".to_owned())
        }
    }
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response()
}

async fn metrics(State(served): State<Arc<Served>>) -> Response {
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &served.metrics.registry).is_err() {
        body = "# EOF\n".to_owned();
    }
    text(StatusCode::OK, crate::metrics::CONTENT_TYPE, body)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, TEXT, "not found\n".to_owned())
}
