//! Persistence: SQLite (the embedded default, `sqlite/`) and PostgreSQL (to
//! scale out, `postgres/`), each with its migrations under
//! `migrations/<backend>/`. [`Store`] opens the one a URL names.
//!
//! Every operation is an `impl Store` method in the file named after what it
//! stores (`entities.rs`, `bundles.rs`, `tokens.rs`, `api_keys.rs`,
//! `webhooks.rs`, the vault's `grant_flows.rs` and `grants.rs`, `audit.rs`, the tree's tiles in `tiles.rs` (and inside a
//! write, `tree.rs`), witnesses' cosignatures in `cosignatures.rs`). SQL the
//! two databases share is written once: placeholders are `$1…$n`, which SQLite reads as numbered parameters too,
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

/// The vault's grant columns (`grants.rs`).
macro_rules! grant_columns {
    () => {
        "id, connection, owner, provider, status, reason, scopes, kek_id, data_key, access_token, \
         access_expires_at, refresh_token, refresh_started_at, version, created_at, updated_at"
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
            $crate::store::open::Store::Sqlite($b) => $body,
            $crate::store::open::Store::Postgres($b) => $body,
        }
    };
}

pub mod api_keys;
mod audit;
mod bundles;
mod cosignatures;
mod entities;
mod error;
pub mod grant_flows;
pub mod grants;
mod open;
mod overview;
mod postgres;
mod records;
mod sealing;
mod sqlite;
mod tiles;
pub mod tokens;
mod tree;
pub mod webhooks;
mod write;

pub use audit::MAX_REPLAY;
pub use bundles::{BundleOrigin, StoreVersions, StoredBundle};
pub use error::StoreError;
pub use grants::{Grant, GrantStatus, GrantWrite};
pub use open::Store;
pub use postgres::PgStore;
pub use records::{AuditFilter, TimeWindow};
pub use sealing::{Sealed, leaf_of};
pub use sqlite::SqliteStore;
pub use sqlite::UPKEEP_THREAD;
pub use tokens::{TokenOutcome, TokenUpdate};
