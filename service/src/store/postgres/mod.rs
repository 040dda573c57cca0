//! PostgreSQL through sqlx, for several instances sharing one database.
//! Same tables and guarantees as SQLite; what SQLite gets from its single
//! writer lock, PostgreSQL gets from row locks and an advisory lock on the
//! audit chain.

pub mod api_keys;
pub mod audit;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{BundleOrigin, StoreError, StoreVersions, StoredBundle};
use crate::store::rows::token_of;
use crate::tokens::TokenState;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const INSERT_CHUNK: usize = 1000;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        let docs: Vec<String> = sqlx::query_scalar("SELECT doc FROM entities ORDER BY entity_type, entity_id")
            .fetch_all(&self.pool)
            .await?;
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("entity document: {e}"))))
            .collect()
    }

    pub async fn replace_entities(&self, docs: &[Value]) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Serialise replaces across instances on the version row.
        sqlx::query("SELECT version FROM store_versions WHERE name = 'entities' FOR UPDATE").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM entities").execute(&mut *tx).await?;
        for chunk in docs.chunks(INSERT_CHUNK) {
            let mut insert = sqlx::QueryBuilder::new("INSERT INTO entities (entity_type, entity_id, doc) ");
            insert.push_values(chunk, |mut row, doc| {
                let (ty, id) = super::uid_of(doc);
                row.push_bind(ty).push_bind(id).push_bind(doc.to_string());
            });
            insert.build().execute(&mut *tx).await?;
        }
        let version: i64 = sqlx::query_scalar(
            "UPDATE store_versions SET version = version + 1 WHERE name = 'entities' RETURNING version",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    pub async fn versions(&self) -> Result<StoreVersions, StoreError> {
        let bundle: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM policy_bundles").fetch_one(&self.pool).await?;
        let entities: i64 = sqlx::query_scalar("SELECT version FROM store_versions WHERE name = 'entities'")
            .fetch_one(&self.pool)
            .await?;
        Ok(StoreVersions { bundle: bundle.unwrap_or(0), entities })
    }

    pub async fn active_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        let row =
            sqlx::query("SELECT id, digest, files, origin, activated_at FROM policy_bundles ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let files: String = row.try_get("files")?;
        let origin: String = row.try_get("origin")?;
        Ok(Some(StoredBundle {
            id: row.try_get("id")?,
            digest: row.try_get("digest")?,
            files: serde_json::from_str(&files).map_err(|e| StoreError::Corrupt(format!("bundle files: {e}")))?,
            origin: if origin == "api" { BundleOrigin::Api } else { BundleOrigin::Disk },
            activated_at: row.try_get("activated_at")?,
        }))
    }

    pub async fn record_bundle(&self, bundle: &StoredBundle) -> Result<i64, StoreError> {
        let files = serde_json::to_string(&bundle.files).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policy_bundles (digest, files, origin, activated_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&bundle.digest)
        .bind(files)
        .bind(bundle.origin.as_str())
        .bind(&bundle.activated_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id = $1"))
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| token_of(&r)).transpose()
    }

    pub async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = $1 AND connection = $2"))
                .bind(owner)
                .bind(connection)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(token_of).collect()
    }

    pub async fn update_token<E>(
        &self,
        token_id: &str,
        change: impl FnOnce(Option<&TokenState>) -> Result<Option<TokenState>, E>,
    ) -> Result<Result<Option<TokenState>, E>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A token that does not exist yet cannot be row-locked: serialise its
        // first event on an advisory lock keyed by the id.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(token_id).execute(&mut *tx).await?;
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id = $1 FOR UPDATE"))
            .bind(token_id)
            .fetch_optional(&mut *tx)
            .await?;
        let before = row.map(|r| token_of(&r)).transpose()?;
        let next = match change(before.as_ref()) {
            Ok(next) => next,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(t) = &next {
            sqlx::query(concat!(
                "INSERT INTO tokens (",
                token_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token_id) DO UPDATE SET ",
                "status = excluded.status, role = excluded.role, expires_at = excluded.expires_at, updated_at = excluded.updated_at"
            ))
            .bind(&t.token_id)
            .bind(&t.owner)
            .bind(&t.connection)
            .bind(&t.status)
            .bind(&t.role)
            .bind(&t.expires_at)
            .bind(&t.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(next))
    }
}
