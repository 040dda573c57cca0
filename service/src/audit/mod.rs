//! The audit log: one writer task seals every event into the keyed chain
//! and commits them in groups; callers are answered only once their record
//! is durable.
//!
//! - Redaction happens here, at the only way in: `details` and free text are
//!   redacted, token ids become keyed digests. Callers' responses are never
//!   touched.
//! - Group commit: while one batch is being written, new events queue; the
//!   next batch takes them all (one transaction, one fsync).
//! - The Merkle tree is stored as tiles with the records (`store/tiles.rs`);
//!   only its right edge is kept here, for the size and root. Proofs read
//!   the O(log n) tiles they need from the store.
//!
//! - Token changes go through the same writer ([`AuditLog::apply_tokens`]):
//!   a token's new state and the record of the event that changed it are
//!   one transaction, so the log never misses a change that was stored.
//!
//! [`verify`] checks a stored log (online and from the CLI); [`writer`] is
//! the group-commit task. (The log's C2SP checkpoints are published from
//! `checkpoints.rs`, beside this module.)

mod event;
pub mod rejections;
pub mod verify;
mod writer;

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use warrant_engine::Timestamp;
pub use warrant_engine::audit::Kind;
use warrant_engine::audit::tiles::TILE_WIDTH;
use warrant_engine::audit::{Hash, TileEdge, TileId, TileReader, TileSource};

use crate::keys::AuditKeys;
use crate::store::{GrantWrite, Store, StoreError, TokenUpdate};
use crate::tokens::{Applied, TokenConflict};
pub use event::Event;
use rejections::{Rejections, Summary};
use writer::Job;
pub use writer::{Appended, AuditError, GrantJobError, RecordOf, TokensRecorded};

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

#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Job>,
    store: Store,
    /// The tree's right edge after the last commit this process saw.
    edge: Arc<RwLock<Arc<TileEdge>>>,
    keys: AuditKeys,
    decisions: DecisionAudit,
    rejections: Arc<Rejections>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("decisions", &self.decisions).finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Brings the tree's tiles up to the log (after an upgrade: from the
    /// records, once), and starts the writer.
    pub async fn open(store: Store, keys: AuditKeys, decisions: DecisionAudit) -> Result<Self, StoreError> {
        let edge = Arc::new(RwLock::new(Arc::new(store.audit_tiles_catch_up().await?)));
        let (queue, rx) = mpsc::channel(QUEUE);
        // Capacity 1: commits while the indexer works coalesce into one wake.
        let (committed, wakes) = mpsc::channel(1);
        tokio::spawn(writer::index_loop(store.clone(), wakes));
        tokio::spawn(writer::write_loop(rx, store.clone(), keys.clone(), Arc::clone(&edge), committed));
        Ok(Self { queue, store, edge, keys, decisions, rejections: Arc::default() })
    }

    pub fn decisions(&self) -> DecisionAudit {
        self.decisions
    }

    /// Refusals of unauthenticated traffic, counted rather than recorded
    /// one by one (see [`rejections`]).
    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    /// Records a summary of the refusals counted since the last flush.
    pub async fn flush_rejections(&self) {
        let summaries = self.rejections.take();
        if summaries.is_empty() {
            return;
        }
        let answers = self.append_all(summaries.iter().map(Summary::event).collect()).await;
        for (summary, answer) in summaries.into_iter().zip(answers) {
            if let Err(e) = answer {
                tracing::error!(error = %e, "cannot record a rejection summary; counted again");
                self.rejections.restore(summary);
            }
        }
    }

    pub fn keys(&self) -> &AuditKeys {
        &self.keys
    }

    fn edge(&self) -> Arc<TileEdge> {
        match self.edge.read() {
            Ok(edge) => Arc::clone(&edge),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The current tree size and root (RFC 9162), from the edge: O(log size).
    pub fn head(&self) -> (u64, Hash) {
        let edge = self.edge();
        (edge.size(), edge.root())
    }

    /// Answers `question` about the tree as it stands (its size is the
    /// reader's), from the O(log size) stored tiles it needs.
    pub async fn read_tree<R>(
        &self,
        question: impl Fn(&TileReader<'_, dyn TileSource + '_>) -> R,
    ) -> Result<R, StoreError> {
        let edge = self.edge();
        self.store.audit_tree(edge.size(), Some(&edge), question).await
    }

    /// The bytes of a C2SP hash tile: the first `width` hashes of tile
    /// `index` at `level`, if the tree has them yet.
    pub async fn tile(&self, level: u8, index: u64, width: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let id = TileId { level, index };
        let cut = |hashes: &[Hash]| hashes.get(..usize::try_from(width).unwrap_or(usize::MAX)).map(<[Hash]>::concat);
        if let Some(bytes) = self.edge().tile(id).and_then(cut) {
            return Ok(Some(bytes));
        }
        if let Some(bytes) = self.store.audit_tiles(&[id]).await?.get(&id).and_then(|t| cut(t)) {
            return Ok(Some(bytes));
        }
        // Level 0's partial tiles are not stored: the records' leaves are
        // (at most 255 of them, bounded by the tile path).
        let first = index.saturating_mul(TILE_WIDTH);
        if level != 0 || width >= TILE_WIDTH || first.saturating_add(width) > self.size() {
            return Ok(None);
        }
        let leaves = self.store.audit_leaves_after(first, u32::try_from(width).unwrap_or(0)).await?;
        Ok(cut(&leaves))
    }

    /// Number of records written (the current tree size).
    pub fn size(&self) -> u64 {
        self.edge().size()
    }

    /// Redacts and records `event`; returns once it is durable.
    pub async fn append(&self, event: Event) -> Result<Appended, AuditError> {
        self.append_all(vec![event]).await.pop().unwrap_or_else(|| Err(AuditError::new("no answer")))
    }

    /// Records `event` straight into `store`, without a running writer (the
    /// CLI); the transaction keeps the chain single with any running service.
    pub async fn append_direct(store: &Store, keys: &AuditKeys, event: Event) -> Result<Appended, AuditError> {
        let ts = Timestamp::now();
        let prepared = event.prepare(keys).map_err(AuditError::new)?;
        let mut results = store.append_audit(vec![prepared], keys.signing(), ts).await.map_err(AuditError::new)?;
        match results.pop() {
            Some(Ok(r)) => Ok(Appended { seq: r.seq, mac: r.mac }),
            Some(Err(e)) => Err(AuditError::new(e)),
            None => Err(AuditError::new("nothing written")),
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
        let stopped = || AuditError::new("the writer stopped");
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            let (reply, answer) = oneshot::channel();
            let prepared = match event.prepare(&self.keys) {
                Ok(p) => p,
                Err(e) => {
                    answers.push(Err(AuditError::new(e)));
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
        let stopped = || AuditError::new("the writer stopped");
        let (reply, answer) = oneshot::channel();
        let job = Job::Tokens { updates, record: Box::new(record), reply };
        self.queue.send(job).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Writes a vault grant's change with its token changes and the record
    /// `record` makes of their outcomes, in one transaction of its own;
    /// returns once durable. [`GrantJobError::Changed`] (nothing stored)
    /// when the grant is no longer at the version `write` was computed from.
    pub async fn write_grant(
        &self,
        write: GrantWrite,
        updates: Vec<TokenUpdate<'static, TokenConflict>>,
        record: impl FnOnce(&[Applied]) -> Option<Event> + Send + 'static,
    ) -> Result<TokensRecorded, GrantJobError> {
        let stopped = || GrantJobError::Audit(AuditError::new("the writer stopped"));
        let (reply, answer) = oneshot::channel();
        let job = Job::Grant { write: Box::new(write), updates, record: Box::new(record), reply };
        self.queue.send(job).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}
