//! Reading records back, the same for every backend: a stored row becomes
//! the record whose MAC verification decides if it is genuine.

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};
use warrant_engine::audit::{
    ChainBreak, ChainVerifier, Entry, Hash, Keyring, Mac, Outcome, Prepared, Record, SealError, Sealer, StoredRecord,
    merkle,
};

use super::StoreError;
use crate::tokens::TokenState;

/// A stored token row.
pub(crate) fn token_of<R>(row: &R) -> Result<TokenState, StoreError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database>,
{
    Ok(TokenState {
        token_id: row.try_get("token_id")?,
        owner: row.try_get("owner")?,
        connection: row.try_get("connection")?,
        status: row.try_get("status")?,
        role: row.try_get("role")?,
        expires_at: row.try_get("expires_at")?,
        updated_at: row.try_get("updated_at")?,
        issued_at: row.try_get("issued_at")?,
    })
}

/// A record just appended: where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    /// 64 lowercase hex digits.
    pub mac: String,
}

/// One row to insert, borrowing the prepared entry it seals.
pub(crate) struct NewRow<'a> {
    seq: u64,
    ts: String,
    entry: &'a Entry,
    details: &'a str,
    reasons: Option<&'a str>,
    key_id: String,
    prev_mac: String,
    mac: String,
}

/// Entries sealed after a head: each entry's outcome, the rows to insert,
/// and the head once they are stored.
pub(crate) struct Sealing<'a> {
    pub results: Vec<Result<Sealed, SealError>>,
    pub rows: Vec<NewRow<'a>>,
    pub head: (u64, Mac),
}

/// Seals `entries` one after the other after the head `(seq, mac)`, all
/// stamped `ts`. Backends call this inside the write transaction that read
/// the head (or, on SQLite, with a remembered head the insert itself checks).
/// Borrows the entries, so a refused attempt can seal them again.
pub(crate) fn seal_after<'a>(head: (u64, Mac), entries: &'a [Prepared], keyring: &Keyring, ts: &str) -> Sealing<'a> {
    let mut sealer = match Sealer::new(keyring, ts) {
        Ok(s) => s,
        Err(e) => return Sealing { results: entries.iter().map(|_| Err(e.clone())).collect(), rows: Vec::new(), head },
    };
    let (mut seq, mut prev) = head;
    let mut results = Vec::with_capacity(entries.len());
    let mut rows = Vec::with_capacity(entries.len());
    for prepared in entries {
        match sealer.seal(prepared, seq + 1, &prev) {
            Ok(mac) => {
                seq += 1;
                let mac_hex = mac.to_hex();
                results.push(Ok(Sealed { seq, mac: mac_hex.clone() }));
                rows.push(NewRow {
                    seq,
                    ts: sealer.ts().to_owned(),
                    entry: prepared.entry(),
                    details: prepared.details_json(),
                    reasons: prepared.reasons_json(),
                    key_id: sealer.key_id().to_owned(),
                    prev_mac: prev.to_hex(),
                    mac: mac_hex,
                });
                prev = mac;
            }
            Err(e) => results.push(Err(e)),
        }
    }
    Sealing { results, rows, head: (seq, prev) }
}

/// The Merkle leaf of a stored MAC; a MAC that does not parse still gets a
/// leaf (of its text), so the tree has one leaf per record and verification
/// reports the damage.
pub fn leaf_of(mac: &str) -> Hash {
    match Mac::from_hex(mac) {
        Ok(m) => merkle::leaf_hash(m.as_bytes()),
        Err(_) => merkle::leaf_hash(mac.as_bytes()),
    }
}

pub(crate) fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
    }
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

/// Appends `rows` as the VALUES of an `INSERT INTO audit_records
/// (<record columns>)`, in column order: one binding for every backend.
/// `details` and `reasons` are stored as their canonical (JCS) text, so
/// verification can splice them instead of re-canonicalizing.
pub(crate) fn push_records<'a, DB>(insert: &mut QueryBuilder<DB>, rows: impl IntoIterator<Item = NewRow<'a>>)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
    for<'s> Option<&'s str>: Encode<'s, DB> + Type<DB>,
{
    insert.push_values(rows, |mut row, r| {
        let e = r.entry;
        row.push_bind(i64::try_from(r.seq).unwrap_or(i64::MAX))
            .push_bind(r.ts)
            .push_bind(e.kind.as_str())
            .push_bind(e.actor.as_str())
            .push_bind(e.token_id.as_deref())
            .push_bind(e.token_owner.as_deref())
            .push_bind(e.connection.as_deref())
            .push_bind(e.project.as_deref())
            .push_bind(e.decision.map(outcome_str))
            .push_bind(r.reasons)
            .push_bind(e.policy_digest.as_deref())
            .push_bind(r.details)
            .push_bind(r.key_id)
            .push_bind(r.prev_mac)
            .push_bind(r.mac);
    });
}

/// Inserts `rows` with as few statements as the bound-parameter limit
/// allows (`chunk` rows each; 15 parameters a row).
pub(crate) fn insert_statements<'a, DB>(rows: Vec<NewRow<'a>>, chunk: usize) -> Vec<QueryBuilder<DB>>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
    for<'s> Option<&'s str>: Encode<'s, DB> + Type<DB>,
{
    let mut statements = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut insert = QueryBuilder::new(concat!(
            "INSERT INTO audit_records (",
            "seq, ts, kind, actor, token_id, token_owner, connection, project, decision, reasons, ",
            "policy_digest, details, key_id, prev_mac, mac) "
        ));
        push_records(&mut insert, rows.by_ref().take(chunk.max(1)));
        statements.push(insert);
    }
    statements
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
