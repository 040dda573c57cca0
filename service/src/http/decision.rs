//! The one path every decision endpoint takes: decide against the request's
//! snapshot and give the decision an id. (The audit record joins here.)

use chrono::Utc;
use warrant_engine::{Decision, Query};

use super::error::ApiError;
use crate::state::Snapshot;

/// A decision with the identifiers callers and auditors correlate on.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decision: Decision,
    pub decision_id: String,
    pub policy_digest: String,
}

pub fn decide(snapshot: &Snapshot, query: &Query) -> Result<Decided, ApiError> {
    let decision = snapshot.bundle.decide(&snapshot.entities, query, Utc::now())?;
    Ok(Decided {
        decision,
        decision_id: uuid::Uuid::now_v7().to_string(),
        policy_digest: snapshot.bundle.digest().to_owned(),
    })
}
