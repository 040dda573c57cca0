//! Persistence. One `Store` facade over the backends; SQLite is the embedded
//! default. Each backend has its own migrations under `migrations/<backend>/`.

pub mod api_keys;
pub mod audit;
mod sqlite;

use std::collections::BTreeMap;

use serde_json::Value;

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
    #[error("unsupported database url `{0}`: expected `sqlite://PATH`")]
    UnsupportedUrl(String),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// A bundle that was activated, as recorded.
#[derive(Debug, Clone)]
pub struct StoredBundle {
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
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
        }
    }

    /// The stored entity documents, ordered by type and id.
    pub async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        match self {
            Self::Sqlite(s) => s.entities().await,
        }
    }

    /// Replaces the whole entity set in one transaction.
    pub async fn replace_entities(&self, docs: &[Value]) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.replace_entities(docs).await,
        }
    }

    /// The most recently activated bundle, if any.
    pub async fn active_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        match self {
            Self::Sqlite(s) => s.active_bundle().await,
        }
    }

    /// One token by id.
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        match self {
            Self::Sqlite(s) => s.token(token_id).await,
        }
    }

    /// A user's tokens for a connection.
    pub async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        match self {
            Self::Sqlite(s) => s.tokens_of(owner, connection).await,
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
            Self::Sqlite(s) => audit::append(s.pool(), entries, keyring, ts).await,
        }
    }

    /// MACs of the records after `after_seq`, in order.
    pub async fn audit_macs_after(&self, after_seq: u64) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::macs_after(s.pool(), after_seq).await,
        }
    }

    /// The last audit record's `seq` and `mac`.
    pub async fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::head(s.pool()).await,
        }
    }

    /// Audit records `from..=to` in order, at most `limit`.
    pub async fn audit_range(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::range(s.pool(), from, to, limit).await,
        }
    }

    pub async fn audit_macs(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::macs(s.pool()).await,
        }
    }

    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => audit::count(s.pool()).await,
        }
    }

    pub async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::query(s.pool(), filter).await,
        }
    }

    pub async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => audit::save_checkpoint(s.pool(), checkpoint).await,
        }
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        match self {
            Self::Sqlite(s) => audit::checkpoints(s.pool()).await,
        }
    }

    pub async fn insert_api_key(&self, key: &api_keys::StoredKey) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::insert(s.pool(), key).await,
        }
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<api_keys::StoredKey>, StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::get(s.pool(), id).await,
        }
    }

    pub async fn api_keys(&self) -> Result<Vec<api_keys::StoredKey>, StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::list(s.pool()).await,
        }
    }

    pub async fn revoke_api_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => api_keys::revoke(s.pool(), id, at).await,
        }
    }

    /// Records that `bundle` became active.
    pub async fn record_bundle(&self, bundle: &StoredBundle) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.record_bundle(bundle).await,
        }
    }
}
