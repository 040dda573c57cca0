//! API keys, PostgreSQL.

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgRow};

use crate::store::StoreError;
use crate::store::api_keys::StoredKey;

fn key_of(row: &PgRow) -> Result<StoredKey, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(StoredKey {
        id: row.try_get("id")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| StoreError::Corrupt(format!("key scopes: {e}")))?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub async fn insert(pool: &PgPool, key: &StoredKey) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO api_keys (id, secret_hash, scopes, description, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&key.id)
        .bind(&key.secret_hash)
        .bind(serde_json::to_string(&key.scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(&key.description)
        .bind(&key.created_at)
        .bind(&key.expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<StoredKey>, StoreError> {
    let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1").bind(id).fetch_optional(pool).await?;
    row.as_ref().map(key_of).transpose()
}

pub async fn list(pool: &PgPool) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(pool).await?;
    rows.iter().map(key_of).collect()
}

pub async fn revoke(pool: &PgPool, id: &str, at: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
