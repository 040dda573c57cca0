//! A key rotation's second step (docs/vault.md#rotating-the-key-encryption-key):
//! every grant's data key re-wrapped under the current key-encryption key,
//! straight in the database, while the service keeps serving.
//!
//! Only the wrapping changes: the data key, and so every sealed token, stays
//! as it is, so a service holding the grant's previous row can still open it.
//! Each grant is written at the version it was read at; a grant changed
//! meanwhile is read again. A grant whose refresh is in flight (its start
//! stored) is left alone, since the refresh's own write must not be refused:
//! its id is reported so the command can be run again.

use std::collections::BTreeMap;

use super::kek::{VaultKeys, WrappedKey};
use crate::store::{GrantWrite, Store, StoreError};

/// Grants read per page.
const PAGE: u32 = 500;
/// Times one grant is read again after a concurrent change.
const ATTEMPTS: u32 = 5;

/// What a re-wrap did.
#[derive(Debug, Default)]
pub struct Rewrapped {
    /// The key every re-wrapped data key is now under.
    pub current: String,
    /// Grants per key before and after.
    pub before: BTreeMap<String, i64>,
    pub after: BTreeMap<String, i64>,
    pub rewrapped: u64,
    /// Grants already under the current key.
    pub unchanged: u64,
    /// Grants left for another run: a refresh in flight, or changed
    /// [`ATTEMPTS`] times while being re-wrapped.
    pub busy: Vec<String>,
    /// Grants whose data key did not unwrap, and why (no secret).
    pub failed: Vec<(String, String)>,
}

impl Rewrapped {
    /// Whether every grant is now under the current key.
    pub fn complete(&self) -> bool {
        self.busy.is_empty() && self.failed.is_empty()
    }
}

/// Re-wraps every grant in `store` not yet under `keys`' current key.
pub async fn rewrap_all(store: &Store, keys: &VaultKeys) -> Result<Rewrapped, StoreError> {
    let mut done = Rewrapped {
        current: keys.current_id().to_owned(),
        before: store.grants_per_kek().await?,
        ..Rewrapped::default()
    };
    let mut last = String::new();
    loop {
        let ids = store.grant_ids_after(&last, PAGE).await?;
        let Some(next) = ids.last() else { break };
        last = next.clone();
        for id in ids {
            rewrap_one(store, keys, &id, &mut done).await?;
        }
    }
    done.after = store.grants_per_kek().await?;
    Ok(done)
}

async fn rewrap_one(store: &Store, keys: &VaultKeys, id: &str, done: &mut Rewrapped) -> Result<(), StoreError> {
    for _ in 0..ATTEMPTS {
        // On PostgreSQL this waits for a refresh of the grant on any
        // instance to end; on SQLite the version check below is enough.
        let _lease = store.grant_lease(id).await?;
        let Some(grant) = store.grant(id).await? else { return Ok(()) };
        if grant.refresh_started_at.is_some() {
            done.busy.push(id.to_owned());
            return Ok(());
        }
        let wrapped = WrappedKey { kek_id: grant.kek_id.clone(), bytes: grant.data_key.clone() };
        let rewrapped = match keys.rewrap(id, &wrapped) {
            Ok(Some(rewrapped)) => rewrapped,
            Ok(None) => {
                done.unchanged += 1;
                return Ok(());
            }
            Err(e) => {
                done.failed.push((id.to_owned(), e.to_string()));
                return Ok(());
            }
        };
        let mut next = grant.clone();
        next.kek_id = rewrapped.kek_id;
        next.data_key = rewrapped.bytes;
        next.version = grant.version + 1;
        // `updated_at` stays: it dates the tokens, and the refresh skew is
        // reckoned from it (`refresh.rs`, `skew_for`); they did not change.
        match store.rewrap_grant(&GrantWrite { grant: next, expected: Some(grant.version) }).await {
            Ok(()) => {
                done.rewrapped += 1;
                return Ok(());
            }
            Err(StoreError::GrantChanged(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    done.busy.push(id.to_owned());
    Ok(())
}
