//! The HTTP API: one module per resource, each with its `router()`, joined
//! here with the cross-cutting layers (request ids, tracing, body limits,
//! panics turned into JSON 500s, JSON 404/405, and the one place server
//! errors are logged).
//!
//! Modules depend one way: `openapi` gathers the handlers' documentation;
//! handlers share `limits`, `error`, `decision` and the extractors, never
//! `openapi`.

mod audit;
mod authorize;
mod authzen;
mod console;
mod credentials;
mod decision;
mod entities;
pub mod error;
mod grants;
mod guard;
mod health;
pub mod json;
mod limits;
mod log;
mod openapi;
mod overview;
mod policies;
mod query;
mod search;
mod strict;
mod supplied;
mod throttle;
pub(crate) mod tokens;
pub mod transport;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderName, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use self::error::{ApiError, Failure, Outsider};
use self::guard::Guard;
use self::throttle::Throttle;
use crate::auth::Scope;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Limits the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub max_bulk_body_bytes: usize,
    /// Base URL clients reach the service at (AuthZEN metadata):
    /// `--public-url`, else `http://<listening address>`.
    pub public_url: String,
    /// Rate limits, requests per second (0: off); see `throttle.rs`.
    pub refusals_per_address: u32,
    pub rate_limit_per_address: u32,
    pub rate_limit_per_key: u32,
    /// The scope a key needs to read `/log/*` (`--log-read-scope`); `None`:
    /// public, as transparency logs are.
    pub log_read_scope: Option<Scope>,
    /// Witnesses that must cosign a checkpoint before `/log/checkpoint` serves it.
    pub witness_quorum: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_bulk_body_bytes: 64 * 1024 * 1024,
            public_url: "http://127.0.0.1:8180".to_owned(),
            refusals_per_address: 50,
            rate_limit_per_address: 0,
            rate_limit_per_key: 0,
            log_read_scope: None,
            witness_quorum: 0,
        }
    }
}

/// The whole service as a router, so tests can drive it without a socket.
pub fn app(state: AppState, config: HttpConfig) -> Router {
    let throttle =
        Arc::new(Throttle::new(config.refusals_per_address, config.rate_limit_per_address, config.rate_limit_per_key));
    let guarded = |router: Router<AppState>, scope: Scope| {
        let guard = Guard { state: state.clone(), scope, throttle: Arc::clone(&throttle) };
        router.route_layer(middleware::from_fn_with_state(guard, guard::require))
    };
    let decisions = Router::new()
        .merge(guarded(
            Router::new()
                .merge(authzen::router())
                .merge(authorize::router())
                .merge(credentials::router())
                .merge(search::router()),
            Scope::Decide,
        ))
        .merge(guarded(Router::new().merge(tokens::router()).merge(grants::router()), Scope::EventsWrite))
        .merge(guarded(
            Router::new().merge(audit::router()).merge(overview::router()).merge(log::entries_router()),
            Scope::AuditRead,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes));
    let bulk = guarded(Router::new().merge(entities::router()).merge(policies::router()), Scope::PolicyAdmin)
        .layer(DefaultBodyLimit::max(config.max_bulk_body_bytes));
    let log = match config.log_read_scope {
        Some(scope) => guarded(log::router(config.witness_quorum), scope),
        None => log::router(config.witness_quorum),
    };
    Router::new()
        .merge(health::router())
        .merge(console::router())
        .merge(log)
        .merge(authzen::metadata_router(config.public_url.clone()))
        .merge(openapi::router())
        .merge(decisions)
        .merge(bulk)
        // The provider's redirect carries its own single-use credential.
        .merge(grants::callback_router().layer(DefaultBodyLimit::max(config.max_body_bytes)))
        // Signed by the source, not an API key: outside the guarded groups.
        .merge(webhooks::router().layer(DefaultBodyLimit::max(config.max_body_bytes)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            Arc::new(Edge {
                throttle: Arc::clone(&throttle),
                started: std::time::Instant::now(),
                pruned_at: AtomicU64::new(0),
            }),
            edge,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::debug!(
                        status = res.status().as_u16(),
                        latency_us = latency.as_micros() as u64,
                        "response"
                    );
                }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for `{}`", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    ApiError::internal(format!("a request handler panicked: {message}")).into_response()
}

/// What the edge middleware keeps: the throttle, and when it was last
/// pruned (seconds since `started`).
struct Edge {
    throttle: Arc<Throttle>,
    started: std::time::Instant,
    pruned_at: AtomicU64,
}

/// Around every request, in one layer (each `from_fn` layer costs a boxed
/// future per request): the address throttle, the request metrics, and
/// the log line of a 5xx.
async fn edge(State(edge): State<Arc<Edge>>, req: AxumRequest, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| crate::metrics::route_label(m.as_str()));
    let method = method_label(req.method());
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let response = match ip.map(|ip| edge.admit(ip)) {
        Some(Err(wait)) => {
            crate::metrics::refused("rate_limited", "per_address");
            guard::throttled(wait)
        }
        _ => {
            let request_id = req.extensions().get::<RequestId>().cloned();
            let response = next.run(req).await;
            log_server_error(&response, request_id.as_ref());
            if let Some(ip) = ip
                && response.extensions().get::<Outsider>().is_some()
            {
                edge.throttle.refused(ip);
            }
            response
        }
    };
    count_request(route, method, &response, started);
    response
}

impl Edge {
    /// The throttle's verdict on `ip`, pruning its buckets once a minute.
    fn admit(&self, ip: std::net::IpAddr) -> Result<(), Duration> {
        let now = self.started.elapsed().as_secs();
        if now.saturating_sub(self.pruned_at.load(Ordering::Relaxed)) >= 60 {
            self.pruned_at.store(now, Ordering::Relaxed);
            self.throttle.prune();
        }
        self.throttle.admit_address(ip)
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Counts an answer by route template, method and status, with its latency
/// (`crate::metrics`). Paths that matched no route share the route
/// `unmatched`, so made-up paths add no series.
fn count_request(route: &'static str, method: &'static str, response: &Response, started: std::time::Instant) {
    let metrics = &crate::metrics::METRICS;
    metrics.request_seconds.get_or_create(&RouteLabels { route }).observe(started.elapsed());
    metrics.requests.get_or_create(&RequestLabels { route, method, status: response.status().as_u16() }).inc();
}

/// Logs every 5xx answer, and only here: with the request id and the
/// failure the response carries for the log ([`Failure`]), which the client
/// is not shown. A 503 (not ready) is a warning, anything else an error.
fn log_server_error(response: &Response, request_id: Option<&RequestId>) {
    let status = response.status();
    if status.is_server_error() {
        let request_id = request_id.and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
        let error = response.extensions().get::<Failure>().map_or("", |f| f.0.as_str());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status = status.as_u16(), request_id, error, "service unavailable");
        } else {
            tracing::error!(status = status.as_u16(), request_id, error, "internal error");
        }
    }
}
