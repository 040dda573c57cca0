//! Reading records back, the same for every backend: a stored row becomes
//! the record whose MAC verification decides if it is genuine.

use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};
use warrant_engine::audit::{Outcome, Record};

use super::StoreError;

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
