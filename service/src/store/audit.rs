//! The audit log's storage, the same SQL on both backends: appends (through
//! the write transaction in `write.rs`, or SQLite's append after a
//! remembered head), reads in `seq` order, lookups, checkpoints, and the
//! rows a verifier reads. Records are stored with their `details` and
//! `reasons` as canonical (JCS) text, so verification can splice them
//! instead of re-canonicalizing.

use std::convert::Infallible;

use warrant_engine::Timestamp;
use warrant_engine::audit::{
    ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Mac, Prepared, Record, SealError, merkle,
};

use super::error::{StoreError, i64_of, u64_of};
use super::open::Store;
use super::records::{AuditFilter, Candidates, RANGE, TimeWindow, record_of, select, stored_of, verify_rows};
use super::sealing::{Sealed, entry_of};
use super::tokens::TokenUpdate;

/// Most logged decisions one replay reads (`warrant diff --replay`, a dry
/// run's `replay`): the HTTP limit, and the count a time window alone gets.
pub const MAX_REPLAY: usize = 100_000;

impl Store {
    /// Seals `entries` after the stored head and appends them in one
    /// transaction (one fsync). Per entry: its record, or why it could not
    /// be sealed. Whoever writes (the service's writer, the CLI, another
    /// instance), the chain stays single and gap-free.
    pub async fn append_audit(
        &self,
        entries: Vec<Prepared>,
        keyring: &Keyring,
        ts: Timestamp,
    ) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
        if let Store::Sqlite(s) = self
            && let Some(results) = s.append_after_remembered_head(&entries, keyring, ts).await?
        {
            return Ok(results);
        }
        let nothing: Vec<TokenUpdate<'_, Infallible>> = Vec::new();
        let ((), results) = self.write(None, nothing, |_| Ok((entries, ())), Some(keyring), ts, false).await?;
        Ok(results)
    }

    /// The `seq` and MAC of the records after `after_seq`, in order, at
    /// most `limit` (to catch up on records other writers appended, and to
    /// load the Merkle leaves page by page).
    pub async fn audit_macs_after(&self, after_seq: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> = on_backend!(self, b => {
            sqlx::query_as("SELECT seq, mac FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(i64_of(after_seq))
                .bind(i64::from(limit))
                .fetch_all(b.reader())
                .await?
        });
        rows.into_iter().map(|(seq, mac)| Ok((u64_of(seq, "seq")?, mac))).collect()
    }

    /// The last audit record's `seq` and `mac`.
    pub async fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        let row: Option<(i64, String)> = on_backend!(self, b => {
            sqlx::query_as("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1")
                .fetch_optional(b.reader())
                .await?
        });
        row.map(|(seq, mac)| Ok((u64_of(seq, "seq")?, mac))).transpose()
    }

    /// Audit records `from..=to` in order, at most `limit`.
    pub async fn audit_range(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
        on_backend!(self, b => {
            let rows = sqlx::query(RANGE)
                .bind(i64_of(from))
                .bind(i64_of(to))
                .bind(i64::from(limit))
                .fetch_all(b.reader())
                .await?;
            rows.iter().map(record_of).collect()
        })
    }

    /// Streams audit records `from..=to` (at most `limit`) through
    /// `verifier`, pushing each one's Merkle leaf to `leaves` if given.
    /// Returns how many were read, or where the chain breaks. SQLite scans
    /// on threads of its own (`sqlite/scan.rs`).
    pub async fn audit_verify_range(
        &self,
        range: (u64, u64, u32),
        verifier: &mut ChainVerifier<'_>,
        leaves: Option<&mut Vec<Hash>>,
    ) -> Result<Result<u64, ChainBreak>, StoreError> {
        match self {
            Store::Sqlite(s) => s.verify_range(range, verifier, leaves).await,
            Store::Postgres(p) => {
                let (from, to, limit) = range;
                let rows =
                    sqlx::query(RANGE).bind(i64_of(from)).bind(i64_of(to)).bind(i64::from(limit)).fetch(p.reader());
                verify_rows(rows, verifier, leaves).await
            }
        }
    }

    /// The first `seq` stored with canonical `details`/`reasons` text (0,
    /// strict everywhere, if the mark is missing).
    pub async fn audit_canonical_since(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> = on_backend!(self, b => {
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_canonical_since").fetch_one(b.reader()).await?
        });
        seq.map_or(Ok(0), |s| u64_of(s, "audit_canonical_since.seq"))
    }

    /// Checkpoints covering at most this many records may have been signed
    /// over the leaves of before `0011_audit_leaves_over_content` (each a
    /// record's MAC): see [`Store::audit_mac_leaves`].
    pub async fn audit_mac_leaves_until(&self) -> Result<u64, StoreError> {
        let size: Option<i64> = on_backend!(self, b => {
            sqlx::query_scalar("SELECT MAX(tree_size) FROM audit_mac_leaves_until").fetch_one(b.reader()).await?
        });
        size.map_or(Ok(0), |s| u64_of(s, "audit_mac_leaves_until.tree_size"))
    }

    /// The first `count` records' leaves as they were before leaves covered
    /// content, `SHA-256(0x00 ‖ mac)`: only to check checkpoints signed then.
    pub async fn audit_mac_leaves(&self, count: u64) -> Result<Vec<Hash>, StoreError> {
        const PAGE: u32 = 8192;
        let mut leaves = Vec::new();
        while (leaves.len() as u64) < count {
            let page = self.audit_macs_after(leaves.len() as u64, PAGE).await?;
            if page.is_empty() {
                break;
            }
            leaves.extend(page.iter().map(|(_, mac)| {
                let bytes = Mac::from_hex(mac).map(|m| *m.as_bytes());
                bytes.map_or_else(|_| merkle::leaf_hash(mac.as_bytes()), |b| merkle::leaf_hash(&b))
            }));
        }
        leaves.truncate(usize::try_from(count).unwrap_or(usize::MAX));
        Ok(leaves)
    }

    /// The Merkle leaves of the records after `after_seq`, in order, at most
    /// `limit`: the hashes of their entries ([`Store::audit_entries`]).
    pub async fn audit_leaves_after(&self, after_seq: u64, limit: u32) -> Result<Vec<Hash>, StoreError> {
        let entries = self.audit_entries(after_seq.saturating_add(1), u64::MAX, limit).await?;
        Ok(entries.iter().map(|entry| merkle::leaf_hash(entry)).collect())
    }

    /// The entries (canonical records, the bytes each leaf hashes) of
    /// records `from..=to`, in order, at most `limit`.
    pub async fn audit_entries(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Vec<u8>>, StoreError> {
        let canonical_since = self.audit_canonical_since().await?;
        on_backend!(self, b => {
            let rows = sqlx::query(RANGE)
                .bind(i64_of(from))
                .bind(i64_of(to))
                .bind(i64::from(limit))
                .fetch_all(b.reader())
                .await?;
            rows.iter().map(|row| Ok(entry_of(&stored_of(row)?, canonical_since))).collect()
        })
    }

    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        let n: i64 = on_backend!(self, b => {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_records").fetch_one(b.reader()).await?
        });
        u64_of(n, "count")
    }

    /// Brings lookup structures kept behind the log up to date (SQLite's
    /// postings, `sqlite/lookup.rs`); returns the last `seq` they cover (0
    /// on PostgreSQL, which keeps ordinary indexes).
    pub async fn audit_index(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.index().await,
            Store::Postgres(_) => Ok(0),
        }
    }

    /// Records matching `filter` after its cursor, in `seq` order, at most
    /// its limit. SQLite narrows the search through its postings first.
    pub async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        match self {
            Store::Sqlite(s) => s.query(filter).await,
            Store::Postgres(p) => {
                let rows = select(filter, filter.after_seq, Candidates::All).build().fetch_all(p.reader()).await?;
                rows.iter().map(record_of).collect()
            }
        }
    }

    /// The newest `count` decision records stamped within `stamped`, oldest
    /// first: windows of the log read backwards from its head, each twice
    /// the last, until enough are found. Replays ask for at most
    /// [`MAX_REPLAY`].
    pub async fn newest_decisions(&self, count: usize, stamped: &TimeWindow) -> Result<Vec<Record>, StoreError> {
        const PAGE: u32 = 10_000;
        let Some((head, _)) = self.audit_head().await? else { return Ok(Vec::new()) };
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut window = u64::try_from(count).unwrap_or(u64::MAX).saturating_mul(2);
        loop {
            let from = head.saturating_sub(window);
            let mut found = Vec::new();
            let mut filter = AuditFilter {
                kind: Some("decision".into()),
                since: stamped.since,
                until: stamped.until,
                after_seq: from,
                limit: PAGE,
                ..AuditFilter::default()
            };
            loop {
                let page = self.audit_query(&filter).await?;
                let Some(last) = page.last() else { break };
                filter.after_seq = last.seq;
                found.extend(page);
            }
            if found.len() >= count || from == 0 {
                let skip = found.len().saturating_sub(count);
                return Ok(found.split_off(skip));
            }
            window = window.saturating_mul(2);
        }
    }

    pub async fn save_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query(
                "INSERT INTO audit_checkpoints (tree_size, root, ts, key_id, mac) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tree_size) DO NOTHING",
            )
            .bind(i64_of(c.tree_size))
            .bind(&c.root)
            .bind(&c.ts)
            .bind(&c.key_id)
            .bind(&c.mac)
            .execute(b.writer())
            .await?;
        });
        Ok(())
    }

    /// Keeps a published C2SP checkpoint (a signed note) for `tree_size`;
    /// one that exists for that size stays (another instance published it).
    pub async fn save_log_checkpoint(&self, tree_size: u64, note: &str) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query("INSERT INTO audit_log_checkpoints (tree_size, note) VALUES ($1, $2) ON CONFLICT (tree_size) DO NOTHING")
                .bind(i64_of(tree_size))
                .bind(note)
                .execute(b.writer())
                .await?;
        });
        Ok(())
    }

    /// Every published C2SP checkpoint, by size: its size and note.
    pub async fn log_checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> = on_backend!(self, b => {
            sqlx::query_as("SELECT tree_size, note FROM audit_log_checkpoints ORDER BY tree_size")
                .fetch_all(b.reader())
                .await?
        });
        rows.into_iter().map(|(size, note)| Ok((u64_of(size, "tree_size")?, note))).collect()
    }

    /// The newest published C2SP checkpoint: its size and note.
    pub async fn latest_log_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.witnessed_log_checkpoint(0).await
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = on_backend!(self, b => {
            sqlx::query_as("SELECT tree_size, root, ts, key_id, mac FROM audit_checkpoints ORDER BY tree_size")
                .fetch_all(b.reader())
                .await?
        });
        rows.into_iter()
            .map(|(size, root, ts, key_id, mac)| {
                Ok(Checkpoint { tree_size: u64_of(size, "tree_size")?, root, ts, key_id, mac })
            })
            .collect()
    }
}
