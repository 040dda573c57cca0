//! Webhook state: inbound delivery ids already seen (replay refusal) and
//! outbound cursors (delivery progress through the audit log).

use warrant_engine::Timestamp;

use super::error::{StoreError, i64_of, timestamp_of, u64_of};
use super::open::Store;

/// A subscription's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every record up to here was acknowledged or did not match.
    pub delivered_seq: u64,
    /// Failed attempts at the record after `delivered_seq`.
    pub attempts: u32,
    /// When the next attempt is due while backing off.
    pub next_attempt_at: Option<Timestamp>,
}

impl Store {
    /// Records that `source` delivered `webhook_id`; `false` if it already
    /// had (a replay). Forgets ids whose `expires_at` has passed (`now`).
    pub async fn webhook_seen(
        &self,
        source: &str,
        webhook_id: &str,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => {
            let (now, expires_at) = (now.to_string(), expires_at.map(|t| t.to_string()));
            let mut tx = b.begin_write().await?;
            sqlx::query("DELETE FROM webhook_deliveries_seen WHERE expires_at IS NOT NULL AND expires_at < $1")
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO webhook_deliveries_seen (source, webhook_id, seen_at, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (source, webhook_id) DO NOTHING",
            )
            .bind(source)
            .bind(webhook_id)
            .bind(&now)
            .bind(&expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(inserted == 1)
        })
    }

    /// Forgets a delivery id, so a delivery that failed on our side (a 500)
    /// can be retried by its sender.
    pub async fn webhook_forget(&self, source: &str, webhook_id: &str) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query("DELETE FROM webhook_deliveries_seen WHERE source = $1 AND webhook_id = $2")
                .bind(source)
                .bind(webhook_id)
                .execute(b.writer())
                .await?;
        });
        Ok(())
    }

    /// A subscription's cursor, if it has delivered or skipped anything yet.
    pub async fn webhook_cursor(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        let row: Option<(i64, i64, Option<String>)> = on_backend!(self, b => {
            sqlx::query_as(
                "SELECT delivered_seq, attempts, next_attempt_at FROM webhook_cursors WHERE subscription = $1",
            )
            .bind(subscription)
            .fetch_optional(b.reader())
            .await?
        });
        row.map(|(seq, attempts, next_attempt_at)| {
            Ok(Cursor {
                delivered_seq: u64_of(seq, "delivered_seq")?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                next_attempt_at: next_attempt_at.map(|t| timestamp_of(&t, "next_attempt_at")).transpose()?,
            })
        })
        .transpose()
    }

    pub async fn save_webhook_cursor(&self, subscription: &str, c: &Cursor) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query(
                "INSERT INTO webhook_cursors (subscription, delivered_seq, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subscription) DO UPDATE SET delivered_seq = excluded.delivered_seq, \
                 attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at",
            )
            .bind(subscription)
            .bind(i64_of(c.delivered_seq))
            .bind(i64::from(c.attempts))
            .bind(c.next_attempt_at.map(|t| t.to_string()))
            .execute(b.writer())
            .await?;
        });
        Ok(())
    }
}
