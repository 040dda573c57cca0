//! The single writer task: takes every job waiting, seals the records after
//! the chain's head and commits them in one transaction (group commit), then
//! answers each caller. Token changes travel as jobs too, so a token's new
//! state and the record of the event that changed it commit together.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use warrant_engine::Timestamp;
use warrant_engine::audit::{Prepared, SealError, TileEdge};

use super::event::Event;
use crate::keys::AuditKeys;
use crate::store::{GrantWrite, Sealed, Store, StoreError, TokenUpdate};
use crate::tokens::{Applied, TokenConflict};

/// Most jobs sealed and written in one transaction.
const MAX_BATCH: usize = 512;
/// Scheduler turns the writer waits, at most, for the callers of its last
/// batch to queue again before it starts the next one.
const REFILL_TURNS: usize = 8;

/// Where a durable record landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    pub seq: u64,
    pub mac: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log could not record the event: {0}")]
pub struct AuditError(String);

impl AuditError {
    pub(super) fn new(why: impl std::fmt::Display) -> Self {
        Self(why.to_string())
    }
}

/// Token changes applied with their record: each change's outcome, in
/// order, and where the record landed (`None`: the job asked for none).
#[derive(Debug)]
pub struct TokensRecorded {
    pub outcomes: Vec<Applied>,
    pub appended: Option<Appended>,
}

/// What makes a token job's record from its changes' outcomes, in order.
/// `None` (nothing to record) is for a job that changed no token, such as a
/// refused change; a job that changed one and gives no record fails its
/// whole batch, since a change is never stored without its record.
pub type RecordOf = Box<dyn FnOnce(&[Applied]) -> Option<Event> + Send>;

/// One caller's work for the writer.
#[allow(clippy::large_enum_variant, reason = "records are the hot path: boxing would allocate once per record")]
pub(super) enum Job {
    /// A record, prepared on the caller's task.
    Record { prepared: Prepared, reply: oneshot::Sender<Result<Appended, AuditError>> },
    /// Token changes and the record made of their outcomes.
    Tokens {
        updates: Vec<TokenUpdate<'static, TokenConflict>>,
        record: RecordOf,
        reply: oneshot::Sender<Result<TokensRecorded, AuditError>>,
    },
    /// A vault grant's change, with its token changes and record: committed
    /// in a transaction of its own, so a grant changed meanwhile (refused)
    /// fails only this job.
    Grant {
        write: Box<GrantWrite>,
        updates: Vec<TokenUpdate<'static, TokenConflict>>,
        record: RecordOf,
        reply: oneshot::Sender<Result<TokensRecorded, GrantJobError>>,
    },
}

/// Why a grant's change was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantJobError {
    /// The row is no longer at the version the change was computed from.
    #[error("grant `{0}` changed meanwhile")]
    Changed(String),
    /// Its token change was refused (the token's state contradicts it).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

enum Reply {
    Record(oneshot::Sender<Result<Appended, AuditError>>),
    Tokens(oneshot::Sender<Result<TokensRecorded, AuditError>>),
}

impl Reply {
    fn fail(self, error: AuditError) {
        match self {
            Self::Record(r) => drop(r.send(Err(error))),
            Self::Tokens(r) => drop(r.send(Err(error))),
        }
    }
}

/// A job inside the transaction, once its reply is set aside.
#[allow(clippy::large_enum_variant, reason = "as `Job`: no allocation per record")]
enum Step {
    Record(Prepared),
    Tokens { count: usize, record: RecordOf },
}

/// Where a job's record landed in the batch, and its token outcomes.
struct Placed {
    entry: Option<usize>,
    outcomes: Vec<Applied>,
}

pub(super) async fn write_loop(
    mut rx: mpsc::Receiver<Job>,
    store: Store,
    keys: AuditKeys,
    edge: Arc<RwLock<Arc<TileEdge>>>,
    committed: mpsc::Sender<()>,
) {
    let mut last_batch = 0;
    while let Some(first) = rx.recv().await {
        // The callers just answered are the likeliest to send again: give
        // them a moment (a few scheduler turns, no sleep) to queue, so the
        // next commit carries them instead of leaving them for the one after.
        for _ in 0..REFILL_TURNS {
            if rx.len() + 1 >= last_batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        last_batch = batch.len();
        let commit = Commit { store: &store, keys: &keys, edge: &edge, committed: &committed, ts: Timestamp::now() };
        let started = std::time::Instant::now();
        let metrics = &crate::metrics::METRICS;
        metrics.audit_batch_records.observe(batch.len() as f64);
        // Grant jobs first, each alone (rare: a grant changes when it is
        // made, refreshed or revoked).
        if batch.iter().any(|j| matches!(j, Job::Grant { .. })) {
            let grants: Vec<Job>;
            (grants, batch) = batch.into_iter().partition(|j| matches!(j, Job::Grant { .. }));
            for job in grants {
                commit.grant(job).await;
            }
        }
        if batch.iter().any(|j| matches!(j, Job::Tokens { .. })) {
            commit.with_tokens(batch).await;
        } else if !batch.is_empty() {
            commit.records(batch).await;
        }
        metrics.audit_commit_seconds.observe(started.elapsed());
    }
}

/// One group commit, and what it keeps up to date.
struct Commit<'a> {
    store: &'a Store,
    keys: &'a AuditKeys,
    edge: &'a RwLock<Arc<TileEdge>>,
    committed: &'a mpsc::Sender<()>,
    ts: Timestamp,
}

impl Commit<'_> {
    /// After a commit, before anyone is answered: the tree's size covers
    /// every acknowledged record (a proof can be asked for at once), and
    /// the indexer is woken.
    fn stored(&self) {
        if let Some(edge) = self.store.audit_edge()
            && let Ok(mut e) = self.edge.write()
            && edge.size() > e.size()
        {
            *e = Arc::new(edge);
        }
        let _ = self.committed.try_send(());
    }

    /// Records only: one statement, and a record that cannot be sealed fails
    /// alone.
    async fn records(&self, batch: Vec<Job>) {
        let (store, keys, ts) = (self.store, self.keys, self.ts);
        let mut entries = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for job in batch {
            if let Job::Record { prepared, reply } = job {
                entries.push(prepared);
                replies.push(reply);
            }
        }
        match store.append_audit(entries, keys.signing(), ts).await {
            Ok(results) => {
                self.stored();
                for (result, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(result.map(appended).map_err(|e: SealError| AuditError(e.to_string())));
                }
            }
            Err(e) => fail(replies.into_iter().map(Reply::Record), &e),
        }
    }

    /// Token changes with records: one transaction holds both, and every
    /// record of the batch must seal, or nothing of it is stored.
    async fn with_tokens(&self, batch: Vec<Job>) {
        let (store, keys, ts) = (self.store, self.keys, self.ts);
        let mut updates = Vec::new();
        let mut steps = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Record { prepared, reply } => {
                    steps.push(Step::Record(prepared));
                    replies.push(Reply::Record(reply));
                }
                Job::Tokens { updates: changes, record, reply } => {
                    steps.push(Step::Tokens { count: changes.len(), record });
                    updates.extend(changes);
                    replies.push(Reply::Tokens(reply));
                }
                // Taken apart by the loop; never here.
                Job::Grant { reply, .. } => drop(reply.send(Err(AuditError::new("misrouted grant change").into()))),
            }
        }
        let records = move |outcomes: Vec<Applied>| -> Result<(Vec<Prepared>, Vec<Placed>), StoreError> {
            let mut outcomes = outcomes.into_iter();
            let mut entries = Vec::with_capacity(steps.len());
            let mut placed = Vec::with_capacity(steps.len());
            for step in steps {
                match step {
                    Step::Record(prepared) => {
                        placed.push(Placed { entry: Some(entries.len()), outcomes: Vec::new() });
                        entries.push(prepared);
                    }
                    Step::Tokens { count, record } => {
                        let mine: Vec<Applied> = outcomes.by_ref().take(count).collect();
                        let entry = match record(&mine) {
                            Some(event) => {
                                entries.push(Prepared::new(event.into_entry(keys))?);
                                Some(entries.len() - 1)
                            }
                            None if mine.iter().any(|o| matches!(o, Ok(Some(_)))) => {
                                return Err(StoreError::Corrupt("a token change came without its audit record".into()));
                            }
                            None => None,
                        };
                        placed.push(Placed { entry, outcomes: mine });
                    }
                }
            }
            Ok((entries, placed))
        };
        match store.update_tokens_and_append(None, updates, records, keys.signing(), ts).await {
            Ok((placed, sealed)) => {
                self.stored();
                for (job, reply) in placed.into_iter().zip(replies) {
                    let record = job.entry.and_then(|i| sealed.get(i)).cloned().map(appended);
                    match reply {
                        Reply::Record(r) => {
                            let _ = r.send(record.ok_or_else(|| AuditError("the record was not stored".into())));
                        }
                        Reply::Tokens(r) => {
                            let _ = r.send(Ok(TokensRecorded { outcomes: job.outcomes, appended: record }));
                        }
                    }
                }
            }
            Err(e) => fail(replies, &e),
        }
    }
}

impl Commit<'_> {
    /// One grant's change, its token changes and its record, in a
    /// transaction of their own.
    async fn grant(&self, job: Job) {
        let Job::Grant { write, updates, record, reply } = job else { return };
        let keys = self.keys;
        let records = move |outcomes: Vec<Applied>| -> Result<(Vec<Prepared>, Vec<Applied>), StoreError> {
            // The grant's change stands or falls with its token change.
            if let Some(Err(conflict)) = outcomes.iter().find(|o| o.is_err()) {
                return Err(StoreError::Refused(conflict.to_string()));
            }
            let entries = match record(&outcomes) {
                Some(event) => vec![Prepared::new(event.into_entry(keys))?],
                None if outcomes.iter().any(|o| matches!(o, Ok(Some(_)))) => {
                    return Err(StoreError::Corrupt("a token change came without its audit record".into()));
                }
                None => Vec::new(),
            };
            Ok((entries, outcomes))
        };
        let answer =
            match self.store.update_tokens_and_append(Some(&write), updates, records, keys.signing(), self.ts).await {
                Ok((outcomes, sealed)) => {
                    self.stored();
                    Ok(TokensRecorded { outcomes, appended: sealed.into_iter().next().map(appended) })
                }
                Err(StoreError::GrantChanged(id)) => Err(GrantJobError::Changed(id)),
                Err(StoreError::Refused(why)) => Err(GrantJobError::Refused(why)),
                Err(e) => {
                    tracing::error!(error = %e, "audit write failed");
                    Err(AuditError("storage failure".into()).into())
                }
            };
        let _ = reply.send(answer);
    }
}

fn appended(sealed: Sealed) -> Appended {
    Appended { seq: sealed.seq, mac: sealed.mac }
}

/// Nothing of the batch is stored: every caller gets an error (a 500).
fn fail(replies: impl IntoIterator<Item = Reply>, error: &StoreError) {
    tracing::error!(error = %error, "audit write failed");
    for reply in replies {
        reply.fail(AuditError("storage failure".into()));
    }
}

/// Keeps the store's lookup structures (SQLite's postings) up to date behind
/// the log, woken after each commit, so acknowledgements never wait for it.
/// Ends with the writer.
pub(super) async fn index_loop(store: Store, mut committed: mpsc::Receiver<()>) {
    loop {
        if let Err(e) = store.audit_index().await {
            // Queries stay correct (they scan what is not indexed); retry
            // after the next commit.
            tracing::warn!(error = %e, "audit lookup indexing failed");
        }
        if committed.recv().await.is_none() {
            return;
        }
    }
}
