//! API keys, stored by id with only a hash of the secret.

use sqlx::{ColumnIndex, Decode, Row, Type};

use warrant_engine::Timestamp;

use super::error::{StoreError, timestamp_of};
use super::open::Store;
use crate::scope::Scope;

/// An API key as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredKey {
    pub id: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub scopes: Vec<Scope>,
    pub description: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

macro_rules! key_columns {
    () => {
        "id, secret_hash, scopes, description, created_at, expires_at, revoked_at"
    };
}

fn key_of<R>(row: &R) -> Result<StoredKey, StoreError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database>,
{
    let scopes: String = row.try_get("scopes")?;
    Ok(StoredKey {
        id: row.try_get("id")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| StoreError::Corrupt(format!("key scopes: {e}")))?,
        description: row.try_get("description")?,
        created_at: timestamp_of(&row.try_get::<String, _>("created_at")?, "created_at")?,
        expires_at: timestamp_of(&row.try_get::<String, _>("expires_at")?, "expires_at")?,
        revoked_at: row
            .try_get::<Option<String>, _>("revoked_at")?
            .map(|t| timestamp_of(&t, "revoked_at"))
            .transpose()?,
    })
}

impl Store {
    pub async fn insert_api_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let scopes = serde_json::to_string(&key.scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_backend!(self, b => {
            sqlx::query(
                "INSERT INTO api_keys (id, secret_hash, scopes, description, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.id)
            .bind(&key.secret_hash)
            .bind(&scopes)
            .bind(&key.description)
            .bind(key.created_at.to_string())
            .bind(key.expires_at.to_string())
            .execute(b.writer())
            .await?;
        });
        Ok(())
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        on_backend!(self, b => {
            let row = sqlx::query(concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1"))
                .bind(id)
                .fetch_optional(b.reader())
                .await?;
            row.as_ref().map(key_of).transpose()
        })
    }

    pub async fn api_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        on_backend!(self, b => {
            let rows = sqlx::query(concat!("SELECT ", key_columns!(), " FROM api_keys ORDER BY created_at, id"))
                .fetch_all(b.reader())
                .await?;
            rows.iter().map(key_of).collect()
        })
    }

    /// Marks a key revoked; false when there is no such key (or it already was).
    pub async fn revoke_api_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let done = on_backend!(self, b => {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at.to_string())
                .bind(id)
                .execute(b.writer())
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}
