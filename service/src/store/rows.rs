//! Reading records back, the same for every backend: a stored row becomes
//! the record whose MAC verification decides if it is genuine.

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};
use warrant_engine::audit::{Entry, Keyring, Mac, Outcome, Record, SealError, seal};

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

/// Seals `entries` one after the other after the head `(seq, mac)`, all
/// stamped `ts`. Returns each entry's outcome and the records to insert.
/// Backends call this inside the write transaction that read the head.
pub(crate) fn seal_after(
    head: (u64, Mac),
    entries: Vec<Entry>,
    keyring: &Keyring,
    ts: &str,
) -> (Vec<Result<Record, SealError>>, Vec<Record>) {
    let (mut seq, mut prev) = head;
    let mut results = Vec::with_capacity(entries.len());
    let mut sealed = Vec::with_capacity(entries.len());
    for mut entry in entries {
        entry.seq = seq + 1;
        ts.clone_into(&mut entry.ts);
        match seal(entry, &prev, keyring) {
            Ok(record) => {
                seq += 1;
                prev = record.mac().unwrap_or(Mac::ZERO);
                sealed.push(record.clone());
                results.push(Ok(record));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (results, sealed)
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

/// Appends `records` as the VALUES of an `INSERT INTO audit_records
/// (<record columns>)`, in column order: one binding for every backend.
pub(crate) fn push_records<DB>(insert: &mut QueryBuilder<DB>, records: &[Record])
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    insert.push_values(records, |mut row, r| {
        row.push_bind(i64::try_from(r.seq).unwrap_or(i64::MAX))
            .push_bind(r.ts.clone())
            .push_bind(r.kind.clone())
            .push_bind(r.actor.clone())
            .push_bind(r.token_id.clone())
            .push_bind(r.token_owner.clone())
            .push_bind(r.connection.clone())
            .push_bind(r.project.clone())
            .push_bind(r.decision.map(|d| outcome_str(d).to_owned()))
            .push_bind(r.reasons.as_ref().map(|v| Value::from(v.clone()).to_string()))
            .push_bind(r.policy_digest.clone())
            .push_bind(Value::Object(r.details.clone()).to_string())
            .push_bind(r.key_id.clone())
            .push_bind(r.prev_mac.clone())
            .push_bind(r.mac.clone());
    });
}
