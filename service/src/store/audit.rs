//! The audit log's storage, SQLite. Records go in as one multi-row INSERT per
//! group commit; reads come back in `seq` order.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use warrant_engine::audit::{Checkpoint, Keyring, Mac, Prepared, Record, SealError};

use super::rows::{Sealed, insert_statements, seal_after};

use super::StoreError;

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

macro_rules! record_columns {
    () => {
        "seq, ts, kind, actor, token_id, token_owner, connection, project, decision, reasons, policy_digest, details, key_id, prev_mac, mac"
    };
}

/// Rows per INSERT statement: 15 bound parameters a row, under SQLite's
/// limit of 32,766.
const INSERT_CHUNK: usize = 2000;

/// The chain head the last append on this store left, kept so the next
/// group commit is a single statement: no transaction to open, no head to
/// read. Whether it is still the head is the insert's to check: the next
/// record's `seq` is the table's primary key (a record someone else
/// appended meanwhile makes the insert fail as a whole), and the schema
/// refuses a record that does not follow the stored one (`0009`).
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

/// Seals `entries` after the stored head and appends them atomically:
/// whoever writes (the service's writer, the CLI), the chain stays single
/// and gap-free. `ts` stamps every record of the batch.
///
/// With a remembered head, one multi-row INSERT (SQLite commits a statement
/// atomically on its own); if that is refused (another writer appended), or
/// with no head remembered, a write transaction that reads the head first.
pub async fn append(
    pool: &SqlitePool,
    cache: &HeadCache,
    entries: Vec<Prepared>,
    keyring: &Keyring,
    ts: &str,
) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
    if let Some(head) = cache.take() {
        let sealing = seal_after(head, &entries, keyring, ts);
        let new_head = sealing.head;
        let mut statements = insert_statements(sealing.rows, INSERT_CHUNK);
        let attempt = match statements.as_mut_slice() {
            [] => Ok(()),
            [insert] => insert.build().execute(pool).await.map(|_| ()),
            // More than one statement needs a transaction.
            _ => Err(sqlx::Error::Protocol("batch larger than one statement".into())),
        };
        match attempt {
            Ok(()) => {
                cache.set(new_head);
                return Ok(sealing.results);
            }
            // SQLite refused the statement, so nothing of it is stored:
            // someone else appended meanwhile. Seal again after their head.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "audit append after the remembered head refused; reading the head");
            }
            // Anything else could have come after the commit: retrying
            // might store the batch twice, so the batch fails.
            Err(e) => return Err(e.into()),
        }
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (results, new_head) = append_in(&mut tx, &entries, keyring, ts).await?;
    tx.commit().await?;
    cache.set(new_head);
    Ok(results)
}

/// Seals `entries` after the head read inside the write transaction `tx`
/// and inserts them there; returns each entry's outcome and the head once
/// `tx` commits (the caller commits, then tells the [`HeadCache`]).
pub(super) async fn append_in(
    tx: &mut SqliteConnection,
    entries: &[Prepared],
    keyring: &Keyring,
    ts: &str,
) -> Result<(Vec<Result<Sealed, SealError>>, (u64, Mac)), StoreError> {
    let head =
        sqlx::query("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
    let head = match head {
        Some(r) => (seq_of(&r)?, Mac::from_hex(&r.try_get::<String, _>("mac")?).unwrap_or(Mac::ZERO)),
        None => (0, Mac::ZERO),
    };
    let sealing = seal_after(head, entries, keyring, ts);
    for mut insert in insert_statements(sealing.rows, INSERT_CHUNK) {
        insert.build().execute(&mut *tx).await?;
    }
    Ok((sealing.results, sealing.head))
}

/// The `seq` and MAC of the records after `after_seq`, in order, at most
/// `limit` (to catch up on records other writers appended, and to load the
/// Merkle leaves page by page).
pub async fn macs_after(pool: &SqlitePool, after_seq: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, mac FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(seq, mac)| (u64::try_from(seq).unwrap_or(0), mac)).collect())
}

/// The last record's `seq` and `mac`, if any.
pub async fn head(pool: &SqlitePool) -> Result<Option<(u64, String)>, StoreError> {
    let row = sqlx::query("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1").fetch_optional(pool).await?;
    row.map(|r| Ok((seq_of(&r)?, r.try_get("mac")?))).transpose()
}

/// Records with `from <= seq <= to`, in order, at most `limit`.
pub async fn range(pool: &SqlitePool, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        record_columns!(),
        " FROM audit_records WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"
    ))
    .bind(i64::try_from(from).unwrap_or(i64::MAX))
    .bind(i64::try_from(to).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(record_of).collect()
}

/// The first `seq` whose `details`/`reasons` were stored as canonical text
/// (0, strict everywhere, if the mark is missing).
pub async fn canonical_since(pool: &SqlitePool) -> Result<u64, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM audit_canonical_since").fetch_one(pool).await?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

pub async fn count(pool: &SqlitePool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_records").fetch_one(pool).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Which records [`select`] reads, besides its filter.
#[derive(Debug, Clone, Copy)]
pub enum Candidates<'a> {
    /// Every record after the cursor.
    All,
    /// Only these `seq`s.
    Listed(&'a [u64]),
    /// Only `seq`s in this range (inclusive).
    Range(u64, u64),
}

/// Records after `after` among `candidates` that match every condition of
/// `f` (its own cursor aside), in `seq` order, at most `f.limit`.
pub(super) async fn select(
    pool: &SqlitePool,
    f: &AuditFilter,
    after: u64,
    candidates: Candidates<'_>,
) -> Result<Vec<Record>, StoreError> {
    let mut q = sqlx::QueryBuilder::new(concat!("SELECT ", record_columns!(), " FROM audit_records WHERE seq > "));
    q.push_bind(i64::try_from(after).unwrap_or(i64::MAX));
    match candidates {
        Candidates::All => {}
        Candidates::Listed(seqs) => {
            q.push(" AND seq IN (");
            let mut list = q.separated(", ");
            for seq in seqs {
                list.push_bind(i64::try_from(*seq).unwrap_or(i64::MAX));
            }
            q.push(")");
        }
        Candidates::Range(first, last) => {
            q.push(" AND seq BETWEEN ")
                .push_bind(i64::try_from(first).unwrap_or(i64::MAX))
                .push(" AND ")
                .push_bind(i64::try_from(last).unwrap_or(i64::MAX));
        }
    }
    let mut eq = |column: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            q.push(" AND ").push(column).push(" = ").push_bind(v.clone());
        }
    };
    eq("kind", &f.kind);
    eq("actor", &f.actor);
    eq("token_id", &f.token_id);
    eq("connection", &f.connection);
    eq("project", &f.project);
    eq("decision", &f.decision);
    if let Some(since) = &f.since {
        q.push(" AND ts >= ").push_bind(since.clone());
    }
    if let Some(until) = &f.until {
        q.push(" AND ts < ").push_bind(until.clone());
    }
    q.push(" ORDER BY seq LIMIT ").push_bind(f.limit);
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(record_of).collect()
}

pub async fn save_checkpoint(pool: &SqlitePool, c: &Checkpoint) -> Result<(), StoreError> {
    sqlx::query("INSERT OR IGNORE INTO audit_checkpoints (tree_size, root, ts, key_id, mac) VALUES (?, ?, ?, ?, ?)")
        .bind(i64::try_from(c.tree_size).unwrap_or(i64::MAX))
        .bind(&c.root)
        .bind(&c.ts)
        .bind(&c.key_id)
        .bind(&c.mac)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn checkpoints(pool: &SqlitePool) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = sqlx::query("SELECT tree_size, root, ts, key_id, mac FROM audit_checkpoints ORDER BY tree_size")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                tree_size: seq_col(r, "tree_size")?,
                root: r.try_get("root")?,
                ts: r.try_get("ts")?,
                key_id: r.try_get("key_id")?,
                mac: r.try_get("mac")?,
            })
        })
        .collect()
}

fn seq_of(row: &SqliteRow) -> Result<u64, StoreError> {
    seq_col(row, "seq")
}

fn seq_col(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    let v: i64 = row.try_get(column)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative `{column}`")))
}

fn record_of(row: &SqliteRow) -> Result<Record, StoreError> {
    super::rows::record_of(row)
}
