//! The one path every decision endpoint takes: decide against the request's
//! snapshot, give the decision an id, and record it in the audit log (as
//! `--audit-decisions` says) before anyone is answered. Also the verdict
//! types every decision answer shares.

use serde::Serialize;
use utoipa::ToSchema;
use warrant_engine::rules::Mode;
use warrant_engine::{Decision, Query, RequestError, Timestamp};

use super::error::{ApiError, ItemError};
use super::supplied::Supplied;
use crate::audit::{Event, Kind};
use crate::config::RequestOverrides;
use crate::metrics::RuleFailureLabels;
use crate::rules::RulesBusy;
use crate::state::{AppState, Snapshot};

/// A decision with the identifiers callers and auditors correlate on.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decision: Decision,
    pub decision_id: String,
    pub policy_digest: String,
    /// What the request supplied beyond ids, for the record.
    pub supplied: Supplied,
}

/// Decides `query`; a decision that may run custom rules runs on a rule
/// slot, off the async workers (see [`crate::rules::RuleHost::run`]).
pub async fn decide(state: &AppState, snapshot: &Snapshot, query: &Query) -> Result<Decided, DecideError> {
    let mode = state.request_overrides();
    let supplied = match mode {
        // Nothing to check or record: no work on the decision path.
        RequestOverrides::Allow => Supplied::default(),
        RequestOverrides::Record | RequestOverrides::Deny => Supplied::of(&snapshot.bundle, &snapshot.entities, query),
    };
    supplied.check(mode)?;
    let mut decided = if snapshot.bundle.action_has_rules(&query.action) {
        state.rules().run(|| decide_now(snapshot, query)).await??
    } else {
        decide_now(snapshot, query)?
    };
    if mode == RequestOverrides::Record {
        decided.supplied = supplied;
    }
    Ok(decided)
}

/// Why a request was not decided: the request itself, or no rule slot.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Busy(#[from] RulesBusy),
    /// Refused by `--request-overrides deny`.
    #[error("{}", .0.message())]
    Refused(ApiError),
}

impl From<ApiError> for DecideError {
    fn from(e: ApiError) -> Self {
        Self::Refused(e)
    }
}
impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Request(e) => e.into(),
            DecideError::Busy(e) => e.into(),
            DecideError::Refused(e) => e,
        }
    }
}

impl From<DecideError> for ItemError {
    fn from(e: DecideError) -> Self {
        ApiError::from(e).into_item()
    }
}

fn decide_now(snapshot: &Snapshot, query: &Query) -> Result<Decided, RequestError> {
    let decision = snapshot.bundle.decide(&snapshot.entities, query, Timestamp::now())?;
    count(&decision);
    Ok(Decided {
        decision,
        decision_id: uuid::Uuid::now_v7().to_string(),
        policy_digest: snapshot.bundle.digest().to_owned(),
        supplied: Supplied::default(),
    })
}

/// Counts a decision by outcome, and its rules that gave no verdict by kind.
fn count(decision: &Decision) {
    let metrics = &crate::metrics::METRICS;
    metrics.decisions.get_or_create(&crate::metrics::outcome(decision.allowed)).inc();
    for verdict in decision.rules.iter().filter(|v| v.verdict == warrant_engine::rules::RuleOutcome::Error) {
        let kind = verdict.reason.clone().unwrap_or_default();
        metrics.rule_failures.get_or_create(&RuleFailureLabels { rule: verdict.rule.clone(), kind }).inc();
    }
}

fn event(decided: &Decided, query: &Query) -> Event {
    let mut e = Event::new(Kind::Decision, format!("{}::{}", query.principal.type_name, query.principal.id));
    e.decision = Some(decided.decision.allowed);
    e.reasons = Some(decided.decision.reasons.clone());
    e.policy_digest = Some(decided.policy_digest.clone());
    let details = [
        ("decision_id", serde_json::json!(decided.decision_id)),
        ("action", serde_json::json!(query.action)),
        ("resource", serde_json::json!(format!("{}::{}", query.resource.type_name, query.resource.id))),
        ("policies", serde_json::json!(decided.decision.policies)),
        ("errors", serde_json::json!(decided.decision.errors)),
    ];
    e.details = details.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if !decided.decision.rules.is_empty() {
        e.details.insert("rules".to_owned(), serde_json::json!(decided.decision.rules));
    }
    // What the caller put in the context (a caller-set `now` is under
    // `supplied`): policy impact replays the request from it.
    let context: serde_json::Map<String, serde_json::Value> =
        query.context.iter().filter(|(k, _)| k.as_str() != "now").map(|(k, v)| (k.clone(), v.clone())).collect();
    if !context.is_empty() {
        e.details.insert("context".to_owned(), serde_json::Value::Object(context));
    }
    if let Some(supplied) = decided.supplied.details() {
        e.details.insert("supplied".to_owned(), supplied);
    }
    if !decided.decision.ignored.is_empty() {
        e.details.insert("ignored".to_owned(), serde_json::json!(decided.decision.ignored));
    }
    e
}

/// Writes the `decision` records the configured mode asks for; returns once
/// they are durable. If they cannot be written the request fails: no
/// decision leaves without its record.
pub async fn record_decisions(state: &AppState, decisions: &[(&Decided, &Query)]) -> Result<(), ApiError> {
    let mode = state.audit().decisions();
    let events: Vec<Event> =
        decisions.iter().filter(|(d, _)| mode.wants(d.decision.allowed)).map(|(d, q)| event(d, q)).collect();
    if events.is_empty() {
        return Ok(());
    }
    for result in state.audit().append_all(events).await {
        result?;
    }
    Ok(())
}

/// A native decision: `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn of(allowed: bool) -> Self {
        if allowed { Self::Allow } else { Self::Deny }
    }
}

/// What one custom rule said about a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleVerdict {
    /// The rule's name in `rules/manifest.json`.
    rule: String,
    mode: RuleMode,
    verdict: RuleOutcome,
    /// The rule's reason code (`token_too_old`); for an `error`, the failure:
    /// `out_of_fuel`, `timeout`, `memory_limit`, `trap` or `instantiate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// For an `error`: what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `enforce`: a deny or failure denies the request. `observe`: reported only.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    Enforce,
    Observe,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleOutcome {
    Allow,
    Deny,
    Abstain,
    Error,
}

impl From<warrant_engine::RuleVerdict> for RuleVerdict {
    fn from(v: warrant_engine::RuleVerdict) -> Self {
        let warrant_engine::RuleVerdict { rule, mode, verdict, reason, error } = v;
        let mode = match mode {
            Mode::Enforce => RuleMode::Enforce,
            Mode::Observe => RuleMode::Observe,
        };
        let verdict = match verdict {
            warrant_engine::rules::RuleOutcome::Allow => RuleOutcome::Allow,
            warrant_engine::rules::RuleOutcome::Deny => RuleOutcome::Deny,
            warrant_engine::rules::RuleOutcome::Abstain => RuleOutcome::Abstain,
            warrant_engine::rules::RuleOutcome::Error => RuleOutcome::Error,
        };
        Self { rule, mode, verdict, reason, error }
    }
}

/// The rule verdicts of a decision, as answers show them.
pub fn rule_verdicts(rules: &[warrant_engine::RuleVerdict]) -> Vec<RuleVerdict> {
    rules.iter().cloned().map(RuleVerdict::from).collect()
}
