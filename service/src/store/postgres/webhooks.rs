//! Webhook state, PostgreSQL (see `store/webhooks.rs` for what each is for).

use sqlx::Row as _;
use sqlx::postgres::PgPool;

use crate::store::StoreError;
use crate::store::rows::token_of;
use crate::store::webhooks::Cursor;
use crate::tokens::TokenState;

pub async fn seen(
    pool: &PgPool,
    source: &str,
    webhook_id: &str,
    now: &str,
    expires_at: Option<&str>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM webhook_deliveries_seen WHERE expires_at IS NOT NULL AND expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries_seen (source, webhook_id, seen_at, expires_at) VALUES ($1, $2, $3, $4)
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

pub async fn forget(pool: &PgPool, source: &str, webhook_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_deliveries_seen WHERE source = $1 AND webhook_id = $2")
        .bind(source)
        .bind(webhook_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn tokens_of_owner(pool: &PgPool, owner: &str) -> Result<Vec<TokenState>, StoreError> {
    let rows = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = $1 ORDER BY token_id"))
        .bind(owner)
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_of).collect()
}

pub async fn cursor(pool: &PgPool, subscription: &str) -> Result<Option<Cursor>, StoreError> {
    let row =
        sqlx::query("SELECT delivered_seq, attempts, next_attempt_at FROM webhook_cursors WHERE subscription = $1")
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

pub async fn save_cursor(pool: &PgPool, subscription: &str, c: &Cursor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_cursors (subscription, delivered_seq, attempts, next_attempt_at) VALUES ($1, $2, $3, $4)
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
