//! The witness's durable state: for each followed log, the latest
//! checkpoint it cosigned (`migrations/witness`), in a SQLite file of its
//! own (`--state`).
//!
//! The spec requires the check of a new checkpoint against the latest one
//! and the storing of the new one to be a single atomic step, durable
//! before the witness answers: otherwise two interleaved requests can roll
//! a log back. [`WitnessState::advance`] is that step, one `BEGIN IMMEDIATE`
//! transaction (SQLite's write lock, taken up front, so what it reads stays
//! true until it commits, across processes too) committed with
//! `synchronous=FULL` before it returns.

use std::path::Path;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use warrant_engine::audit::{Hash, LogCheckpoint};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/witness");

/// Why the state could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create `{path}`: {error}")]
    Create { path: String, error: std::io::Error },
    #[error("witness state: {0}")]
    Database(#[from] sqlx::Error),
    #[error("witness state: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("witness state: the stored checkpoint of `{0}` is malformed")]
    Corrupt(String),
}

/// What the witness keeps for a log once it cosigned a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The tree head cosigned; its origin is the log's.
    pub checkpoint: LogCheckpoint,
    /// The checkpoint note with the log's signatures and the cosignature.
    pub note: String,
    /// The cosignature's time, POSIX seconds.
    pub cosigned_at: u64,
}

/// The state file: one connection writes (writes are serialised anyway),
/// two read.
#[derive(Debug, Clone)]
pub struct WitnessState {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl WitnessState {
    /// Opens the state at `path`, creating it (mode 0600, its directory
    /// 0700) and its tables if needed.
    pub async fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|error| StateError::Create { path: dir.display().to_string(), error })?;
        }
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        MIGRATIONS.run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(2).connect_with(options).await?;
        Ok(Self { writer, reader })
    }

    /// The latest checkpoint cosigned for `origin`.
    pub async fn latest(&self, origin: &str) -> Result<Option<LogCheckpoint>, StateError> {
        let row = sqlx::query("SELECT tree_size, root FROM witness_checkpoints WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| head(origin, row.try_get("tree_size")?, row.try_get("root")?)).transpose()
    }

    /// The note of the latest checkpoint cosigned for `origin`, with the
    /// cosignature.
    pub async fn latest_note(&self, origin: &str) -> Result<Option<String>, StateError> {
        Ok(sqlx::query_scalar("SELECT note FROM witness_checkpoints WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// The atomic step: reads the latest checkpoint cosigned for `origin`,
    /// lets `decide` judge the request against it, and stores what it
    /// returns, all in one write transaction, committed before this returns.
    /// When `decide` refuses, nothing is stored.
    ///
    /// `decide` runs with the write lock held: it must not wait on anything.
    pub async fn advance<T, E>(
        &self,
        origin: &str,
        decide: impl FnOnce(Option<LogCheckpoint>) -> Result<(Witnessed, T), E>,
    ) -> Result<T, E>
    where
        E: From<StateError>,
    {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(StateError::from)?;
        let row = sqlx::query("SELECT tree_size, root FROM witness_checkpoints WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StateError::from)?;
        let latest = match row {
            Some(row) => Some(head(
                origin,
                row.try_get("tree_size").map_err(StateError::from)?,
                row.try_get("root").map_err(StateError::from)?,
            )?),
            None => None,
        };
        let (witnessed, answer) = match decide(latest) {
            Ok(decided) => decided,
            Err(refused) => {
                tx.rollback().await.map_err(StateError::from)?;
                return Err(refused);
            }
        };
        // INVARIANT: `decide` judged a checkpoint of `origin`'s log, so the
        // head it returns is that log's.
        if witnessed.checkpoint.origin != origin {
            return Err(StateError::Corrupt(witnessed.checkpoint.origin).into());
        }
        let size = i64::try_from(witnessed.checkpoint.tree_size)
            .map_err(|_| StateError::Corrupt(witnessed.checkpoint.origin.clone()))?;
        let cosigned_at = i64::try_from(witnessed.cosigned_at)
            .map_err(|_| StateError::Corrupt(witnessed.checkpoint.origin.clone()))?;
        sqlx::query(
            "INSERT INTO witness_checkpoints (origin, tree_size, root, note, cosigned_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (origin) DO UPDATE SET tree_size = excluded.tree_size, root = excluded.root,
                 note = excluded.note, cosigned_at = excluded.cosigned_at",
        )
        .bind(origin)
        .bind(size)
        .bind(witnessed.checkpoint.root.as_slice())
        .bind(&witnessed.note)
        .bind(cosigned_at)
        .execute(&mut *tx)
        .await
        .map_err(StateError::from)?;
        tx.commit().await.map_err(StateError::from)?;
        Ok(answer)
    }
}

/// A stored row as a tree head.
fn head(origin: &str, size: i64, root: Vec<u8>) -> Result<LogCheckpoint, StateError> {
    let corrupt = || StateError::Corrupt(origin.to_owned());
    let tree_size = u64::try_from(size).map_err(|_| corrupt())?;
    let root = Hash::try_from(root).map_err(|_| corrupt())?;
    Ok(LogCheckpoint { origin: origin.to_owned(), tree_size, root })
}

/// Creates the state file, empty, with mode 0600 if it does not exist yet;
/// SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StateError::Create { path: path.display().to_string(), error }),
    }
}

#[cfg(test)]
mod tests {
    use warrant_engine::audit::merkle;

    use super::*;

    fn witnessed(size: u64, root: Hash) -> Witnessed {
        let checkpoint = LogCheckpoint { origin: "example.com/log".into(), tree_size: size, root };
        Witnessed { note: format!("{}\n", checkpoint.text()), checkpoint, cosigned_at: 1_700_000_000 }
    }

    #[tokio::test]
    async fn heads_persist_and_the_table_refuses_a_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/witness.db");
        let state = WitnessState::open(&path).await.unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let origin = "example.com/log";
        let five = witnessed(5, merkle::leaf_hash(b"5"));
        let seen = state.advance(origin, |latest| Ok::<_, StateError>((five.clone(), latest))).await.unwrap();
        assert_eq!(seen, None);
        // A refusal stores nothing.
        let refused: Result<(), StateError> =
            state.advance(origin, |_| Err(StateError::Corrupt("refused".into()))).await;
        assert!(refused.is_err());
        drop(state);

        let state = WitnessState::open(&path).await.unwrap();
        assert_eq!(state.latest(origin).await.unwrap(), Some(five.checkpoint.clone()));
        assert_eq!(state.latest_note(origin).await.unwrap(), Some(five.note.clone()));
        assert_eq!(state.latest("example.com/other").await.unwrap(), None);
        // Below the check, the table refuses to shrink or fork a log.
        for bad in [witnessed(4, merkle::leaf_hash(b"4")), witnessed(5, merkle::leaf_hash(b"other"))] {
            let outcome = state.advance(origin, |_| Ok::<_, StateError>((bad.clone(), ()))).await;
            assert!(matches!(outcome, Err(StateError::Database(_))), "{outcome:?}");
        }
        let deleted = sqlx::query("DELETE FROM witness_checkpoints").execute(&state.writer).await;
        assert!(deleted.is_err());
        assert_eq!(state.latest(origin).await.unwrap(), Some(five.checkpoint));
    }
}
