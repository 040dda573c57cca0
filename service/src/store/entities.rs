//! The entity set decisions read: stored as one document per entity and
//! replaced whole, with a version other instances watch to reload.

use serde_json::Value;

use super::error::StoreError;
use super::open::Store;

/// Rows per multi-row INSERT (three bound parameters a row, well under
/// SQLite's 32,766).
const INSERT_CHUNK: usize = 500;

impl Store {
    /// The stored entity documents, ordered by type and id.
    pub async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        let docs: Vec<String> = on_backend!(self, b => {
            sqlx::query_scalar("SELECT doc FROM entities ORDER BY entity_type, entity_id").fetch_all(b.reader()).await?
        });
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("entity document: {e}"))))
            .collect()
    }

    /// Replaces the whole entity set in one transaction; returns the new
    /// entities version.
    pub async fn replace_entities(&self, docs: &[Value]) -> Result<i64, StoreError> {
        on_backend!(self, b => {
            let mut tx = b.begin_write().await?;
            // First, so that on PostgreSQL the version row's lock serialises
            // replaces across instances.
            let version: i64 = sqlx::query_scalar(
                "UPDATE store_versions SET version = version + 1 WHERE name = 'entities' RETURNING version",
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM entities").execute(&mut *tx).await?;
            for chunk in docs.chunks(INSERT_CHUNK) {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO entities (entity_type, entity_id, doc) ");
                insert.push_values(chunk, |mut row, doc| {
                    let (ty, id) = uid_of(doc);
                    row.push_bind(ty).push_bind(id).push_bind(doc.to_string());
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(version)
        })
    }
}

/// `(type, id)` of an entity document's uid, in either JSON spelling.
pub(crate) fn uid_of(doc: &Value) -> (String, String) {
    let uid = doc.get("uid").map(|u| u.get("__entity").unwrap_or(u));
    let field = |name: &str| uid.and_then(|u| u.get(name)).and_then(Value::as_str).unwrap_or_default().to_owned();
    (field("type"), field("id"))
}
