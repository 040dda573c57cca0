//! Audit rows, the same for every backend: the filter an auditor sends and
//! the query it becomes, the head as stored, and stored rows read back as
//! records (or, borrowed, as the verifier reads them).

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};
use warrant_engine::Timestamp;
use warrant_engine::audit::{ChainBreak, ChainVerifier, Hash, Mac, Outcome, Record, StoredRecord};

use super::error::{StoreError, i64_of, u64_of};

/// Which records an auditor asks for. `after_seq` is the cursor.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Records stamped at or after this instant. Stored stamps share one
    /// width (`Timestamp`), so comparing the text compares the times.
    pub since: Option<Timestamp>,
    /// Records stamped before this instant.
    pub until: Option<Timestamp>,
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

/// When the records a reader wants were stamped: at or after `since`,
/// before `until` (either open).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeWindow {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

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
        q.push(" AND ts >= ").push_bind(since.to_string());
    }
    if let Some(until) = &f.until {
        q.push(" AND ts < ").push_bind(until.to_string());
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
        if let Err(broken) = verifier.push(&stored_of(&row)?) {
            return Ok(Err(broken));
        }
        if let Some(l) = leaves.as_deref_mut() {
            l.push(verifier.leaf());
        }
        read += 1;
    }
    Ok(Ok(read))
}

/// Records `$1..=$2` in `seq` order, at most `$3`.
pub(super) const RANGE: &str =
    concat!("SELECT ", record_columns!(), " FROM audit_records WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3");
