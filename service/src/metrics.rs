//! What the service counts, for `GET /metrics` (OpenMetrics text, which
//! Prometheus scrapes): requests and their latency by route and status,
//! decisions and credential resolutions by outcome, audit commits (latency
//! and records per batch), rule failures by rule and kind, refusals by kind
//! and reason, open connections, the vault's refreshes and reveals.
//!
//! One registry per process (`METRICS`), so the audit writer, the rule host
//! and the transport record without being handed a reference. Every label
//! comes from a bounded set: route templates (not paths), methods, status
//! codes, fixed reason codes, and rule names from the active bundle.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/audit/events`), or `unmatched`.
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

/// `template` as a `&'static str`, allocated once per distinct route
/// template (a fixed set: the router's), so counting a request allocates
/// nothing.
pub fn route_label(template: &str) -> &'static str {
    static SEEN: LazyLock<std::sync::RwLock<std::collections::HashSet<&'static str>>> = LazyLock::new(Default::default);
    if let Ok(seen) = SEEN.read()
        && let Some(known) = seen.get(template)
    {
        return known;
    }
    let Ok(mut seen) = SEEN.write() else { return "unmatched" };
    if let Some(known) = seen.get(template) {
        return known;
    }
    let leaked: &'static str = Box::leak(template.to_owned().into_boxed_str());
    seen.insert(leaked);
    leaked
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `allow` or `deny`; for the vault, what came of a refresh or reveal.
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

type HistogramFamily<L> = Family<L, Latency, fn() -> Latency>;

/// Latency buckets: 50 µs doubling 18 times, to ~6.5 s.
const LATENCY_BUCKETS: usize = 18;

/// A latency histogram recorded with atomics only. prometheus-client's
/// `Histogram` takes a write lock per observation, which every request of
/// a route contends for (measured ~10% of HTTP decision throughput at 64
/// connections); these buckets are independent counters.
#[derive(Debug, Clone, Default)]
pub struct Latency(std::sync::Arc<LatencyCells>);

#[derive(Debug, Default)]
pub struct LatencyCells {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    count: AtomicU64,
    /// The sum in nanoseconds.
    sum_nanos: AtomicU64,
}

fn latency_bound(i: usize) -> f64 {
    0.000_05 * f64::from(1u32 << i.min(31))
}

impl Latency {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        let cells = &self.0;
        if let Some(i) = (0..LATENCY_BUCKETS).find(|i| seconds <= latency_bound(*i))
            && let Some(bucket) = cells.buckets.get(i)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        cells.count.fetch_add(1, Ordering::Relaxed);
        cells.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let cells = &self.0;
        let mut buckets: Vec<(f64, u64)> =
            cells.buckets.iter().enumerate().map(|(i, b)| (latency_bound(i), b.load(Ordering::Relaxed))).collect();
        let count = cells.count.load(Ordering::Relaxed);
        // Observations above the last bound land only in +Inf.
        let counted: u64 = buckets.iter().map(|(_, n)| n).sum();
        buckets.push((f64::MAX, count.saturating_sub(counted)));
        let sum = cells.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Every metric the service keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<RouteLabels>,
    pub decisions: Family<OutcomeLabels, Counter>,
    pub resolutions: Family<OutcomeLabels, Counter>,
    pub audit_commit_seconds: Latency,
    pub audit_batch_records: Histogram,
    pub rule_failures: Family<RuleFailureLabels, Counter>,
    pub refusals: Family<RefusalLabels, Counter>,
    pub connections: Gauge,
    pub vault_refreshes: Family<OutcomeLabels, Counter>,
    pub vault_reveals: Family<OutcomeLabels, Counter>,
    pub vault_provider_seconds: Latency,
    pub vault_refresh_seconds: Latency,
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
        let request_seconds = HistogramFamily::<RouteLabels>::new_with_constructor(Latency::default as fn() -> Latency);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route template",
            request_seconds.clone(),
        );
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register("decisions", "Authorization decisions made, by outcome", decisions.clone());
        let resolutions = Family::<OutcomeLabels, Counter>::default();
        registry.register("credential_resolutions", "Credential resolutions, by outcome", resolutions.clone());
        let audit_commit_seconds = Latency::default();
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
        let vault_refreshes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "vault_refreshes",
            "Grant refreshes sent to providers, by outcome (refreshed, reauth_required, transient, refused)",
            vault_refreshes.clone(),
        );
        let vault_reveals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "vault_reveals",
            "Access tokens handed out (fresh, refreshed) or not (refused), by outcome",
            vault_reveals.clone(),
        );
        let vault_provider_seconds = Latency::default();
        registry.register(
            "vault_provider_duration_seconds",
            "Time the providers' token endpoints took to answer a refresh",
            vault_provider_seconds.clone(),
        );
        let vault_refresh_seconds = Latency::default();
        registry.register(
            "vault_refresh_duration_seconds",
            "Time a refresh took, from holding the grant's lease to its outcome stored (the provider's answer included)",
            vault_refresh_seconds.clone(),
        );
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
            vault_refreshes,
            vault_reveals,
            vault_provider_seconds,
            vault_refresh_seconds,
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
