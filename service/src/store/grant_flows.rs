//! The token vault's pending authorizations (docs/vault.md#storage): from
//! `start` until the provider's callback consumes one, or it expires.
//! A flow is consumed once: taking it deletes it.

use sqlx::{ColumnIndex, Decode, Row, Type};
use warrant_engine::Timestamp;

use super::error::{StoreError, timestamp_of};
use super::open::Store;

/// A pending authorization as stored: never the `state` itself, only its
/// hash, and the PKCE verifier sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFlow {
    /// Lowercase hex SHA-256 of the `state` sent to the provider.
    pub state_hash: String,
    pub connection: String,
    pub owner: String,
    /// The vault key the verifier is sealed under.
    pub kek_id: String,
    /// The PKCE verifier, sealed.
    pub verifier: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

macro_rules! flow_columns {
    () => {
        "state_hash, connection, owner, kek_id, verifier, created_at, expires_at"
    };
}

fn flow_of<R>(row: &R) -> Result<GrantFlow, StoreError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(GrantFlow {
        state_hash: row.try_get("state_hash")?,
        connection: row.try_get("connection")?,
        owner: row.try_get("owner")?,
        kek_id: row.try_get("kek_id")?,
        verifier: row.try_get("verifier")?,
        created_at: timestamp_of(&row.try_get::<String, _>("created_at")?, "grant_flows.created_at")?,
        expires_at: timestamp_of(&row.try_get::<String, _>("expires_at")?, "grant_flows.expires_at")?,
    })
}

impl Store {
    /// Drops every flow expired at `flow.created_at`, then stores `flow`
    /// unless its owner already has `max_pending` pending ones, all in one
    /// transaction (the owner's flows locked on PostgreSQL), so no caller
    /// can keep more than `max_pending` rows. Returns whether it was stored.
    pub async fn start_grant_flow(&self, flow: &GrantFlow, max_pending: u32) -> Result<bool, StoreError> {
        let now = flow.created_at.to_string();
        on_backend!(self, b => {
            let mut tx = b.begin_write().await?;
            b.lock_tokens(&mut tx, &[format!("grant-flows:{}", flow.owner)]).await?;
            sqlx::query("DELETE FROM grant_flows WHERE expires_at <= $1").bind(&now).execute(&mut *tx).await?;
            let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM grant_flows WHERE owner = $1")
                .bind(&flow.owner)
                .fetch_one(&mut *tx)
                .await?;
            if pending >= i64::from(max_pending) {
                tx.commit().await?;
                return Ok(false);
            }
            sqlx::query(concat!("INSERT INTO grant_flows (", flow_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"))
                .bind(&flow.state_hash)
                .bind(&flow.connection)
                .bind(&flow.owner)
                .bind(&flow.kek_id)
                .bind(&flow.verifier)
                .bind(&now)
                .bind(flow.expires_at.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The flow of `state_hash`, removed: a `state` works once. `None` when
    /// there is none, or it expired at `now` (then it is removed too).
    pub async fn take_grant_flow(&self, state_hash: &str, now: Timestamp) -> Result<Option<GrantFlow>, StoreError> {
        let taken = on_backend!(self, b => {
            let row = sqlx::query(concat!("DELETE FROM grant_flows WHERE state_hash = $1 RETURNING ", flow_columns!()))
                .bind(state_hash)
                .fetch_optional(b.writer())
                .await?;
            row.as_ref().map(flow_of).transpose()?
        });
        Ok(taken.filter(|f| f.expires_at > now))
    }
}
