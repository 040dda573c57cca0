//! What one rule said about one request, and the reason an enforcing
//! rule's deny or failure adds to a decision.

use serde::Serialize;

use super::manifest::Mode;

/// Prefix of the reason given when an enforcing rule fails: `rule_error:<name>`.
pub const RULE_ERROR: &str = "rule_error:";
/// Reason given when an enforcing rule denies without a reason of its own.
pub const RULE_DENIED: &str = "rule_denied:";

/// What one rule said about one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleVerdict {
    pub rule: String,
    pub mode: Mode,
    /// `allow`, `deny`, `abstain`, or `error` when the rule gave no verdict.
    pub verdict: RuleOutcome,
    /// The rule's reason code; for an error, the failure code
    /// (`out_of_fuel`, `timeout`, `memory_limit`, `trap`, `instantiate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an error: what happened, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A rule's verdict, or `error` when it gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleOutcome {
    Allow,
    Deny,
    Abstain,
    Error,
}

impl RuleVerdict {
    /// The reason this verdict adds to a decision's reasons, if it changes
    /// the decision (an enforcing deny or failure).
    pub fn deny_reason(&self) -> Option<String> {
        match (self.mode, self.verdict) {
            (Mode::Enforce, RuleOutcome::Deny) => {
                Some(self.reason.clone().unwrap_or_else(|| format!("{RULE_DENIED}{}", self.rule)))
            }
            (Mode::Enforce, RuleOutcome::Error) => Some(format!("{RULE_ERROR}{}", self.rule)),
            _ => None,
        }
    }
}
