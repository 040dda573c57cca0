//! The one path every decision endpoint takes: decide against the request's
//! snapshot, give the decision an id, and record it in the audit log (as
//! `--audit-decisions` says) before anyone is answered.

use chrono::Utc;
use warrant_engine::{Decision, Query};

use super::error::ApiError;
use crate::audit::Event;
use crate::state::{AppState, Snapshot};

/// A decision with the identifiers callers and auditors correlate on.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decision: Decision,
    pub decision_id: String,
    pub policy_digest: String,
}

/// Decides `query`; a decision that may run custom rules runs on a rule
/// slot, off the async workers (see [`crate::rules::RuleHost::run`]).
pub async fn decide(state: &AppState, snapshot: &Snapshot, query: &Query) -> Result<Decided, ApiError> {
    if snapshot.bundle.action_has_rules(&query.action) {
        state.rules().run(|| decide_now(snapshot, query)).await
    } else {
        decide_now(snapshot, query)
    }
}

fn decide_now(snapshot: &Snapshot, query: &Query) -> Result<Decided, ApiError> {
    let decision = snapshot.bundle.decide(&snapshot.entities, query, Utc::now())?;
    Ok(Decided {
        decision,
        decision_id: uuid::Uuid::now_v7().to_string(),
        policy_digest: snapshot.bundle.digest().to_owned(),
    })
}

fn event(decided: &Decided, query: &Query) -> Event {
    let mut e = Event::new("decision", format!("{}::{}", query.principal.type_name, query.principal.id));
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
    e
}

/// Writes the `decision` records the configured mode asks for; returns once
/// they are durable. If they cannot be written the request fails: no
/// decision leaves without its record.
pub async fn record(state: &AppState, decisions: &[(&Decided, &Query)]) -> Result<(), ApiError> {
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
