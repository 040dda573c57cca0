//! The one storage contract. Each backend (SQLite, PostgreSQL) implements it
//! in full; the `Store` facade picks one by URL and dispatches to it.

use std::future::Future;

use serde_json::Value;
use warrant_engine::audit::{ChainBreak, ChainVerifier, Checkpoint, Hash, Keyring, Prepared, Record, SealError};

use super::api_keys::StoredKey;
use super::webhooks::Cursor;
use super::{AuditFilter, Sealed, StoreError, StoreVersions, StoredBundle, TokenOutcome, TokenUpdate};
use crate::tokens::TokenState;

/// What a storage backend provides. Both implementations pass the same
/// suite (`service/tests/store.rs`).
pub trait Backend: Send + Sync {
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored entity documents, ordered by type and id.
    fn entities(&self) -> impl Future<Output = Result<Vec<Value>, StoreError>> + Send;

    /// Replaces the whole entity set in one transaction; returns the new
    /// entities version.
    fn replace_entities(&self, docs: &[Value]) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The most recently activated bundle, if any.
    fn active_bundle(&self) -> impl Future<Output = Result<Option<StoredBundle>, StoreError>> + Send;

    /// One token by id.
    fn token(&self, token_id: &str) -> impl Future<Output = Result<Option<TokenState>, StoreError>> + Send;

    /// A user's tokens for a connection.
    fn tokens_of(
        &self,
        owner: &str,
        connection: &str,
    ) -> impl Future<Output = Result<Vec<TokenState>, StoreError>> + Send;

    /// Applies `updates` (at least one) in order in one write transaction:
    /// each change sees the state the earlier ones left (no lost update
    /// between concurrent events). Outcomes in the same order.
    fn update_tokens<'a, E: Send + 'a>(
        &self,
        updates: Vec<TokenUpdate<'a, E>>,
    ) -> impl Future<Output = Result<Vec<TokenOutcome<E>>, StoreError>> + Send;

    /// Seals `entries` after the stored head and appends them in one
    /// transaction (one fsync). Per entry: its record, or why it could not be sealed.
    fn append_audit(
        &self,
        entries: Vec<Prepared>,
        keyring: &Keyring,
        ts: &str,
    ) -> impl Future<Output = Result<Vec<Result<Sealed, SealError>>, StoreError>> + Send;

    /// Applies `updates` (possibly none) and appends the records `records`
    /// makes of their outcomes, in one write transaction: a token change is
    /// stored if and only if the records are. Every record must seal, or
    /// nothing is stored ([`StoreError::Seal`]).
    fn update_tokens_and_append<'a, E, F, R>(
        &self,
        updates: Vec<TokenUpdate<'a, E>>,
        records: F,
        keyring: &Keyring,
        ts: &str,
    ) -> impl Future<Output = Result<(R, Vec<Sealed>), StoreError>> + Send
    where
        E: Send + 'a,
        F: FnOnce(Vec<TokenOutcome<E>>) -> Result<(Vec<Prepared>, R), StoreError> + Send + 'a,
        R: Send + 'a;

    /// The `seq` and MAC of the records after `after_seq`, in order, at
    /// most `limit`.
    fn audit_macs_after(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;

    /// The last audit record's `seq` and `mac`.
    fn audit_head(&self) -> impl Future<Output = Result<Option<(u64, String)>, StoreError>> + Send;

    /// Audit records `from..=to` in order, at most `limit`.
    fn audit_range(
        &self,
        from: u64,
        to: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    /// Streams audit records `from..=to` (at most `limit`) through
    /// `verifier`, pushing each one's Merkle leaf to `leaves` if given.
    /// Returns how many were read, or where the chain breaks.
    fn audit_verify_range(
        &self,
        range: (u64, u64, u32),
        verifier: &mut ChainVerifier<'_>,
        leaves: Option<&mut Vec<Hash>>,
    ) -> impl Future<Output = Result<Result<u64, ChainBreak>, StoreError>> + Send;

    /// The first `seq` stored with canonical `details`/`reasons` text.
    fn audit_canonical_since(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn audit_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Brings lookup structures kept behind the log up to date (SQLite's
    /// postings); returns the last `seq` they cover (0 when the backend has
    /// none).
    fn audit_index(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn audit_query(&self, filter: &AuditFilter) -> impl Future<Output = Result<Vec<Record>, StoreError>> + Send;

    fn save_checkpoint(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;

    fn insert_api_key(&self, key: &StoredKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn api_key(&self, id: &str) -> impl Future<Output = Result<Option<StoredKey>, StoreError>> + Send;

    fn api_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;

    fn revoke_api_key(&self, id: &str, at: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The current store versions (see [`StoreVersions`]).
    fn versions(&self) -> impl Future<Output = Result<StoreVersions, StoreError>> + Send;

    /// Records that `bundle` became active; returns its row id.
    fn record_bundle(&self, bundle: &StoredBundle) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Records that `source` delivered `webhook_id`; `false` if it already
    /// had (a replay). Forgets ids whose `expires_at` has passed (`now`).
    fn webhook_seen(
        &self,
        source: &str,
        webhook_id: &str,
        now: &str,
        expires_at: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets a delivery id, so a delivery that failed on our side (a 500)
    /// can be retried by its sender.
    fn webhook_forget(&self, source: &str, webhook_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every token of `owner`, on any connection, by token id.
    fn tokens_of_owner(&self, owner: &str) -> impl Future<Output = Result<Vec<TokenState>, StoreError>> + Send;

    /// A subscription's cursor, if it has delivered or skipped anything yet.
    fn webhook_cursor(&self, subscription: &str) -> impl Future<Output = Result<Option<Cursor>, StoreError>> + Send;

    fn save_webhook_cursor(
        &self,
        subscription: &str,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
