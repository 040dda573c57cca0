//! PostgreSQL through sqlx, for several instances sharing one database.
//! Same tables and guarantees as SQLite; what SQLite gets from its single
//! writer lock, PostgreSQL gets from row locks and advisory locks, taken
//! through the hooks below by the shared write path (`store/write.rs`).
//! The audit chain's turn is `append.rs`.

mod append;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use warrant_engine::audit::{Hash, Mac, TileId};

use self::append::CHAIN_LOCK;
use super::error::StoreError;
use super::sealing::NewRow;
use super::tree::{TreeCache, Turn};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The first key of the vault's refresh leases (`lease`).
const VAULT_LEASE: i32 = 0x7661_756c;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    tree: Arc<TreeCache>,
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
        Ok(Self { pool, tree: Arc::default() })
    }

    /// For reads.
    pub(super) fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// For writes outside a transaction: the same pool.
    pub(super) fn writer(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Row locks on the tokens a write transaction reads.
    pub(super) fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    /// A token that does not exist yet cannot be row-locked: serialise each
    /// id's events on an advisory lock keyed by it, taken in one order (the
    /// sorted array) so two batches never wait in a cycle.
    pub(super) async fn lock_tokens(&self, tx: &mut PgConnection, ids: &[String]) -> Result<(), StoreError> {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(k) FROM unnest((SELECT array_agg(DISTINCT hashtext(id)::bigint \
             ORDER BY hashtext(id)::bigint) FROM unnest($1::text[]) AS t(id))) AS k",
        )
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Appends from every instance are serialised by a transaction-scoped
    /// advisory lock taken before the head is read: one gap-free chain.
    pub(super) async fn lock_chain(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut *tx).await?;
        Ok(())
    }

    /// Takes the chain's lock and reads the head and the tree's edge, in
    /// one round trip (`append.rs`).
    pub(super) async fn take_turn(&self, tx: &mut PgConnection) -> Result<Turn, StoreError> {
        append::take_turn(tx, &self.tree).await
    }

    /// Stores sealed records and the tiles they change, in one statement.
    pub(super) async fn store_sealed(
        &self,
        tx: &mut PgConnection,
        rows: Vec<NewRow<'_>>,
        changed: &BTreeMap<TileId, Vec<Hash>>,
    ) -> Result<(), StoreError> {
        append::store_sealed(tx, rows, changed).await
    }

    /// A transaction holding the refresh lease of vault grant `id` (an
    /// advisory lock in the two-key space, so it never meets the token
    /// locks above, which use one `bigint` key).
    pub(super) async fn lease(&self, id: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(VAULT_LEASE)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Nothing to remember: every append reads the head under the lock.
    pub(super) fn appended(&self, _head: (u64, Mac)) {}

    /// Level 0's partial tile is stored with the records (`tree::is_stored`),
    /// so an instance taking its turn after another reads it instead of
    /// rehashing the other's records.
    pub(super) fn stores_partial_leaves(&self) -> bool {
        true
    }

    /// The tree's edge as this instance last wrote it (checked against the
    /// head under the lock: another instance may have appended since).
    pub(super) fn tree(&self) -> &TreeCache {
        &self.tree
    }
}
