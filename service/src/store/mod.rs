//! Persistence: one [`Backend`] trait with two implementations, SQLite (the
//! embedded default, `sqlite.rs`) and PostgreSQL (`postgres/`), each with
//! its own migrations under `migrations/<backend>/`. [`Store`] opens the one
//! a URL names and dispatches to it.

/// The token columns, as a literal so queries stay static strings.
macro_rules! token_columns {
    () => {
        "token_id, owner, connection, status, role, expires_at, updated_at, issued_at"
    };
}

/// Calls the same [`Backend`] method on whichever backend this store is.
macro_rules! dispatch {
    ($store:ident, $method:ident($($arg:expr),*)) => {
        match $store {
            Store::Sqlite(s) => Backend::$method(s, $($arg),*).await,
            Store::Postgres(p) => Backend::$method(p, $($arg),*).await,
        }
    };
}

pub mod api_keys;
pub mod audit;
mod backend;
mod lookup;
mod postgres;
mod rows;
mod scan;
mod sqlite;
pub mod tokens;
pub mod webhooks;

use std::collections::BTreeMap;

use serde_json::Value;

pub use backend::Backend;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::tokens::TokenState;
pub use audit::AuditFilter;
pub use rows::{Sealed, leaf_of};
pub use tokens::{TokenOutcome, TokenUpdate};
use warrant_engine::audit::{ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Prepared, Record, SealError};

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
        dispatch!(self, ping())
    }

    /// The stored entity documents, ordered by type and id.
    pub async fn entities(&self) -> Result<Vec<Value>, StoreError> {
        dispatch!(self, entities())
    }

    /// Replaces the whole entity set in one transaction; returns the new
    /// entities version.
    pub async fn replace_entities(&self, docs: &[Value]) -> Result<i64, StoreError> {
        dispatch!(self, replace_entities(docs))
    }

    /// The most recently activated bundle, if any.
    pub async fn active_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        dispatch!(self, active_bundle())
    }

    /// One token by id.
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        dispatch!(self, token(token_id))
    }

    /// A user's tokens for a connection.
    pub async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        dispatch!(self, tokens_of(owner, connection))
    }

    /// Reads a token, lets `change` compute its next state, and writes it, in
    /// one write transaction (no lost update between concurrent events).
    pub async fn update_token<'a, E: Send + 'a>(
        &self,
        token_id: &str,
        change: impl FnOnce(Option<&TokenState>) -> Result<Option<TokenState>, E> + Send + 'a,
    ) -> Result<TokenOutcome<E>, StoreError> {
        let mut outcomes = self.update_tokens(vec![TokenUpdate::new(token_id, change)]).await?;
        outcomes.pop().ok_or_else(|| StoreError::Corrupt("a token update went unanswered".into()))
    }

    /// Applies `updates` in order in one write transaction (one commit): each
    /// change sees the state the earlier ones left. Outcomes in the same order.
    pub async fn update_tokens<'a, E: Send + 'a>(
        &self,
        updates: Vec<TokenUpdate<'a, E>>,
    ) -> Result<Vec<TokenOutcome<E>>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, update_tokens(updates))
    }

    /// Seals `entries` after the stored head and appends them in one
    /// transaction (one fsync). Per entry: its record, or why it could not be sealed.
    pub async fn append_audit(
        &self,
        entries: Vec<Prepared>,
        keyring: &Keyring,
        ts: &str,
    ) -> Result<Vec<Result<Sealed, SealError>>, StoreError> {
        dispatch!(self, append_audit(entries, keyring, ts))
    }

    /// Applies `updates` and appends the records `records` makes of their
    /// outcomes, in one transaction: a token change is stored if and only
    /// if the records are (all must seal). Returns what `records` answered
    /// beside the records, and the records in order.
    pub async fn update_tokens_and_append<'a, E, F, R>(
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
        dispatch!(self, update_tokens_and_append(updates, records, keyring, ts))
    }

    /// The `seq` and MAC of the records after `after_seq`, in order, at
    /// most `limit`.
    pub async fn audit_macs_after(&self, after_seq: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
        dispatch!(self, audit_macs_after(after_seq, limit))
    }

    /// The last audit record's `seq` and `mac`.
    pub async fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        dispatch!(self, audit_head())
    }

    /// Audit records `from..=to` in order, at most `limit`.
    pub async fn audit_range(&self, from: u64, to: u64, limit: u32) -> Result<Vec<Record>, StoreError> {
        dispatch!(self, audit_range(from, to, limit))
    }

    /// Streams audit records `from..=to` (at most `limit`) through
    /// `verifier`; see [`Backend::audit_verify_range`].
    pub async fn audit_verify_range(
        &self,
        range: (u64, u64, u32),
        verifier: &mut ChainVerifier<'_>,
        leaves: Option<&mut Vec<Hash>>,
    ) -> Result<Result<u64, ChainBreak>, StoreError> {
        dispatch!(self, audit_verify_range(range, verifier, leaves))
    }

    /// The first `seq` stored with canonical `details`/`reasons` text.
    pub async fn audit_canonical_since(&self) -> Result<u64, StoreError> {
        dispatch!(self, audit_canonical_since())
    }

    /// Every record's Merkle leaf, in `seq` order, read a page of MACs at
    /// a time (a million MAC strings at once would be ~90 MB held at start).
    pub async fn audit_leaves(&self) -> Result<Vec<Hash>, StoreError> {
        /// MACs read per query.
        const PAGE: u32 = 8192;
        let mut leaves = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_macs_after(after, PAGE).await?;
            let Some((last, _)) = page.last() else { return Ok(leaves) };
            after = *last;
            leaves.extend(page.iter().map(|(_, mac)| leaf_of(mac)));
        }
    }

    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, audit_count())
    }

    /// Brings the audit lookup up to date (see [`Backend::audit_index`]).
    pub async fn audit_index(&self) -> Result<u64, StoreError> {
        dispatch!(self, audit_index())
    }

    pub async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        dispatch!(self, audit_query(filter))
    }

    pub async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        dispatch!(self, save_checkpoint(checkpoint))
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, checkpoints())
    }

    pub async fn insert_api_key(&self, key: &api_keys::StoredKey) -> Result<(), StoreError> {
        dispatch!(self, insert_api_key(key))
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<api_keys::StoredKey>, StoreError> {
        dispatch!(self, api_key(id))
    }

    pub async fn api_keys(&self) -> Result<Vec<api_keys::StoredKey>, StoreError> {
        dispatch!(self, api_keys())
    }

    pub async fn revoke_api_key(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        dispatch!(self, revoke_api_key(id, at))
    }

    /// The current store versions (see [`StoreVersions`]).
    pub async fn versions(&self) -> Result<StoreVersions, StoreError> {
        dispatch!(self, versions())
    }

    /// Records that `bundle` became active; returns its row id.
    pub async fn record_bundle(&self, bundle: &StoredBundle) -> Result<i64, StoreError> {
        dispatch!(self, record_bundle(bundle))
    }
}
