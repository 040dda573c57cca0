//! What can go wrong in the store, and the conversions of stored counters
//! that report damage instead of guessing.

use warrant_engine::Timestamp;
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
    #[error("audit records cannot be sealed without the audit key")]
    NoAuditKey,
    /// A vault grant's write was computed from a version another writer
    /// has since replaced: nothing was stored; read it again.
    #[error("grant `{0}` changed meanwhile")]
    GrantChanged(String),
    /// A change refused by the stored state it applies to (a token event
    /// the token's state contradicts): nothing of its transaction was stored.
    #[error("refused: {0}")]
    Refused(String),
    #[error("cannot seal an audit record: {0}")]
    Seal(#[from] SealError),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
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

/// A stored time column as a [`Timestamp`]: text that does not parse is
/// damage, never "now" or "never".
pub(crate) fn timestamp_of(text: &str, column: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse(text).map_err(|_| StoreError::Corrupt(format!("`{column}` is not a time: `{text}`")))
}
