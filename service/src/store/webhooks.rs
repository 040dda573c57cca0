//! Webhook state, SQLite: inbound delivery ids already seen (replay
//! refusal), outbound cursors (delivery progress through the audit log),
//! and a user's tokens across connections (`user.deprovisioned`).
//!
//! The `Store` methods are here rather than in `mod.rs` so this concern
//! stays in one file; each dispatches on the backend like the others.

use sqlx::Row as _;
use sqlx::sqlite::SqlitePool;

use super::rows::token_of;
use super::{Backend, Store, StoreError};
use crate::tokens::TokenState;

/// A subscription's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every record up to here was acknowledged or did not match.
    pub delivered_seq: u64,
    /// Failed attempts at the record after `delivered_seq`.
    pub attempts: u32,
    /// RFC 3339 UTC; when the next attempt is due while backing off.
    pub next_attempt_at: Option<String>,
}

impl Store {
    /// Records that `source` delivered `webhook_id`; `false` if it already
    /// had (a replay). Forgets ids whose `expires_at` has passed (`now`).
    pub async fn webhook_seen(
        &self,
        source: &str,
        webhook_id: &str,
        now: &str,
        expires_at: Option<&str>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, webhook_seen(source, webhook_id, now, expires_at))
    }

    /// Forgets a delivery id, so a delivery that failed on our side (a 500)
    /// can be retried by its sender.
    pub async fn webhook_forget(&self, source: &str, webhook_id: &str) -> Result<(), StoreError> {
        dispatch!(self, webhook_forget(source, webhook_id))
    }

    /// Every token of `owner`, on any connection, by token id.
    pub async fn tokens_of_owner(&self, owner: &str) -> Result<Vec<TokenState>, StoreError> {
        dispatch!(self, tokens_of_owner(owner))
    }

    /// A subscription's cursor, if it has delivered or skipped anything yet.
    pub async fn webhook_cursor(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        dispatch!(self, webhook_cursor(subscription))
    }

    pub async fn save_webhook_cursor(&self, subscription: &str, cursor: &Cursor) -> Result<(), StoreError> {
        dispatch!(self, save_webhook_cursor(subscription, cursor))
    }
}

pub(super) async fn seen(
    pool: &SqlitePool,
    source: &str,
    webhook_id: &str,
    now: &str,
    expires_at: Option<&str>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("DELETE FROM webhook_deliveries_seen WHERE expires_at IS NOT NULL AND expires_at < ?")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries_seen (source, webhook_id, seen_at, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (source, webhook_id) DO NOTHING",
    )
    .bind(source)
    .bind(webhook_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

pub(super) async fn forget(pool: &SqlitePool, source: &str, webhook_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_deliveries_seen WHERE source = ? AND webhook_id = ?")
        .bind(source)
        .bind(webhook_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn tokens_of_owner(pool: &SqlitePool, owner: &str) -> Result<Vec<TokenState>, StoreError> {
    let rows = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = ? ORDER BY token_id"))
        .bind(owner)
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_of).collect()
}

pub(super) async fn cursor(pool: &SqlitePool, subscription: &str) -> Result<Option<Cursor>, StoreError> {
    let row =
        sqlx::query("SELECT delivered_seq, attempts, next_attempt_at FROM webhook_cursors WHERE subscription = ?")
            .bind(subscription)
            .fetch_optional(pool)
            .await?;
    row.map(|r| {
        let seq: i64 = r.try_get("delivered_seq")?;
        let attempts: i64 = r.try_get("attempts")?;
        Ok(Cursor {
            delivered_seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative `delivered_seq`".into()))?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            next_attempt_at: r.try_get("next_attempt_at")?,
        })
    })
    .transpose()
}

pub(super) async fn save_cursor(pool: &SqlitePool, subscription: &str, c: &Cursor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_cursors (subscription, delivered_seq, attempts, next_attempt_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (subscription) DO UPDATE SET delivered_seq = excluded.delivered_seq,
             attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at",
    )
    .bind(subscription)
    .bind(i64::try_from(c.delivered_seq).unwrap_or(i64::MAX))
    .bind(i64::from(c.attempts))
    .bind(&c.next_attempt_at)
    .execute(pool)
    .await?;
    Ok(())
}
