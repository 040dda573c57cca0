//! The audit log's storage, the same SQL on both backends: appends (through
//! the write transaction in `write.rs`, or SQLite's append after a
//! remembered head), reads in `seq` order, lookups, checkpoints, and the
//! rows a verifier reads. Records are stored with their `details` and
//! `reasons` as canonical (JCS) text, so verification can splice them
//! instead of re-canonicalizing.

use std::convert::Infallible;

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};
use warrant_engine::audit::{
    ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Mac, Outcome, Prepared, Record, SealError, StoredRecord,
    merkle,
};

use super::sealing::{Sealed, leaf_of};
use super::{Store, StoreError, i64_of, u64_of};

/// Which records an auditor asks for. `after_seq` is the cursor.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    /// Already digested, as stored.
    pub token_id: Option<String>,
    pub connection: Option<String>,
    pub project: Option<String>,
    pub decision: Option<String>,
    pub after_seq: u64,
    pub limit: u32,
}

impl Store {
    /// Seals `entries` after the stored head and appends them in one
    /// transaction (one fsync). Per entry: its record, or why it could not
    /// be sealed. Whoever writes (the service's writer, the CLI, another
    /// instance), the chain stays single and gap-free.
    pub async fn append_audit(
        &self,
        entries: Vec<Prepared>,
        keyring: &Keyring,
        ts: &str,
    ) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
        if let Store::Sqlite(s) = self
            && let Some(results) = s.append_after_remembered_head(&entries, keyring, ts).await?
        {
            return Ok(results);
        }
        let nothing: Vec<super::TokenUpdate<'_, Infallible>> = Vec::new();
        let ((), results) = self.write(nothing, |_| Ok((entries, ())), Some(keyring), ts, false).await?;
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

    /// Every record's Merkle leaf, in `seq` order, read a page of MACs at
    /// a time (a million MAC strings at once would be ~90 MB held at start).
    pub async fn audit_leaves(&self) -> Result<Vec<Hash>, StoreError> {
        /// MACs read per query.
        const PAGE: u32 = 8192;
        let mut leaves = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_macs_after(after, PAGE).await?;
            let Some((last, _)) = page.last() else { return Ok(leaves) };
            after = *last;
            leaves.extend(page.iter().map(|(_, mac)| leaf_of(mac)));
        }
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
            Store::Sqlite(s) => super::sqlite::lookup::query(s.reader(), filter).await,
            Store::Postgres(p) => {
                let rows = select(filter, filter.after_seq, Candidates::All).build().fetch_all(p.reader()).await?;
                rows.iter().map(record_of).collect()
            }
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

/// Records `$1..=$2` in `seq` order, at most `$3`.
const RANGE: &str =
    concat!("SELECT ", record_columns!(), " FROM audit_records WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3");

/// The chain's head as stored: `(0, zero MAC)` for an empty log. A head
/// that does not parse is damage to report, never a reason to chain from
/// zeros.
pub(super) fn head_of(stored: Option<(i64, String)>) -> Result<(u64, Mac), StoreError> {
    match stored {
        None => Ok((0, Mac::ZERO)),
        Some((seq, mac)) => {
            let seq = u64_of(seq, "seq")?;
            let mac =
                Mac::from_hex(&mac).map_err(|e| StoreError::Corrupt(format!("the head's mac at seq {seq}: {e}")))?;
            Ok((seq, mac))
        }
    }
}

/// Which records [`select`] reads, besides its filter.
#[derive(Debug, Clone, Copy)]
pub(super) enum Candidates<'a> {
    /// Every record after the cursor.
    All,
    /// Only these `seq`s.
    Listed(&'a [u64]),
    /// Only `seq`s in this range (inclusive).
    Range(u64, u64),
}

/// The query for the records after `after` among `candidates` that match
/// every condition of `f` (its own cursor aside), in `seq` order, at most
/// `f.limit`.
pub(super) fn select<DB>(f: &AuditFilter, after: u64, candidates: Candidates<'_>) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(concat!("SELECT ", record_columns!(), " FROM audit_records WHERE seq > "));
    q.push_bind(i64_of(after));
    match candidates {
        Candidates::All => {}
        Candidates::Listed(seqs) => {
            q.push(" AND seq IN (");
            let mut list = q.separated(", ");
            for seq in seqs {
                list.push_bind(i64_of(*seq));
            }
            q.push(")");
        }
        Candidates::Range(first, last) => {
            q.push(" AND seq BETWEEN ").push_bind(i64_of(first)).push(" AND ").push_bind(i64_of(last));
        }
    }
    for (column, value) in [
        ("kind", &f.kind),
        ("actor", &f.actor),
        ("token_id", &f.token_id),
        ("connection", &f.connection),
        ("project", &f.project),
        ("decision", &f.decision),
    ] {
        if let Some(v) = value {
            q.push(" AND ").push(column).push(" = ").push_bind(v.clone());
        }
    }
    if let Some(since) = &f.since {
        q.push(" AND ts >= ").push_bind(since.clone());
    }
    if let Some(until) = &f.until {
        q.push(" AND ts < ").push_bind(until.clone());
    }
    q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(f.limit));
    q
}

/// A stored audit row as a record. A column that does not parse is
/// reported as a record that will not verify, not as a store failure: the
/// auditor must see which `seq` is damaged.
pub(crate) fn record_of<R>(row: &R) -> Result<Record, StoreError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let text = |c: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(c)?) };
    let optional = |c: &str| -> Result<Option<String>, StoreError> { Ok(row.try_get::<Option<String>, _>(c)?) };
    let seq: i64 = row.try_get("seq")?;
    let details = text("details")?;
    let mut details = match serde_json::from_str(&details) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::from_iter([("__unparseable".to_owned(), Value::String(details))]),
    };
    let decision = match optional("decision")?.as_deref() {
        None => None,
        Some("allow") => Some(Outcome::Allow),
        Some("deny") => Some(Outcome::Deny),
        // Not a value the writer stores: keep it visible and unverifiable.
        Some(other) => {
            details.insert("__unparseable_decision".to_owned(), Value::String(other.to_owned()));
            None
        }
    };
    Ok(Record {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative `seq`".into()))?,
        ts: text("ts")?,
        kind: text("kind")?,
        actor: text("actor")?,
        token_id: optional("token_id")?,
        token_owner: optional("token_owner")?,
        connection: optional("connection")?,
        project: optional("project")?,
        decision,
        reasons: optional("reasons")?.map(|r| serde_json::from_str(&r).unwrap_or_else(|_| vec![r])),
        policy_digest: optional("policy_digest")?,
        details,
        key_id: text("key_id")?,
        prev_mac: text("prev_mac")?,
        mac: text("mac")?,
    })
}

/// A stored audit row, borrowed, as the stored-text verifier reads it
/// (columns in `record_columns!` order).
pub(crate) fn stored_of<'r, R>(row: &'r R) -> Result<StoredRecord<'r>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    Option<&'r str>: Decode<'r, R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row.try_get(0)?;
    Ok(StoredRecord {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative `seq`".into()))?,
        ts: row.try_get(1)?,
        kind: row.try_get(2)?,
        actor: row.try_get(3)?,
        token_id: row.try_get(4)?,
        token_owner: row.try_get(5)?,
        connection: row.try_get(6)?,
        project: row.try_get(7)?,
        decision: row.try_get(8)?,
        reasons: row.try_get(9)?,
        policy_digest: row.try_get(10)?,
        details: row.try_get(11)?,
        key_id: row.try_get(12)?,
        prev_mac: row.try_get(13)?,
        mac: row.try_get(14)?,
    })
}

/// Feeds a stream of audit rows to `verifier`, collecting Merkle leaves
/// when asked. Returns how many rows were read, or the first break.
pub(crate) async fn verify_rows<'r, R, S>(
    mut rows: S,
    verifier: &mut ChainVerifier<'_>,
    mut leaves: Option<&mut Vec<Hash>>,
) -> Result<Result<u64, ChainBreak>, StoreError>
where
    R: Row,
    S: tokio_stream::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    usize: ColumnIndex<R>,
    for<'a> &'a str: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> Option<&'a str>: Decode<'a, R::Database>,
    for<'a> i64: Decode<'a, R::Database> + Type<R::Database>,
{
    use tokio_stream::StreamExt as _;
    let mut read = 0;
    while let Some(row) = rows.next().await {
        let row = row?;
        let mac = match verifier.push(&stored_of(&row)?) {
            Ok(mac) => mac,
            Err(broken) => return Ok(Err(broken)),
        };
        if let Some(l) = leaves.as_deref_mut() {
            l.push(merkle::leaf_hash(mac.as_bytes()));
        }
        read += 1;
    }
    Ok(Ok(read))
}
