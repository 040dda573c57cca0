//! The one write transaction every token change and every audit append
//! goes through (but SQLite's single-statement append after a remembered
//! head, `sqlite/mod.rs`): apply token changes in order, seal the
//! records made of their outcomes after the chain's head, insert, commit.
//! A token change is stored if and only if its records are, and the tree's
//! tiles (`tiles.rs`) change with the records they cover.
//!
//! What happens under the chain's lock is each backend's: `take_turn`
//! takes the lock and reads the head and the tree's edge (`tree::Turn`),
//! `store_sealed` inserts the sealed records and the tiles they change.
//! PostgreSQL does each in one round trip (`postgres/append.rs`), since
//! the other instances wait for the lock meanwhile.
//!
//! A vault grant's change (`grants.rs`) comes first in its transaction.
//! Locks are taken in one order on every path, grant, tokens, chain, so
//! two PostgreSQL instances never wait on each other in a cycle; on SQLite
//! `BEGIN IMMEDIATE` holds the only write lock and the hooks do nothing.

use warrant_engine::Timestamp;
use warrant_engine::audit::{Keyring, Mac, Prepared, SealError, TileEdge};

use super::error::StoreError;
use super::grants::{GrantWrite, apply_grant_write};
use super::open::Store;
use super::sealing::{Sealed, seal_after};
use super::tokens::{self, TokenOutcome, TokenUpdate, token_of};
use super::tree::Turn;

impl Store {
    /// Applies a vault grant's change (`grant`, if any: `grants.rs`), then
    /// `updates` (possibly none), and appends the records `records` makes of
    /// their outcomes, in one transaction: a change is stored if and only if
    /// the records are. Every record must seal, or nothing is stored
    /// ([`StoreError::Seal`]); a grant no longer at the version its write
    /// was computed from stores nothing ([`StoreError::GrantChanged`]).
    /// Returns what `records` answered beside the records, and the records
    /// in order.
    pub async fn update_tokens_and_append<'a, E, F, R>(
        &self,
        grant: Option<&GrantWrite>,
        updates: Vec<TokenUpdate<'a, E>>,
        records: F,
        keyring: &Keyring,
        ts: Timestamp,
    ) -> Result<(R, Vec<Sealed>), StoreError>
    where
        E: Send + 'a,
        F: FnOnce(Vec<TokenOutcome<E>>) -> Result<(Vec<Prepared>, R), StoreError> + Send + 'a,
        R: Send + 'a,
    {
        let (answer, results) = self.write(grant, updates, records, Some(keyring), ts, true).await?;
        let sealed = results.into_iter().collect::<Result<_, _>>()?;
        Ok((answer, sealed))
    }

    /// The write transaction. With `all_or_nothing`, a record that does not
    /// seal fails the whole transaction; otherwise the others are stored
    /// and its error is returned in its place. `keyring` may be `None` only
    /// when `records` makes no record (token changes alone).
    pub(super) async fn write<'a, E, F, R>(
        &self,
        grant: Option<&GrantWrite>,
        updates: Vec<TokenUpdate<'a, E>>,
        records: F,
        keyring: Option<&Keyring>,
        ts: Timestamp,
        all_or_nothing: bool,
    ) -> Result<(R, Vec<Result<Sealed, SealError>>), StoreError>
    where
        E: Send + 'a,
        F: FnOnce(Vec<TokenOutcome<E>>) -> Result<(Vec<Prepared>, R), StoreError> + Send + 'a,
        R: Send + 'a,
    {
        on_backend!(self, b => {
            let mut tx = b.begin_write().await?;
            if let Some(write) = grant
                && !apply_grant_write!(tx, write)
            {
                return Err(StoreError::GrantChanged(write.grant.id.clone()));
            }
            let mut outcomes = Vec::new();
            if !updates.is_empty() {
                let ids = tokens::ids_of(&updates);
                b.lock_tokens(&mut tx, &ids).await?;
                let mut stored = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(tokens::CHUNK) {
                    for row in tokens::select(chunk, b.for_update()).build().fetch_all(&mut *tx).await? {
                        stored.push(token_of(&row)?);
                    }
                }
                let writes;
                (outcomes, writes) = tokens::apply(stored, updates);
                for chunk in writes.chunks(tokens::CHUNK) {
                    tokens::upsert(chunk).build().execute(&mut *tx).await?;
                }
            }
            let (entries, answer) = records(outcomes)?;
            let mut results = Vec::new();
            let mut head: Option<((u64, Mac), TileEdge)> = None;
            if !entries.is_empty() {
                let keyring = keyring.ok_or(StoreError::NoAuditKey)?;
                let Turn { head: stored, mut edge, mut changed } = b.take_turn(&mut tx).await?;
                let sealing = seal_after(stored, &entries, keyring, ts);
                if all_or_nothing && let Some(Err(e)) = sealing.results.iter().find(|r| r.is_err()) {
                    return Err(StoreError::Seal(e.clone()));
                }
                changed.extend(edge.append(sealing.results.iter().filter_map(|r| r.as_ref().ok()).map(|s| s.leaf)));
                b.store_sealed(&mut tx, sealing.rows, &changed).await?;
                results = sealing.results;
                head = Some((sealing.head, edge));
            }
            tx.commit().await?;
            if let Some((head, edge)) = head {
                b.appended(head);
                b.tree().set(edge);
            }
            Ok((answer, results))
        })
    }
}
