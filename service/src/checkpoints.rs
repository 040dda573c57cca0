//! Publishing the log's checkpoints: C2SP signed notes over its tree head
//! (`engine/src/audit/log_checkpoint.rs`, `note.rs`), signed with the log
//! key (`log_keys.rs`). The service publishes one at start and then, while
//! records arrive, at most every `--checkpoint-interval`; each is kept
//! (`audit_log_checkpoints`, append-only) and `GET /log/checkpoint` serves
//! the newest. Reading never signs or writes.
//!
//! Instances sharing a PostgreSQL database publish the same checkpoints:
//! the tree over the same records has the same root, and Ed25519 signatures
//! are deterministic, so a second instance's note for a size is the first
//! one's, and the insert keeps the first.

use std::sync::Arc;
use std::time::Duration;

use warrant_engine::audit::{LogCheckpoint, Note, NoteError};

use crate::audit::AuditLog;
use crate::log_keys::LogKeys;
use crate::store::{Store, StoreError};

/// Why a checkpoint could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot sign the checkpoint: {0}")]
    Sign(#[from] NoteError),
}

/// Signs and keeps a checkpoint of the current tree, unless the newest kept
/// one is already of this size or larger. Returns the size published, if any.
pub async fn publish(store: &Store, audit: &AuditLog, keys: &LogKeys) -> Result<Option<u64>, PublishError> {
    let (tree_size, root) = audit.head();
    if let Some((kept, _)) = store.latest_log_checkpoint().await?
        && kept >= tree_size
    {
        return Ok(None);
    }
    let checkpoint = LogCheckpoint { origin: keys.origin().to_owned(), tree_size, root };
    let note = Note::sign(&checkpoint.text(), &[keys.current()])?;
    store.save_log_checkpoint(tree_size, &note.to_string()).await?;
    Ok(Some(tree_size))
}

/// Publishes every `interval` while the log grows. Failures are logged and
/// retried at the next tick: a checkpoint is a summary of records already
/// durable, so a missed one loses nothing.
pub async fn publish_loop(store: Store, audit: AuditLog, keys: Arc<LogKeys>, interval: Duration) {
    let mut last = 0;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if audit.size() == last {
            continue;
        }
        match publish(&store, &audit, &keys).await {
            Ok(Some(size)) => {
                last = size;
                tracing::debug!(tree_size = size, "checkpoint published");
            }
            Ok(None) => last = audit.size().max(last),
            Err(e) => tracing::error!(error = %e, "cannot publish a checkpoint; retrying"),
        }
    }
}
