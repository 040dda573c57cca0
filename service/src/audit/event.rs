//! An event as the service describes it, before redaction and sealing:
//! plain strings and a token id in clear, turned into an engine `Entry`
//! (token id digested, text redacted) on the writer's way in.

use serde_json::{Map, Value};
use warrant_engine::audit::{Entry, Kind, Outcome, Prepared, SealError};

use crate::keys::AuditKeys;

/// An event before redaction and sealing.
#[derive(Debug, Clone)]
pub struct Event {
    /// Typed: every record the service writes is one of its kinds
    /// (docs/audit.md#records); only records read back carry free text.
    pub kind: Kind,
    pub actor: String,
    /// In clear here; stored as its keyed digest.
    pub token_id: Option<String>,
    pub token_owner: Option<String>,
    pub connection: Option<String>,
    pub project: Option<String>,
    pub decision: Option<bool>,
    pub reasons: Option<Vec<String>>,
    pub policy_digest: Option<String>,
    pub details: Map<String, Value>,
}

impl Event {
    pub fn new(kind: Kind, actor: impl Into<String>) -> Self {
        Self {
            kind,
            actor: actor.into(),
            token_id: None,
            token_owner: None,
            connection: None,
            project: None,
            decision: None,
            reasons: None,
            policy_digest: None,
            details: Map::new(),
        }
    }

    /// Redacts the event and renders it for sealing.
    pub(super) fn prepare(self, keys: &AuditKeys) -> Result<Prepared, SealError> {
        Prepared::new(self.into_entry(keys))
    }

    pub(super) fn into_entry(self, keys: &AuditKeys) -> Entry {
        let redactor = keys.redactor();
        let text = |s: String| redactor.redact_string(s);
        let details = match redactor.redact_owned(Value::Object(self.details)) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        // The kind is one of ours, never user text: nothing to redact.
        let mut entry = Entry::new(0, "", self.kind, text(self.actor));
        entry.token_id = self.token_id.map(|t| keys.digest(&t));
        entry.token_owner = self.token_owner.map(text);
        entry.connection = self.connection.map(text);
        entry.project = self.project.map(text);
        entry.decision = self.decision.map(|a| if a { Outcome::Allow } else { Outcome::Deny });
        entry.reasons = self.reasons.map(|r| r.into_iter().map(text).collect());
        entry.policy_digest = self.policy_digest;
        entry.details = details;
        entry
    }
}
