//! How one bundle's side of a comparison answers, and how an answer is
//! named in a report.

use cedar_policy::EntityUid;

use crate::decide::{Decider, Decision};
use crate::entities::EntitySet;

/// One bundle's side of a comparison.
#[derive(Clone, Copy)]
pub(crate) struct Side<'a> {
    pub decider: &'a Decider,
    pub entities: &'a EntitySet,
}

/// `Analytics::Action::"run_query"` → `run_query`.
pub(super) fn action_id(uid: &str) -> String {
    uid.parse::<EntityUid>().map_or_else(|_| uid.to_owned(), |u| u.id().unescaped().to_owned())
}

/// What decided `decision`, as a flip names it (`Flip::by`).
pub(super) fn deciding(decision: &Decision) -> Vec<String> {
    if decision.allowed || !decision.policies.is_empty() {
        return decision.policies.clone();
    }
    let rules: Vec<String> =
        decision.rules.iter().filter(|v| v.deny_reason().is_some()).map(|v| format!("rule:{}", v.rule)).collect();
    if rules.is_empty() { decision.reasons.clone() } else { rules }
}
