//! SQLite through sqlx: WAL, `synchronous=FULL` (an acknowledged write
//! survives power loss), writers serialised with `BEGIN IMMEDIATE`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::api_keys::StoredKey;
use super::audit::HeadCache;
use super::rows::token_of;
use super::tokens;
use super::webhooks::Cursor;
use super::{
    AuditFilter, Backend, BundleOrigin, Sealed, StoreError, StoreVersions, StoredBundle, TokenOutcome, TokenUpdate,
};
use crate::tokens::TokenState;
use warrant_engine::audit::{ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Prepared, Record, SealError};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Rows per multi-row INSERT when replacing entities (SQLite allows 32,766
/// bound parameters; three per row).
const INSERT_CHUNK: usize = 500;

/// Pools over one file: readers run in parallel (WAL), verification scans
/// on connections of their own, writers queue in process on a single
/// connection. Several connections racing for SQLite's
/// write lock fall into its busy handler, which sleeps and backs off (we
/// measured p99 acknowledgements near 800 ms that way); one writer queue is
/// fair and never sleeps.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    /// The database file: verification scans open it on connections of
    /// their own (`scan.rs`).
    path: PathBuf,
    head: Arc<HeadCache>,
    /// Where the lookup postings end, as last seen (`u64::MAX`: not yet).
    indexed_upto: Arc<AtomicU64>,
}

impl SqliteStore {
    pub async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            create_dir(dir)?;
        }
        // No ping before handing out a connection: a local file does not
        // drop connections, and on the writer the ping was a round trip to
        // SQLite's thread in front of every group commit (~10% of durable
        // append throughput at 64 writers).
        let pools = || SqlitePoolOptions::new().test_before_acquire(false);
        let writer = pools().max_connections(1).connect_with(options.clone()).await?;
        MIGRATIONS.run(&writer).await?;
        let pool = pools().max_connections(4).connect_with(options.clone()).await?;
        Ok(Self { pool, writer, path, head: Arc::default(), indexed_upto: Arc::new(AtomicU64::new(u64::MAX)) })
    }

    /// For reads.
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// For every write.
    pub(super) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        let rows =
            sqlx::query("SELECT doc FROM entities ORDER BY entity_type, entity_id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let doc: String = row.try_get("doc")?;
                serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("entity document: {e}")))
            })
            .collect()
    }

    pub async fn replace_entities(&self, docs: &[Value]) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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

    pub async fn versions(&self) -> Result<StoreVersions, StoreError> {
        let bundle: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM policy_bundles").fetch_one(&self.pool).await?;
        let entities: i64 = sqlx::query_scalar("SELECT version FROM store_versions WHERE name = 'entities'")
            .fetch_one(&self.pool)
            .await?;
        Ok(StoreVersions { bundle: bundle.unwrap_or(0), entities })
    }

    pub async fn record_bundle(&self, bundle: &StoredBundle) -> Result<i64, StoreError> {
        let files = serde_json::to_string(&bundle.files).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = sqlx::query("INSERT INTO policy_bundles (digest, files, origin, activated_at) VALUES (?, ?, ?, ?)")
            .bind(&bundle.digest)
            .bind(files)
            .bind(bundle.origin.as_str())
            .bind(&bundle.activated_at)
            .execute(&self.writer)
            .await?;
        Ok(done.last_insert_rowid())
    }
}

impl SqliteStore {
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id = ?"))
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| token_of(&r)).transpose()
    }

    pub async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = ? AND connection = ?"))
            .bind(owner)
            .bind(connection)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_of).collect()
    }

    pub async fn update_tokens<E>(&self, updates: Vec<TokenUpdate<'_, E>>) -> Result<Vec<TokenOutcome<E>>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let outcomes = update_tokens_in(&mut tx, updates).await?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Reads the tokens `updates` name, applies the changes and writes the
/// tokens that changed, inside the write transaction `tx`.
async fn update_tokens_in<E>(
    tx: &mut SqliteConnection,
    updates: Vec<TokenUpdate<'_, E>>,
) -> Result<Vec<TokenOutcome<E>>, StoreError> {
    let ids = tokens::ids_of(&updates);
    let mut stored = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(tokens::CHUNK) {
        for row in tokens::select(chunk).build().fetch_all(&mut *tx).await? {
            stored.push(token_of(&row)?);
        }
    }
    let (outcomes, writes) = tokens::apply(stored, updates);
    for chunk in writes.chunks(tokens::CHUNK) {
        tokens::upsert(chunk).build().execute(&mut *tx).await?;
    }
    Ok(outcomes)
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        StoreError::Database(sqlx::Error::Configuration(format!("cannot create `{}`: {e}", dir.display()).into()))
    })
}

impl Backend for SqliteStore {
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
        super::audit::append(self.writer(), &self.head, entries, keyring, ts).await
    }

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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let outcomes = update_tokens_in(&mut tx, updates).await?;
        let (entries, answer) = records(outcomes)?;
        let (results, head) = super::audit::append_in(&mut tx, &entries, keyring, ts).await?;
        let sealed = tokens::all_sealed(results)?;
        tx.commit().await?;
        self.head.set(head);
        Ok((answer, sealed))
    }

    async fn audit_index(&self) -> Result<u64, StoreError> {
        // After each group commit: look at the database only once a
        // partition may have closed since.
        let upto = self.indexed_upto.load(Ordering::Relaxed);
        if upto != u64::MAX && self.head.stored() < upto + super::lookup::PART {
            return Ok(upto);
        }
        let upto = super::lookup::index(self.pool(), self.writer()).await?;
        self.indexed_upto.store(upto, Ordering::Relaxed);
        Ok(upto)
    }

    async fn audit_macs_after(&self, after_seq: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
        super::audit::macs_after(self.pool(), after_seq, limit).await
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        super::audit::head(self.pool()).await
    }

    async fn audit_range(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
        super::audit::range(self.pool(), from, to, limit).await
    }

    async fn audit_verify_range(
        &self,
        range: (u64, u64, u32),
        verifier: &mut ChainVerifier<'_>,
        leaves: Option<&mut Vec<Hash>>,
    ) -> Result<Result<u64, ChainBreak>, StoreError> {
        super::scan::verify_range(&self.path, range, verifier, leaves).await
    }

    async fn audit_canonical_since(&self) -> Result<u64, StoreError> {
        super::audit::canonical_since(self.pool()).await
    }

    async fn audit_count(&self) -> Result<u64, StoreError> {
        super::audit::count(self.pool()).await
    }

    async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        super::lookup::query(self.pool(), filter).await
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        super::audit::save_checkpoint(self.writer(), checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        super::audit::checkpoints(self.pool()).await
    }

    async fn insert_api_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        super::api_keys::insert(self.writer(), key).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        super::api_keys::get(self.pool(), id).await
    }

    async fn api_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        super::api_keys::list(self.pool()).await
    }

    async fn revoke_api_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        super::api_keys::revoke(self.writer(), id, at).await
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
        super::webhooks::seen(self.writer(), source, webhook_id, now, expires_at).await
    }

    async fn webhook_forget(&self, source: &str, webhook_id: &str) -> Result<(), StoreError> {
        super::webhooks::forget(self.writer(), source, webhook_id).await
    }

    async fn tokens_of_owner(&self, owner: &str) -> Result<Vec<TokenState>, StoreError> {
        super::webhooks::tokens_of_owner(self.pool(), owner).await
    }

    async fn webhook_cursor(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        super::webhooks::cursor(self.pool(), subscription).await
    }

    async fn save_webhook_cursor(&self, subscription: &str, cursor: &Cursor) -> Result<(), StoreError> {
        super::webhooks::save_cursor(self.writer(), subscription, cursor).await
    }
}
