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
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::api_keys::StoredKey;
use super::webhooks::Cursor;
use super::{
    AuditFilter, Backend, BundleOrigin, Sealed, StoreError, StoreVersions, StoredBundle, TokenOutcome, TokenUpdate,
};
use crate::store::rows::token_of;
use crate::store::tokens;
use crate::tokens::TokenState;
use warrant_engine::audit::{ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Prepared, Record, SealError};

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

    pub async fn update_tokens<E>(&self, updates: Vec<TokenUpdate<'_, E>>) -> Result<Vec<TokenOutcome<E>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let outcomes = update_tokens_in(&mut tx, updates).await?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Locks, reads, changes and writes the tokens `updates` name inside `tx`.
async fn update_tokens_in<E>(
    tx: &mut PgConnection,
    updates: Vec<TokenUpdate<'_, E>>,
) -> Result<Vec<TokenOutcome<E>>, StoreError> {
    let ids = tokens::ids_of(&updates);
    // A token that does not exist yet cannot be row-locked: serialise each
    // id's events on an advisory lock keyed by it, taken in one order (the
    // sorted array) so two batches never wait in a cycle.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k) FROM unnest((SELECT array_agg(DISTINCT hashtext(id)::bigint \
         ORDER BY hashtext(id)::bigint) FROM unnest($1::text[]) AS t(id))) AS k",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let mut stored = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(tokens::CHUNK) {
        let mut select = tokens::select(chunk);
        select.push(" FOR UPDATE");
        for row in select.build().fetch_all(&mut *tx).await? {
            stored.push(token_of(&row)?);
        }
    }
    let (outcomes, writes) = tokens::apply(stored, updates);
    for chunk in writes.chunks(tokens::CHUNK) {
        tokens::upsert(chunk).build().execute(&mut *tx).await?;
    }
    Ok(outcomes)
}

impl Backend for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.ping().await
    }

    async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        self.entities().await
    }

    async fn replace_entities(&self, docs: &[Value]) -> Result<i64, StoreError> {
        self.replace_entities(docs).await
    }

    async fn active_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        self.active_bundle().await
    }

    async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        self.token(token_id).await
    }

    async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        self.tokens_of(owner, connection).await
    }

    async fn update_tokens<'a, E: Send + 'a>(
        &self,
        updates: Vec<TokenUpdate<'a, E>>,
    ) -> Result<Vec<TokenOutcome<E>>, StoreError> {
        self.update_tokens(updates).await
    }

    async fn append_audit(
        &self,
        entries: Vec<Prepared>,
        keyring: &Keyring,
        ts: &str,
    ) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
        audit::append(self.pool(), entries, keyring, ts).await
    }

    /// The tokens' locks are taken before the chain's, as every path does,
    /// so two instances never wait on each other in a cycle.
    async fn update_tokens_and_append<'a, E, F, R>(
        &self,
        updates: Vec<TokenUpdate<'a, E>>,
        records: F,
        keyring: &Keyring,
        ts: &str,
    ) -> Result<(R, Vec<Sealed>), StoreError>
    where
        E: Send + 'a,
        F: FnOnce(Vec<TokenOutcome<E>>) -> Result<(Vec<Prepared>, R), StoreError> + Send + 'a,
        R: Send + 'a,
    {
        let mut tx = self.pool.begin().await?;
        let outcomes = update_tokens_in(&mut tx, updates).await?;
        let (entries, answer) = records(outcomes)?;
        let results = audit::append_in(&mut tx, &entries, keyring, ts).await?;
        let sealed = tokens::all_sealed(results)?;
        tx.commit().await?;
        Ok((answer, sealed))
    }

    /// PostgreSQL keeps ordinary indexes: nothing to build behind the log.
    async fn audit_index(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn audit_macs_after(&self, after_seq: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
        audit::macs_after(self.pool(), after_seq, limit).await
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        audit::head(self.pool()).await
    }

    async fn audit_range(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
        audit::range(self.pool(), from, to, limit).await
    }

    async fn audit_verify_range(
        &self,
        range: (u64, u64, u32),
        verifier: &mut ChainVerifier<'_>,
        leaves: Option<&mut Vec<Hash>>,
    ) -> Result<Result<u64, ChainBreak>, StoreError> {
        audit::verify_range(self.pool(), range, verifier, leaves).await
    }

    async fn audit_canonical_since(&self) -> Result<u64, StoreError> {
        audit::canonical_since(self.pool()).await
    }

    async fn audit_count(&self) -> Result<u64, StoreError> {
        audit::count(self.pool()).await
    }

    async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        audit::query(self.pool(), filter).await
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        audit::save_checkpoint(self.pool(), checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        audit::checkpoints(self.pool()).await
    }

    async fn insert_api_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        api_keys::insert(self.pool(), key).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        api_keys::get(self.pool(), id).await
    }

    async fn api_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        api_keys::list(self.pool()).await
    }

    async fn revoke_api_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        api_keys::revoke(self.pool(), id, at).await
    }

    async fn versions(&self) -> Result<StoreVersions, StoreError> {
        self.versions().await
    }

    async fn record_bundle(&self, bundle: &StoredBundle) -> Result<i64, StoreError> {
        self.record_bundle(bundle).await
    }

    async fn webhook_seen(
        &self,
        source: &str,
        webhook_id: &str,
        now: &str,
        expires_at: Option<&str>,
    ) -> Result<bool, StoreError> {
        webhooks::seen(self.pool(), source, webhook_id, now, expires_at).await
    }

    async fn webhook_forget(&self, source: &str, webhook_id: &str) -> Result<(), StoreError> {
        webhooks::forget(self.pool(), source, webhook_id).await
    }

    async fn tokens_of_owner(&self, owner: &str) -> Result<Vec<TokenState>, StoreError> {
        webhooks::tokens_of_owner(self.pool(), owner).await
    }

    async fn webhook_cursor(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        webhooks::cursor(self.pool(), subscription).await
    }

    async fn save_webhook_cursor(&self, subscription: &str, cursor: &Cursor) -> Result<(), StoreError> {
        webhooks::save_cursor(self.pool(), subscription, cursor).await
    }
}
