//! SQLite's fast append: a group commit as one INSERT after the head this
//! handle remembers, with no transaction to open and no head to read.
//!
//! Whether the remembered head is still the head is the insert's to check:
//! the next record's `seq` is the table's primary key (a record someone else
//! appended meanwhile makes the insert fail as a whole), and the schema
//! refuses a record that does not follow the stored one (migration `0009`).
//! When it is refused, or nothing is remembered, the caller takes the write
//! transaction every backend shares (`store/write.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use warrant_engine::audit::{Keyring, Mac, Prepared, SealError};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::sealing::{Sealed, insert_statements, seal_after};
use crate::store::write::RECORDS_PER_INSERT;

/// The chain head the last append on this store left.
#[derive(Debug, Default)]
pub struct HeadCache {
    head: std::sync::Mutex<Option<(u64, Mac)>>,
    /// The last `seq` this handle stored (0: none yet); kept apart from
    /// `head`, which is taken while an append is in flight.
    stored: AtomicU64,
}

impl HeadCache {
    fn take(&self) -> Option<(u64, Mac)> {
        self.head.lock().ok().and_then(|mut h| h.take())
    }

    /// The last `seq` this handle stored (0 if none yet).
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    pub(super) fn set(&self, head: (u64, Mac)) {
        if let Ok(mut h) = self.head.lock() {
            *h = Some(head);
        }
        self.stored.fetch_max(head.0, Ordering::Relaxed);
    }
}

impl SqliteStore {
    /// Seals `entries` after the remembered head and inserts them as one
    /// statement (SQLite commits a statement atomically on its own). `None`
    /// when there is no remembered head or the insert was refused because
    /// another writer appended meanwhile: nothing of it is stored, and the
    /// caller appends in a transaction that reads the head.
    pub(crate) async fn append_after_remembered_head(
        &self,
        entries: &[Prepared],
        keyring: &Keyring,
        ts: &str,
    ) -> Result<Option<Vec<Result<Sealed, SealError>>>, StoreError> {
        let Some(head) = self.head.take() else { return Ok(None) };
        let sealing = seal_after(head, entries, keyring, ts);
        let mut statements = insert_statements(sealing.rows, RECORDS_PER_INSERT);
        let attempt = match statements.as_mut_slice() {
            [] => Ok(()),
            [insert] => insert.build().execute(self.writer()).await.map(|_| ()),
            // More than one statement needs a transaction.
            [_, _, ..] => return Ok(None),
        };
        match attempt {
            Ok(()) => {
                self.head.set(sealing.head);
                Ok(Some(sealing.results))
            }
            // SQLite refused the statement, so nothing of it is stored:
            // someone else appended meanwhile.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "audit append after the remembered head refused; reading the head");
                Ok(None)
            }
            // Anything else could have come after the commit: retrying
            // might store the batch twice, so the batch fails.
            Err(e) => Err(e.into()),
        }
    }
}
