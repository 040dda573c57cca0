//! The audit log: one writer task seals every event into the keyed chain
//! and commits them in groups; callers are answered only once their record
//! is durable.
//!
//! - Redaction happens here, at the only way in: `details` and free text are
//!   redacted, token ids become keyed digests. Callers' responses are never
//!   touched.
//! - Group commit: while one batch is being written, new events queue; the
//!   next batch takes them all (one transaction, one fsync).
//! - The Merkle leaves (one per record) are kept in memory for checkpoints
//!   and proofs, loaded from the store at start.
//!
//! - Token changes go through the same writer ([`AuditLog::apply_tokens`]):
//!   a token's new state and the record of the event that changed it are
//!   one transaction, so the log never misses a change that was stored.
//!
//! [`verify`] checks a stored log (online and from the CLI); [`writer`] is
//! the group-commit task.

pub mod verify;
mod writer;

use std::sync::{Arc, RwLock};

use chrono::Utc;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
pub use warrant_engine::audit::Kind;
use warrant_engine::audit::{Entry, Hash, Outcome, Prepared};

use crate::keys::Keyring;
use crate::store::{Store, StoreError, TokenUpdate};
use crate::tokens::{Applied, TokenConflict};
use writer::Job;
pub use writer::RecordOf;

/// Jobs waiting for the writer before callers wait to enqueue.
const QUEUE: usize = 8192;

/// Which decisions become `decision` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DecisionAudit {
    #[default]
    All,
    Deny,
    None,
}

impl DecisionAudit {
    pub fn wants(self, allowed: bool) -> bool {
        match self {
            Self::All => true,
            Self::Deny => !allowed,
            Self::None => false,
        }
    }
}

/// Where a durable record landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    pub seq: u64,
    pub mac: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log could not record the event: {0}")]
pub struct AuditError(String);

/// Token changes applied with their record: each change's outcome, in
/// order, and where the record landed (`None`: the job asked for none).
#[derive(Debug)]
pub struct TokensRecorded {
    pub outcomes: Vec<Applied>,
    pub appended: Option<Appended>,
}

#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Job>,
    leaves: Arc<RwLock<Vec<Hash>>>,
    keys: Keyring,
    decisions: DecisionAudit,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("decisions", &self.decisions).finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Loads the chain head and leaves, and starts the writer.
    pub async fn open(store: Store, keys: Keyring, decisions: DecisionAudit) -> Result<Self, StoreError> {
        let leaves = store.audit_leaves().await?;
        let leaves = Arc::new(RwLock::new(leaves));
        let (queue, rx) = mpsc::channel(QUEUE);
        // Capacity 1: commits while the indexer works coalesce into one wake.
        let (committed, wakes) = mpsc::channel(1);
        tokio::spawn(writer::index_loop(store.clone(), wakes));
        tokio::spawn(writer::write_loop(rx, store, keys.clone(), Arc::clone(&leaves), committed));
        Ok(Self { queue, leaves, keys, decisions })
    }

    pub fn decisions(&self) -> DecisionAudit {
        self.decisions
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// The Merkle leaves so far, one per record.
    pub fn leaves(&self) -> Vec<Hash> {
        self.leaves.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// Number of records written (the current tree size).
    pub fn size(&self) -> u64 {
        self.leaves.read().map(|l| l.len() as u64).unwrap_or(0)
    }

    /// Redacts and records `event`; returns once it is durable.
    pub async fn append(&self, event: Event) -> Result<Appended, AuditError> {
        self.append_all(vec![event]).await.pop().unwrap_or_else(|| Err(AuditError("no answer".into())))
    }

    /// Records `event` straight into `store`, without a running writer (the
    /// CLI); the transaction keeps the chain single with any running service.
    pub async fn append_direct(store: &Store, keys: &Keyring, event: Event) -> Result<Appended, AuditError> {
        let ts = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let prepared = event.prepare(keys)?;
        let mut results =
            store.append_audit(vec![prepared], keys.signing(), &ts).await.map_err(|e| AuditError(e.to_string()))?;
        match results.pop() {
            Some(Ok(r)) => Ok(Appended { seq: r.seq, mac: r.mac }),
            Some(Err(e)) => Err(AuditError(e.to_string())),
            None => Err(AuditError("nothing written".into())),
        }
    }

    /// Records several events, queued together so they share a commit;
    /// answers in the same order.
    ///
    /// Redaction and the expensive part of sealing (canonicalizing
    /// `details`, rendering every field that does not depend on the
    /// record's place in the chain) happen here, on the callers' tasks, so
    /// the single writer only splices four fields and computes the HMAC.
    pub async fn append_all(&self, events: Vec<Event>) -> Vec<Result<Appended, AuditError>> {
        let stopped = || AuditError("the writer stopped".into());
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            let (reply, answer) = oneshot::channel();
            let prepared = match event.prepare(&self.keys) {
                Ok(p) => p,
                Err(e) => {
                    answers.push(Err(e));
                    continue;
                }
            };
            answers.push(match self.queue.send(Job::Record { prepared, reply }).await {
                Ok(()) => Ok(answer),
                Err(_) => Err(stopped()),
            });
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(a) => a.await.unwrap_or_else(|_| Err(stopped())),
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Applies token changes and records the event `record` makes of their
    /// outcomes, in one transaction shared with the other jobs of its group
    /// commit: the changes are stored if and only if the record is. Returns
    /// once both are durable.
    pub async fn apply_tokens(
        &self,
        updates: Vec<TokenUpdate<'static, TokenConflict>>,
        record: impl FnOnce(&[Applied]) -> Option<Event> + Send + 'static,
    ) -> Result<TokensRecorded, AuditError> {
        let stopped = || AuditError("the writer stopped".into());
        let (reply, answer) = oneshot::channel();
        let job = Job::Tokens { updates, record: Box::new(record), reply };
        self.queue.send(job).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// An event before redaction and sealing.
#[derive(Debug, Clone)]
pub struct Event {
    /// Typed: every record the service writes is one of the kinds of
    /// `audit.md`; only records read back carry free text.
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
    fn prepare(self, keys: &Keyring) -> Result<Prepared, AuditError> {
        Prepared::new(self.into_entry(keys)).map_err(|e| AuditError(e.to_string()))
    }

    fn into_entry(self, keys: &Keyring) -> Entry {
        let redactor = keys.redactor();
        let text = |s: String| redactor.redact_text(&s);
        let details = match redactor.redact_value(&Value::Object(self.details)) {
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
