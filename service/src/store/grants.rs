//! The token vault's grants (docs/vault.md#storage): reads here; writes only
//! inside the audit writer's transaction (`write.rs`), with the record of
//! the change and the token event it implies, so a grant's new tokens, its
//! token's state and the audit record commit together or not at all.
//!
//! Every write names the `version` it was computed from: one made from a
//! stale read (another instance refreshed meanwhile) is refused, never
//! applied over the newer row.

use sqlx::{ColumnIndex, Decode, Row, Type};
use warrant_engine::Timestamp;

use super::error::{StoreError, timestamp_of};
use super::open::Store;
use super::sqlite::GrantRow;

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Its tokens work (or can be refreshed).
    Active,
    /// The provider refused its refresh token (`invalid_grant`): only the
    /// user can make a new grant.
    ReauthRequired,
    /// Disconnected or deprovisioned; final.
    Revoked,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReauthRequired => "reauth_required",
            Self::Revoked => "revoked",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        match stored {
            "active" => Some(Self::Active),
            "reauth_required" => Some(Self::ReauthRequired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// A grant as stored: its tokens sealed, its data key wrapped. Never
/// printed with its ciphertexts.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// Also the grant's token id in the token store.
    pub id: String,
    pub connection: String,
    pub owner: String,
    /// The provider's name in the vault configuration.
    pub provider: String,
    pub status: GrantStatus,
    /// Why it is not active (the provider's error code, or who revoked it).
    pub reason: Option<String>,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// The key-encryption key `data_key` is wrapped under.
    pub kek_id: String,
    pub data_key: Vec<u8>,
    /// Sealed under the data key.
    pub access_token: Vec<u8>,
    pub access_expires_at: Timestamp,
    /// Sealed under the data key; `None` when the provider gave none.
    pub refresh_token: Option<Vec<u8>>,
    /// Set, durably, before a refresh is sent; cleared by its outcome. Set
    /// at start-up means a refresh was interrupted.
    pub refresh_started_at: Option<Timestamp>,
    /// How many changes the row has had (1 when created).
    pub version: i64,
    pub created_at: Timestamp,
    /// When the grant or its tokens last changed (made, refreshed,
    /// revoked); a refresh's start marker and a re-wrap leave it, so it
    /// dates the access token the refresh skew is reckoned from.
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("id", &self.id)
            .field("connection", &self.connection)
            .field("owner", &self.owner)
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A grant's next row, and the version it was computed from (`None`: a new
/// grant, refused if the id exists). Applied by the audit writer.
#[derive(Debug, Clone)]
pub struct GrantWrite {
    pub grant: Grant,
    pub expected: Option<i64>,
}

impl GrantWrite {
    /// The version the row has once written.
    pub fn next_version(&self) -> i64 {
        self.expected.map_or(1, |v| v + 1)
    }
}

fn grant_of<R>(row: &R) -> Result<Grant, StoreError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let time = |column: &str| -> Result<Timestamp, StoreError> {
        timestamp_of(&row.try_get::<String, _>(column)?, &format!("grants.{column}"))
    };
    let status: String = row.try_get("status")?;
    let started: Option<String> = row.try_get("refresh_started_at")?;
    Ok(Grant {
        id: row.try_get("id")?,
        connection: row.try_get("connection")?,
        owner: row.try_get("owner")?,
        provider: row.try_get("provider")?,
        status: GrantStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(format!("`grants.status` is `{status}`")))?,
        reason: row.try_get("reason")?,
        scopes: row.try_get("scopes")?,
        kek_id: row.try_get("kek_id")?,
        data_key: row.try_get("data_key")?,
        access_token: row.try_get("access_token")?,
        access_expires_at: time("access_expires_at")?,
        refresh_token: row.try_get("refresh_token")?,
        refresh_started_at: started.map(|t| timestamp_of(&t, "grants.refresh_started_at")).transpose()?,
        version: row.try_get("version")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

/// A grant read by SQLite's point reads (`sqlite/point.rs`), decoded as
/// [`grant_of`] decodes sqlx's rows.
fn grant_of_point(r: GrantRow) -> Result<Grant, StoreError> {
    let time = |text: &str, column: &str| timestamp_of(text, &format!("grants.{column}"));
    Ok(Grant {
        status: GrantStatus::parse(&r.status)
            .ok_or_else(|| StoreError::corrupt(format!("`grants.status` is `{}`", r.status)))?,
        access_expires_at: time(&r.access_expires_at, "access_expires_at")?,
        refresh_started_at: r.refresh_started_at.map(|t| time(&t, "refresh_started_at")).transpose()?,
        created_at: time(&r.created_at, "created_at")?,
        updated_at: time(&r.updated_at, "updated_at")?,
        id: r.id,
        connection: r.connection,
        owner: r.owner,
        provider: r.provider,
        reason: r.reason,
        scopes: r.scopes,
        kek_id: r.kek_id,
        data_key: r.data_key,
        access_token: r.access_token,
        refresh_token: r.refresh_token,
        version: r.version,
    })
}

/// Applies `write` inside the audit writer's transaction `tx`. Returns
/// whether it was applied: `false` when the row is not at the version the
/// write was computed from (or, for a new grant, already exists).
macro_rules! apply_grant_write {
    ($tx:expr, $write:expr) => {{
        let w: &$crate::store::grants::GrantWrite = $write;
        let g = &w.grant;
        let query = match w.expected {
            None => sqlx::query(concat!(
                "INSERT INTO grants (",
                grant_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ",
                "ON CONFLICT (id) DO NOTHING"
            )),
            Some(_) => sqlx::query(
                "UPDATE grants SET connection = $2, owner = $3, provider = $4, status = $5, reason = $6, \
                 scopes = $7, kek_id = $8, data_key = $9, access_token = $10, access_expires_at = $11, \
                 refresh_token = $12, refresh_started_at = $13, version = $14, created_at = $15, updated_at = $16 \
                 WHERE id = $1 AND version = $17",
            ),
        };
        let mut query = query
            .bind(&g.id)
            .bind(&g.connection)
            .bind(&g.owner)
            .bind(&g.provider)
            .bind(g.status.as_str())
            .bind(&g.reason)
            .bind(&g.scopes)
            .bind(&g.kek_id)
            .bind(&g.data_key)
            .bind(&g.access_token)
            .bind(g.access_expires_at.to_string())
            .bind(&g.refresh_token)
            .bind(g.refresh_started_at.map(|t| t.to_string()))
            .bind(w.next_version())
            .bind(g.created_at.to_string())
            .bind(g.updated_at.to_string());
        if let Some(expected) = w.expected {
            query = query.bind(expected);
        }
        let done = query.execute(&mut *$tx).await?;
        done.rows_affected() == 1
    }};
}
pub(crate) use apply_grant_write;

/// The right to refresh one grant, across every instance, until dropped.
/// On PostgreSQL a transaction holding an advisory lock keyed by the grant
/// (released when the lease drops, even on a panic or a cancelled task);
/// on SQLite nothing is needed beyond the in-process lock the vault
/// already holds, since one process writes a SQLite file.
#[derive(Debug)]
#[must_use = "the lease ends when dropped"]
pub struct GrantLease(
    #[allow(dead_code, reason = "held for its lock")] Option<sqlx::Transaction<'static, sqlx::Postgres>>,
);

impl Store {
    /// Waits for, then takes, the lease on grant `id`'s refresh.
    pub async fn grant_lease(&self, id: &str) -> Result<GrantLease, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(GrantLease(None)),
            Store::Postgres(p) => Ok(GrantLease(Some(p.lease(id).await?))),
        }
    }

    /// The grant `id`.
    pub async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        if let Store::Sqlite(s) = self
            && let Some(point) = s.point()
        {
            return point.grant(id)?.map(grant_of_point).transpose();
        }
        on_backend!(self, b => {
            let row = sqlx::query(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
                .bind(id)
                .fetch_optional(b.reader())
                .await?;
            row.as_ref().map(grant_of).transpose()
        })
    }

    /// Every grant of `owner` (on every connection), oldest first.
    pub async fn grants_of(&self, owner: &str) -> Result<Vec<Grant>, StoreError> {
        on_backend!(self, b => {
            let rows = sqlx::query(concat!("SELECT ", grant_columns!(), " FROM grants WHERE owner = $1 ORDER BY created_at, id"))
                .bind(owner)
                .fetch_all(b.reader())
                .await?;
            rows.iter().map(grant_of).collect()
        })
    }

    /// Active grants with a refresh token whose access token expires at or
    /// before `before`, soonest first, at most `limit`; and those whose
    /// refresh was interrupted (`refresh_started_at` set): the background
    /// refresher's work.
    pub async fn grants_to_refresh(&self, before: Timestamp, limit: u32) -> Result<Vec<Grant>, StoreError> {
        on_backend!(self, b => {
            let rows = sqlx::query(concat!(
                "SELECT ", grant_columns!(), " FROM grants WHERE status = 'active' AND refresh_token IS NOT NULL ",
                "AND (access_expires_at <= $1 OR refresh_started_at IS NOT NULL) ORDER BY access_expires_at LIMIT $2"
            ))
            .bind(before.to_string())
            .bind(i64::from(limit))
            .fetch_all(b.reader())
            .await?;
            rows.iter().map(grant_of).collect()
        })
    }

    /// How many grants each key-encryption key wraps the data key of, by
    /// key id: what a key rotation still has to re-wrap, and which keys a
    /// key file must keep.
    pub async fn grants_per_kek(&self) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        on_backend!(self, b => {
            let rows: Vec<(String, i64)> = sqlx::query_as("SELECT kek_id, COUNT(*) FROM grants GROUP BY kek_id")
                .fetch_all(b.reader())
                .await?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Stores a grant change that makes no audit record and touches no
    /// token: a data key re-wrapped under another key-encryption key
    /// (`warrant vault rewrap`, beside a running service). Refused, with
    /// nothing stored, if the row is no longer at `write.expected`.
    pub async fn rewrap_grant(&self, write: &GrantWrite) -> Result<(), StoreError> {
        let records = |_| Ok((Vec::new(), ()));
        self.write::<(), _, ()>(Some(write), Vec::new(), records, None, Timestamp::now(), true).await?;
        Ok(())
    }

    /// The ids of the grants after `after` (in id order), at most `limit`:
    /// to walk every grant, as re-wrapping data keys does.
    pub async fn grant_ids_after(&self, after: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        on_backend!(self, b => {
            Ok(sqlx::query_scalar("SELECT id FROM grants WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(b.reader())
                .await?)
        })
    }
}
