//! Sealing, the same for every backend: prepared entries become chained,
//! MAC'd rows after the stored head, and the INSERT statements that store
//! them. Backends call it inside the write that read (or remembered) the head.

use std::sync::Arc;

use sqlx::{Database, Encode, QueryBuilder, Type};
use warrant_engine::Timestamp;
use warrant_engine::audit::{
    Columns, Hash, Keyring, Mac, Outcome, Prepared, Seal, SealError, Sealer, StoredRecord, merkle,
};

use super::error::i64_of;

/// Records per INSERT statement: 15 bound parameters a row, under SQLite's
/// limit of 32,766 (PostgreSQL's is 65,535).
pub(super) const RECORDS_PER_INSERT: usize = 2000;

/// A record just appended: where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    /// 64 lowercase hex digits.
    pub mac: String,
    /// Its Merkle leaf, `SHA-256(0x00 ‖ entry)`.
    pub leaf: Hash,
}

/// One row to insert, borrowing the prepared entry it seals. Every text is
/// shared, not copied: the entry's columns (made shared on the caller's
/// side, [`Columns`]), the batch's timestamp and key id, and each MAC (a
/// row's `mac` is the next row's `prev_mac`). sqlx binds an `Arc<str>` as
/// it is, where a `&str` costs a copy and two allocations per parameter, on
/// the single writer's path.
pub(crate) struct NewRow<'a> {
    pub(super) seq: u64,
    pub(super) ts: Arc<str>,
    pub(super) columns: &'a Columns,
    pub(super) key_id: Arc<str>,
    pub(super) prev_mac: Arc<str>,
    pub(super) mac: Arc<str>,
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
pub(crate) fn seal_after<'a>(
    head: (u64, Mac),
    entries: &'a [Prepared],
    keyring: &Keyring,
    ts: Timestamp,
) -> Sealing<'a> {
    let mut sealer = match Sealer::new(keyring, &ts.to_string()) {
        Ok(s) => s,
        Err(e) => return Sealing { results: entries.iter().map(|_| Err(e.clone())).collect(), rows: Vec::new(), head },
    };
    let (mut seq, mut prev) = head;
    let mut results = Vec::with_capacity(entries.len());
    let mut rows = Vec::with_capacity(entries.len());
    let (ts, key_id): (Arc<str>, Arc<str>) = (Arc::from(sealer.ts()), Arc::from(sealer.key_id()));
    let mut prev_hex: Arc<str> = Arc::from(prev.to_hex());
    for prepared in entries {
        match sealer.seal(prepared, seq + 1, &prev) {
            Ok(Seal { mac, leaf }) => {
                seq += 1;
                let mac_hex = mac.to_hex();
                let shared: Arc<str> = Arc::from(mac_hex.as_str());
                results.push(Ok(Sealed { seq, mac: mac_hex, leaf }));
                rows.push(NewRow {
                    seq,
                    ts: Arc::clone(&ts),
                    columns: prepared.columns(),
                    key_id: Arc::clone(&key_id),
                    prev_mac: std::mem::replace(&mut prev_hex, Arc::clone(&shared)),
                    mac: shared,
                });
                prev = mac;
            }
            Err(e) => results.push(Err(e)),
        }
    }
    Sealing { results, rows, head: (seq, prev) }
}

/// The entry of a stored row, the bytes its Merkle leaf hashes: its
/// canonical record. A record stored before canonical text (`seq <
/// canonical_since`) gets its canonical form, as verification computes it;
/// a row whose text cannot be canonicalized gets its MAC's text, so the
/// tree has one leaf per record and verification reports the damage.
pub fn entry_of(record: &StoredRecord<'_>, canonical_since: u64) -> Vec<u8> {
    if record.seq < canonical_since
        && let Some((details, reasons)) = record.recanonicalized()
        && let Ok(entry) = record.with_text(&details, reasons.as_deref()).entry_bytes()
    {
        return entry;
    }
    record.entry_bytes().unwrap_or_else(|_| record.mac.as_bytes().to_vec())
}

/// The Merkle leaf of a stored row, `SHA-256(0x00 ‖ entry)` ([`entry_of`]).
pub fn leaf_of(record: &StoredRecord<'_>, canonical_since: u64) -> Hash {
    merkle::leaf_hash(&entry_of(record, canonical_since))
}

pub(crate) fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
    }
}

/// Appends `rows` as the VALUES of an `INSERT INTO audit_records
/// (<record columns>)`, in column order: one binding for every backend.
/// `details` and `reasons` are stored as their canonical (JCS) text, so
/// verification can splice them instead of re-canonicalizing.
pub(crate) fn push_records<'a, DB>(insert: &mut QueryBuilder<DB>, rows: impl IntoIterator<Item = NewRow<'a>>)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Arc<str>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<Arc<str>>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'static str>: Encode<'t, DB> + Type<DB>,
{
    insert.push_values(rows, |mut row, r| {
        let c = r.columns;
        row.push_bind(i64_of(r.seq))
            .push_bind(r.ts)
            .push_bind(Arc::clone(&c.kind))
            .push_bind(Arc::clone(&c.actor))
            .push_bind(c.token_id.clone())
            .push_bind(c.token_owner.clone())
            .push_bind(c.connection.clone())
            .push_bind(c.project.clone())
            .push_bind(c.decision.map(outcome_str))
            .push_bind(c.reasons.clone())
            .push_bind(c.policy_digest.clone())
            .push_bind(Arc::clone(&c.details))
            .push_bind(r.key_id)
            .push_bind(r.prev_mac)
            .push_bind(r.mac);
    });
}

/// The head of an INSERT of records, before [`push_records`]'s VALUES.
pub(crate) const INSERT_RECORDS: &str = concat!(
    "INSERT INTO audit_records (",
    "seq, ts, kind, actor, token_id, token_owner, connection, project, decision, reasons, ",
    "policy_digest, details, key_id, prev_mac, mac) "
);

/// Inserts `rows` with as few statements as the bound-parameter limit
/// allows (`chunk` rows each; 15 parameters a row).
pub(crate) fn insert_statements<'a, DB>(rows: Vec<NewRow<'a>>, chunk: usize) -> Vec<QueryBuilder<DB>>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Arc<str>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<Arc<str>>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'static str>: Encode<'t, DB> + Type<DB>,
{
    let mut statements = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut insert = QueryBuilder::new(INSERT_RECORDS);
        push_records(&mut insert, rows.by_ref().take(chunk.max(1)));
        statements.push(insert);
    }
    statements
}
