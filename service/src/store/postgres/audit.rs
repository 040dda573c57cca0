//! The audit log's storage, PostgreSQL. Appends from every instance are
//! serialised by a transaction-scoped advisory lock taken before the head
//! is read: N writers on N instances, one gap-free chain.

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgPool};
use warrant_engine::audit::{ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Mac, Prepared, Record, SealError};

use crate::store::rows::{Sealed, insert_statements, record_of, seal_after, verify_rows};
use crate::store::{AuditFilter, StoreError};

/// The advisory-lock key of the audit chain (any constant unique to it).
const CHAIN_LOCK: i64 = 0x7761_7272_616e_7401;
/// Rows per INSERT statement: 15 bound parameters a row, under
/// PostgreSQL's limit of 65,535.
const INSERT_CHUNK: usize = 4000;

macro_rules! record_columns {
    () => {
        "seq, ts, kind, actor, token_id, token_owner, connection, project, decision, reasons, policy_digest, details, key_id, prev_mac, mac"
    };
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub async fn append(
    pool: &PgPool,
    entries: Vec<Prepared>,
    keyring: &Keyring,
    ts: &str,
) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
    let mut tx = pool.begin().await?;
    let results = append_in(&mut tx, &entries, keyring, ts).await?;
    tx.commit().await?;
    Ok(results)
}

/// Takes the chain's lock, seals `entries` after the head and inserts them
/// inside `tx` (the caller commits).
pub(super) async fn append_in(
    tx: &mut PgConnection,
    entries: &[Prepared],
    keyring: &Keyring,
    ts: &str,
) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut *tx).await?;
    let head =
        sqlx::query("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
    let head = match head {
        Some(r) => {
            let s: i64 = r.try_get("seq")?;
            (u64::try_from(s).unwrap_or(0), Mac::from_hex(&r.try_get::<String, _>("mac")?).unwrap_or(Mac::ZERO))
        }
        None => (0, Mac::ZERO),
    };
    let sealing = seal_after(head, entries, keyring, ts);
    for mut insert in insert_statements(sealing.rows, INSERT_CHUNK) {
        insert.build().execute(&mut *tx).await?;
    }
    Ok(sealing.results)
}

pub async fn head(pool: &PgPool) -> Result<Option<(u64, String)>, StoreError> {
    let row = sqlx::query("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1").fetch_optional(pool).await?;
    row.map(|r| {
        let s: i64 = r.try_get("seq")?;
        Ok((u64::try_from(s).unwrap_or(0), r.try_get("mac")?))
    })
    .transpose()
}

/// Records `$1..=$2` in `seq` order, at most `$3`.
const RANGE: &str =
    concat!("SELECT ", record_columns!(), " FROM audit_records WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3");

pub async fn range(pool: &PgPool, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
    let rows = sqlx::query(RANGE).bind(as_i64(from)).bind(as_i64(to)).bind(i64::from(limit)).fetch_all(pool).await?;
    rows.iter().map(record_of).collect()
}

/// Streams records `from..=to` (at most `limit`) through `verifier`.
pub async fn verify_range(
    pool: &PgPool,
    (from, to, limit): (u64, u64, u32),
    verifier: &mut ChainVerifier<'_>,
    leaves: Option<&mut Vec<Hash>>,
) -> Result<Result<u64, ChainBreak>, StoreError> {
    let rows = sqlx::query(RANGE).bind(as_i64(from)).bind(as_i64(to)).bind(i64::from(limit)).fetch(pool);
    verify_rows(rows, verifier, leaves).await
}

/// The first `seq` whose `details`/`reasons` were stored as canonical text.
pub async fn canonical_since(pool: &PgPool) -> Result<u64, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM audit_canonical_since").fetch_one(pool).await?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

pub async fn macs_after(pool: &PgPool, after_seq: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, mac FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(as_i64(after_seq))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(seq, mac)| (u64::try_from(seq).unwrap_or(0), mac)).collect())
}

pub async fn count(pool: &PgPool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_records").fetch_one(pool).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub async fn query(pool: &PgPool, f: &AuditFilter) -> Result<Vec<Record>, StoreError> {
    let mut q = sqlx::QueryBuilder::new(concat!("SELECT ", record_columns!(), " FROM audit_records WHERE seq > "));
    q.push_bind(as_i64(f.after_seq));
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
    q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(f.limit));
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(record_of).collect()
}

pub async fn save_checkpoint(pool: &PgPool, c: &Checkpoint) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_checkpoints (tree_size, root, ts, key_id, mac) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING")
        .bind(as_i64(c.tree_size))
        .bind(&c.root)
        .bind(&c.ts)
        .bind(&c.key_id)
        .bind(&c.mac)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn checkpoints(pool: &PgPool) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = sqlx::query("SELECT tree_size, root, ts, key_id, mac FROM audit_checkpoints ORDER BY tree_size")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let size: i64 = r.try_get("tree_size")?;
            Ok(Checkpoint {
                tree_size: u64::try_from(size).unwrap_or(0),
                root: r.try_get("root")?,
                ts: r.try_get("ts")?,
                key_id: r.try_get("key_id")?,
                mac: r.try_get("mac")?,
            })
        })
        .collect()
}
