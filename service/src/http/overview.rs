//! The auditor's overview of a time window (`GET /v1/audit/overview`):
//! decisions over time, top deny reasons, token events per connection and
//! rule failures, the console's first picture (docs/console.md#overview).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warrant_engine::Timestamp;
use warrant_engine::audit::overview::{self, Bucket};

use super::error::{ApiError, ErrorBody};
use super::query::{ApiQuery, utc};
use crate::state::AppState;

/// The window when none is given: the last day.
const DEFAULT_WINDOW: TimeDelta = TimeDelta::days(1);
/// The longest window one request may count, so one request cannot make
/// the server read the whole of a long log.
const MAX_WINDOW: TimeDelta = TimeDelta::days(31);
/// Most decisions whose `details` are read to count rule failures.
const MAX_RULE_FAILURES_READ: u32 = 10_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit/overview", get(overview))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OverviewParams {
    /// RFC 3339; the window's start (default: a day before `until`).
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339; the window's end, excluded (default: now).
    #[param(format = DateTime)]
    until: Option<String>,
}

/// A time window of the audit log at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// RFC 3339 UTC.
    since: String,
    /// RFC 3339 UTC, excluded.
    until: String,
    /// How long one entry of `decisions` is: chosen from the window's
    /// length (minutes up to 3 hours, hours up to 8 days, else days).
    #[schema(value_type = String, example = "hour")]
    bucket: Bucket,
    /// Records in the window, of every kind.
    records: u64,
    allowed: u64,
    denied: u64,
    /// Allow and deny decisions per bucket, oldest first; empty buckets
    /// are left out.
    decisions: Vec<DecisionsAt>,
    /// The 10 most frequent deny reasons (a decision denied for two
    /// reasons counts for each).
    deny_reasons: Vec<Counted>,
    /// Token events per connection, the 10 busiest first.
    token_events: Vec<ConnectionEvents>,
    /// Decisions in which at least one Wasm rule failed (and so, when the
    /// rule enforces, denied).
    decisions_with_rule_failures: u64,
    /// Failures per rule and failure code, the 10 most frequent.
    rule_failures: Vec<RuleFailure>,
    /// True when more decisions had rule failures than were read to
    /// count them (10,000): `rule_failures` counts the oldest.
    rule_failures_partial: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionsAt {
    /// RFC 3339 UTC start of the bucket.
    start: String,
    allow: u64,
    deny: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Counted {
    name: String,
    count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionEvents {
    /// Null for token events that name no connection.
    #[schema(required = true)]
    connection: Option<String>,
    /// Record kind (`token.used`, …) to count.
    kinds: BTreeMap<String, u64>,
    total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleFailure {
    rule: String,
    /// `out_of_fuel`, `timeout`, `memory_limit`, `trap`, `instantiate`.
    reason: String,
    count: u64,
}

impl Overview {
    fn new(since: Timestamp, until: Timestamp, o: overview::Overview) -> Self {
        Self {
            since: since.to_string(),
            until: until.to_string(),
            bucket: o.bucket,
            records: o.records,
            allowed: o.allowed,
            denied: o.denied,
            decisions: o
                .decisions
                .into_iter()
                .map(|d| DecisionsAt { start: d.start, allow: d.allow, deny: d.deny })
                .collect(),
            deny_reasons: o.deny_reasons.into_iter().map(|c| Counted { name: c.name, count: c.count }).collect(),
            token_events: o
                .token_events
                .into_iter()
                .map(|c| ConnectionEvents { connection: c.connection, kinds: c.kinds, total: c.total })
                .collect(),
            decisions_with_rule_failures: o.decisions_with_rule_failures,
            rule_failures: o
                .rule_failures
                .into_iter()
                .map(|f| RuleFailure { rule: f.rule, reason: f.reason, count: f.count })
                .collect(),
            rule_failures_partial: o.rule_failures_partial,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/audit/overview",
    operation_id = "audit_overview",
    tag = "audit",
    summary = "A time window of the audit log at a glance",
    description = "Decisions over time (allow and deny), the most frequent deny reasons, token events per \
        connection and Wasm rule failures, counted over the records stamped in `since..until` (at most 31 \
        days; default the last day).",
    params(OverviewParams),
    responses(
        (status = 200, description = "the window's counts", body = Overview),
        (status = 400, description = "an invalid or too long window (`invalid_query`)", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn overview(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<OverviewParams>,
) -> Result<Json<Overview>, ApiError> {
    let until = utc("until", p.until)?.unwrap_or_else(Timestamp::now);
    let since = match utc("since", p.since)? {
        Some(since) => since,
        None => until.checked_add(-DEFAULT_WINDOW).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "`until` is too early to count a day before it").with_field("until")
        })?,
    };
    let window = until.datetime() - since.datetime();
    if window <= TimeDelta::zero() {
        return Err(ApiError::bad_request("invalid_query", "`since` must be before `until`").with_field("since"));
    }
    if window > MAX_WINDOW {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("the window is at most {} days: narrow `since`..`until`", MAX_WINDOW.num_days()),
        )
        .with_field("since"));
    }
    let bucket = Bucket::for_window(window.num_seconds());
    let store = state.store();
    let mut counted = overview::Overview::fold(bucket, store.audit_overview(&since, &until, bucket).await?);
    if counted.decisions_with_rule_failures > 0 {
        let details = store.audit_rule_failures(&since, &until, MAX_RULE_FAILURES_READ).await?;
        let partial = counted.decisions_with_rule_failures > details.len() as u64;
        counted.add_rule_failures(details.iter().map(String::as_str), partial);
    }
    Ok(Json(Overview::new(since, until, counted)))
}
