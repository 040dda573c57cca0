//! Persistence. One `Store` facade over the backends; SQLite is the embedded
//! default. Each backend has its own migrations under `migrations/<backend>/`.

/// The token columns, as a literal so queries stay static strings.
macro_rules! token_columns {
    () => {
        "token_id, owner, connection, status, role, expires_at, updated_at"
    };
}

pub mod api_keys;
pub mod audit;
mod postgres;
mod rows;
mod sqlite;
pub mod webhooks;

use std::collections::BTreeMap;

use serde_json::Value;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::tokens::TokenState;
pub use audit::AuditFilter;
use warrant_engine::audit::{Checkpoint, Entry, Keyring, Record, SealError};

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
}

/// A bundle that was activated, as recorded.
#[derive(Debug, Clone)]
pub struct StoredBundle {
    /// Row id: increases with every activation (0 before recording).
    pub id: i64,
    pub digest: String,
    pub files: BTreeMap<String, String>,
    pub origin: BundleOrigin,
    pub activated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleOrigin {
    /// Read from the policies directory (start or SIGHUP).
    Disk,
    /// Uploaded with `PUT /v1/policies`.
    Api,
}

/// What changed in the store since a process last looked: the newest
/// bundle activation and the entity-set version. Several processes sharing
/// a database compare these to pick up each other's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreVersions {
    pub bundle: i64,
    pub entities: i64,
}

/// `(type, id)` of an entity document's uid, in either JSON spelling.
pub(crate) fn uid_of(doc: &Value) -> (String, String) {
    let uid = doc.get("uid").map(|u| u.get("__entity").unwrap_or(u));
    let field = |name: &str| uid.and_then(|u| u.get(name)).and_then(Value::as_str).unwrap_or_default().to_owned();
    (field("type"), field("id"))
}

impl BundleOrigin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Disk => "disk",
            Self::Api => "api",
        }
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
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(p) => p.ping().await,
        }
    }

    /// The stored entity documents, ordered by type and id.
    pub async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        match self {
            Self::Sqlite(s) => s.entities().await,
            Self::Postgres(p) => p.entities().await,
        }
    }

    /// Replaces the whole entity set in one transaction; returns the new
    /// entities version.
    pub async fn replace_entities(&self, docs: &[Value]) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(s) => s.replace_entities(docs).await,
            Self::Postgres(p) => p.replace_entities(docs).await,
        }
    }

    /// The most recently activated bundle, if any.
    pub async fn active_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        match self {
            Self::Sqlite(s) => s.active_bundle().await,
            Self::Postgres(p) => p.active_bundle().await,
        }
    }

    /// One token by id.
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        match self {
            Self::Sqlite(s) => s.token(token_id).await,
            Self::Postgres(p) => p.token(token_id).await,
        }
    }

    /// A user's tokens for a connection.
    pub async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        match self {
            Self::Sqlite(s) => s.tokens_of(owner, connection).await,
            Self::Postgres(p) => p.tokens_of(owner, connection).await,
        }
    }

    /// Reads a token, lets `change` compute its next state, and writes it, in
    /// one write transaction (no lost update between concurrent events).
    pub async fn update_token<E>(
        &self,
        token_id: &str,
        change: impl FnOnce(Option<&TokenState>) -> Result<Option<TokenState>, E>,
    ) -> Result<Result<Option<TokenState>, E>, StoreError> {
        match self {
            Self::Sqlite(s) => s.update_token(token_id, change).await,
            Self::Postgres(p) => p.update_token(token_id, change).await,
        }
    }

    /// Seals `entries` after the stored head and appends them in one
    /// transaction (one fsync). Per entry: its record, or why it could not be sealed.
    pub async fn append_audit(
        &self,
        entries: Vec<Entry>,
        keyring: &Keyring,
        ts: &str,
    ) -> Result<Vec<Result<Record, SealError>>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::append(s.writer(), entries, keyring, ts).await,
            Self::Postgres(p) => postgres::audit::append(p.pool(), entries, keyring, ts).await,
        }
    }

    /// MACs of the records after `after_seq`, in order.
    pub async fn audit_macs_after(&self, after_seq: u64) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::macs_after(s.pool(), after_seq).await,
            Self::Postgres(p) => postgres::audit::macs_after(p.pool(), after_seq).await,
        }
    }

    /// The last audit record's `seq` and `mac`.
    pub async fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::head(s.pool()).await,
            Self::Postgres(p) => postgres::audit::head(p.pool()).await,
        }
    }

    /// Audit records `from..=to` in order, at most `limit`.
    pub async fn audit_range(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::range(s.pool(), from, to, limit).await,
            Self::Postgres(p) => postgres::audit::range(p.pool(), from, to, limit).await,
        }
    }

    pub async fn audit_macs(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::macs(s.pool()).await,
            Self::Postgres(p) => postgres::audit::macs(p.pool()).await,
        }
    }

    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => audit::count(s.pool()).await,
            Self::Postgres(p) => postgres::audit::count(p.pool()).await,
        }
    }

    pub async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::query(s.pool(), filter).await,
            Self::Postgres(p) => postgres::audit::query(p.pool(), filter).await,
        }
    }

    pub async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => audit::save_checkpoint(s.writer(), checkpoint).await,
            Self::Postgres(p) => postgres::audit::save_checkpoint(p.pool(), checkpoint).await,
        }
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::checkpoints(s.pool()).await,
            Self::Postgres(p) => postgres::audit::checkpoints(p.pool()).await,
        }
    }

    pub async fn insert_api_key(&self, key: &api_keys::StoredKey) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::insert(s.writer(), key).await,
            Self::Postgres(p) => postgres::api_keys::insert(p.pool(), key).await,
        }
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<api_keys::StoredKey>, StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::get(s.pool(), id).await,
            Self::Postgres(p) => postgres::api_keys::get(p.pool(), id).await,
        }
    }

    pub async fn api_keys(&self) -> Result<Vec<api_keys::StoredKey>, StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::list(s.pool()).await,
            Self::Postgres(p) => postgres::api_keys::list(p.pool()).await,
        }
    }

    pub async fn revoke_api_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::revoke(s.writer(), id, at).await,
            Self::Postgres(p) => postgres::api_keys::revoke(p.pool(), id, at).await,
        }
    }

    /// The current store versions (see [`StoreVersions`]).
    pub async fn versions(&self) -> Result<StoreVersions, StoreError> {
        match self {
            Self::Sqlite(s) => s.versions().await,
            Self::Postgres(p) => p.versions().await,
        }
    }

    /// Records that `bundle` became active; returns its row id.
    pub async fn record_bundle(&self, bundle: &StoredBundle) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(s) => s.record_bundle(bundle).await,
            Self::Postgres(p) => p.record_bundle(bundle).await,
        }
    }
}
