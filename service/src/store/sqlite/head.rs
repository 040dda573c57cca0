//! The chain head this SQLite handle's last append left, so the next group
//! commit can be one INSERT after it (`SqliteStore::append_after_remembered_head`).

use std::sync::atomic::{AtomicU64, Ordering};

use warrant_engine::audit::Mac;

/// The chain head the last append on this store left.
#[derive(Debug, Default)]
pub struct HeadCache {
    head: std::sync::Mutex<Option<(u64, Mac)>>,
    /// The last `seq` this handle stored (0: none yet); kept apart from
    /// `head`, which is taken while an append is in flight.
    stored: AtomicU64,
}

impl HeadCache {
    pub(super) fn take(&self) -> Option<(u64, Mac)> {
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
