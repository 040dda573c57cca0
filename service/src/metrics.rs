//! What the service counts, for `GET /metrics` (OpenMetrics text, which
//! Prometheus scrapes): requests and their latency by route and status,
//! decisions and credential resolutions by outcome, audit commits (latency
//! and records per batch), rule failures by rule and kind, refusals by kind
//! and reason, open connections.
//!
//! One registry per process (`METRICS`), so the audit writer, the rule host
//! and the transport record without being handed a reference. Every label
//! comes from a bounded set: route templates (not paths), methods, status
//! codes, fixed reason codes, and rule names from the active bundle.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/audit/events`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `allow` or `deny`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleFailureLabels {
    pub rule: String,
    /// `out_of_fuel`, `timeout`, `memory_limit`, `trap`, `instantiate`.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The record kind a refusal belongs to (`api_key.rejected`,
    /// `webhook.rejected`).
    pub kind: &'static str,
    pub reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the service keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<RouteLabels>,
    pub decisions: Family<OutcomeLabels, Counter>,
    pub resolutions: Family<OutcomeLabels, Counter>,
    pub audit_commit_seconds: Histogram,
    pub audit_batch_records: Histogram,
    pub rule_failures: Family<RuleFailureLabels, Counter>,
    pub refusals: Family<RefusalLabels, Counter>,
    pub connections: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("warrant");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let request_seconds =
            HistogramFamily::<RouteLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route template",
            request_seconds.clone(),
        );
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register("decisions", "Authorization decisions made, by outcome", decisions.clone());
        let resolutions = Family::<OutcomeLabels, Counter>::default();
        registry.register("credential_resolutions", "Credential resolutions, by outcome", resolutions.clone());
        let audit_commit_seconds = latency_histogram();
        registry.register(
            "audit_commit_duration_seconds",
            "Time to seal and commit one group of audit records (one fsync)",
            audit_commit_seconds.clone(),
        );
        let audit_batch_records = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register("audit_batch_records", "Records per audit group commit", audit_batch_records.clone());
        let rule_failures = Family::<RuleFailureLabels, Counter>::default();
        registry.register(
            "rule_failures",
            "Custom rules that gave no verdict, by rule and kind",
            rule_failures.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Refused credentials and webhook deliveries, by kind and reason",
            refusals.clone(),
        );
        let connections = Gauge::default();
        registry.register("http_connections", "Open HTTP connections", connections.clone());
        Self {
            registry,
            requests,
            request_seconds,
            decisions,
            resolutions,
            audit_commit_seconds,
            audit_batch_records,
            rule_failures,
            refusals,
            connections,
        }
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// `allow` or `deny`.
pub fn outcome(allowed: bool) -> OutcomeLabels {
    OutcomeLabels { outcome: if allowed { "allow" } else { "deny" } }
}

/// Counts a refusal of `kind` for `reason`.
pub fn refused(kind: &'static str, reason: impl Into<String>) {
    METRICS.refusals.get_or_create(&RefusalLabels { kind, reason: reason.into() }).inc();
}

/// The OpenMetrics text of every metric.
pub fn render() -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &METRICS.registry).is_err() {
        text.clear();
        text.push_str("# EOF\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_family_and_ends_with_eof() {
        METRICS.decisions.get_or_create(&outcome(true)).inc();
        refused("api_key.rejected", "unknown_key");
        let text = render();
        for name in [
            "warrant_decisions_total{outcome=\"allow\"}",
            "warrant_refusals_total{kind=\"api_key.rejected\",reason=\"unknown_key\"}",
            "# TYPE warrant_audit_commit_duration_seconds histogram",
            "warrant_http_connections",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
