//! The point reads a credential resolution makes (a user's tokens on a
//! connection, a vault grant), on rusqlite connections stepped on the
//! caller's thread.
//!
//! Through sqlx each query is a command sent to its connection's worker
//! thread and an answer sent back: two thread wake-ups for a lookup that
//! SQLite answers from its page cache in microseconds. perf on revealing
//! resolutions at 64 connections put sqlx's SQLite workers at a fifth of
//! the server's CPU, most of it waking and sleeping. These two reads go
//! straight to SQLite instead, like the verification scan (`scan.rs`),
//! on a few connections kept between calls.
//!
//! Stepping SQLite on a runtime thread blocks it for the lookup: an index
//! probe on a warm cache, as long as the JSON parsing around it. In WAL
//! mode a reader never waits for the writer; the busy timeout bounds the
//! rare wait (a WAL recovery) at [`BUSY`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};

use crate::store::error::{StoreError, timestamp_of};
use crate::tokens::{TokenState, TokenStatus};

/// Connections kept between calls (more are opened under load, then closed).
const KEPT: usize = 8;
/// The longest a point read waits for SQLite's locks.
const BUSY: Duration = Duration::from_secs(1);

const TOKENS_OF: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = ?1 AND connection = ?2");
const GRANT: &str = concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = ?1");

fn database(e: rusqlite::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("point read: {e}")))
}

#[derive(Debug)]
pub(crate) struct PointReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl PointReads {
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) }
    }

    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match kept {
            Some(c) => c,
            None => open(&self.path)?,
        };
        let out = read(&connection).map_err(database)?;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEPT
        {
            idle.push(connection);
        }
        Ok(out)
    }

    /// The tokens of `owner` on `connection`.
    pub(crate) fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        let rows = self.with(|c| {
            let mut statement = c.prepare_cached(TOKENS_OF)?;
            let rows = statement.query_map((owner, connection), token_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(TokenRow::decode).collect()
    }

    /// The row of grant `id`, for `grants.rs` to decode.
    pub(crate) fn grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(GRANT)?;
            let mut rows = statement.query_map([id], grant_row)?;
            rows.next().transpose()
        })
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(database)?;
    connection.busy_timeout(BUSY).map_err(database)?;
    connection.pragma_update(None, "query_only", true).map_err(database)?;
    Ok(connection)
}

/// A token row's text, decoded apart from the read (errors are the store's).
struct TokenRow([String; 7], Option<String>);

fn token_row(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow(
        [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?],
        row.get(7)?,
    ))
}

impl TokenRow {
    fn decode(self) -> Result<TokenState, StoreError> {
        let TokenRow([token_id, owner, connection, status, role, expires_at, updated_at], issued_at) = self;
        Ok(TokenState {
            status: TokenStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("token status `{status}`")))?,
            expires_at: timestamp_of(&expires_at, "expires_at")?,
            updated_at: timestamp_of(&updated_at, "updated_at")?,
            issued_at: issued_at.map(|t| timestamp_of(&t, "issued_at")).transpose()?,
            token_id,
            owner,
            connection,
            role,
        })
    }
}

/// A grant row as read (columns in `grant_columns!` order); `grants.rs`
/// decodes it, as it does sqlx's rows.
pub(crate) struct GrantRow {
    pub id: String,
    pub connection: String,
    pub owner: String,
    pub provider: String,
    pub status: String,
    pub reason: Option<String>,
    pub scopes: String,
    pub kek_id: String,
    pub data_key: Vec<u8>,
    pub access_token: Vec<u8>,
    pub access_expires_at: String,
    pub refresh_token: Option<Vec<u8>>,
    pub refresh_started_at: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

fn grant_row(row: &Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        id: row.get(0)?,
        connection: row.get(1)?,
        owner: row.get(2)?,
        provider: row.get(3)?,
        status: row.get(4)?,
        reason: row.get(5)?,
        scopes: row.get(6)?,
        kek_id: row.get(7)?,
        data_key: row.get(8)?,
        access_token: row.get(9)?,
        access_expires_at: row.get(10)?,
        refresh_token: row.get(11)?,
        refresh_started_at: row.get(12)?,
        version: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
    })
}
