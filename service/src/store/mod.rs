//! Persistence: SQLite (the embedded default, `sqlite/`) and PostgreSQL (to
//! scale out, `postgres/`), each with its migrations under
//! `migrations/<backend>/`. [`Store`] opens the one a URL names.
//!
//! Every operation is an `impl Store` method in the file named after what it
//! stores (`entities.rs`, `bundles.rs`, `tokens.rs`, `api_keys.rs`,
//! `webhooks.rs`, `audit.rs`). SQL the two databases share is written once:
//! placeholders are `$1…$n`, which SQLite reads as numbered parameters too,
//! and [`on_backend!`] expands the one body for each backend's types. A
//! backend folder holds only what differs: how it opens, how a write
//! transaction starts and what it locks (SQLite has one writer; PostgreSQL
//! row and advisory locks), the SQLite head cache and lookups, and the
//! SQLite verification scan.
//!
//! Adding an operation is one method in one of those files; a backend
//! method only where the dialects differ.

/// The token columns, as a literal so queries stay static strings.
macro_rules! token_columns {
    () => {
        "token_id, owner, connection, status, role, expires_at, updated_at, issued_at"
    };
}

/// The audit record columns, in [`warrant_engine::audit::StoredRecord`] order.
macro_rules! record_columns {
    () => {
        "seq, ts, kind, actor, token_id, token_owner, connection, project, decision, reasons, policy_digest, details, key_id, prev_mac, mac"
    };
}

/// Runs `$body` once per backend with `$b` bound to that backend's store
/// (`&SqliteStore` or `&PgStore`): the source is written once and type-checked
/// against each database's own row and pool types. Both backends provide the
/// same small set of methods the bodies use (`reader`, `writer`,
/// `begin_write`, and the locking hooks in their `mod.rs`).
macro_rules! on_backend {
    ($store:expr, $b:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($b) => $body,
            $crate::store::Store::Postgres($b) => $body,
        }
    };
}

pub mod api_keys;
pub mod audit;
mod bundles;
mod entities;
mod postgres;
mod sealing;
mod sqlite;
pub mod tokens;
pub mod webhooks;
mod write;

pub use audit::AuditFilter;
pub use bundles::{BundleOrigin, StoreVersions, StoredBundle};
pub use postgres::PgStore;
pub use sealing::{Sealed, leaf_of};
pub use sqlite::SqliteStore;
pub use tokens::{TokenOutcome, TokenUpdate};
use warrant_engine::audit::SealError;

/// A store failure: always a server-side problem (500), never the client's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url `{0}`: expected `sqlite://PATH` or `postgres://…`")]
    UnsupportedUrl(String),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("not supported by this backend: {0}")]
    Unsupported(&'static str),
    #[error("cannot seal an audit record: {0}")]
    Seal(#[from] SealError),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

/// The service's store.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, true).await
    }

    /// Opens an existing database (offline tools must not create one).
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, false).await
    }

    async fn connect(url: &str, create: bool) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::open(url, create).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query("SELECT 1").execute(b.reader()).await?;
        });
        Ok(())
    }
}

/// A stored `seq`-like counter as the `u64` the code uses: a negative value
/// is damage, never zero.
pub(crate) fn u64_of(value: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative `{column}`: {value}")))
}

/// A `u64` counter as the `BIGINT` both databases store. Counters stay
/// below 2^53 (`MAX_SEQ`), so saturation only clamps nonsense input.
pub(crate) fn i64_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
