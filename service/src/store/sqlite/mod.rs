//! SQLite through sqlx: WAL, `synchronous=FULL` (an acknowledged write
//! survives power loss), writers serialised with `BEGIN IMMEDIATE` on one
//! connection. What only SQLite does: the append after a remembered head
//! (below, with `head.rs`), lookups through postings built behind the log
//! (`lookup.rs`), upkeep off the acknowledgement path at the lowest CPU
//! priority (`upkeep.rs`), and the parallel verification scan (`scan.rs`).

mod head;
mod lookup;
mod point;
mod scan;
mod upkeep;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use warrant_engine::Timestamp;
use warrant_engine::audit::{ChainBreak, ChainVerifier, Hash, Keyring, Prepared, Record, SealError, TileEdge, TileId};

use self::head::HeadCache;
pub(super) use self::point::GrantRow;
use self::point::PointReads;
pub use self::upkeep::THREAD as UPKEEP_THREAD;
use self::upkeep::Upkeep;
use super::error::StoreError;
use super::records::{AuditFilter, head_of};
use super::sealing::{
    INSERT_RECORDS, NewRow, RECORDS_PER_INSERT, Sealed, Sealing, insert_statements, push_records, seal_after,
};
use super::tree::{self, TreeCache, Turn};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Pools over one file: readers run in parallel (WAL), verification scans
/// on connections of their own, writers queue in process on a single
/// connection. Several connections racing for SQLite's
/// write lock fall into its busy handler, which sleeps and backs off (we
/// measured p99 acknowledgements near 800 ms that way); one writer queue is
/// fair and never sleeps.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    /// The database file: verification scans open it on connections of
    /// their own (`scan.rs`).
    path: PathBuf,
    head: Arc<HeadCache>,
    /// The tree's edge as this handle last wrote it.
    tree: Arc<TreeCache>,
    /// Where the lookup postings end, as last seen (`u64::MAX`: not yet).
    indexed_upto: Arc<AtomicU64>,
    /// The hot point reads (`point.rs`); none for an in-memory database,
    /// which other connections cannot open.
    point: Option<Arc<PointReads>>,
    /// Postings and checkpoints behind the log (`upkeep.rs`); none for an
    /// in-memory database.
    upkeep: Option<Arc<Upkeep>>,
    /// The head when upkeep was last asked for a checkpoint.
    checkpoint_asked: Arc<AtomicU64>,
}

impl SqliteStore {
    pub async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Upkeep checkpoints the WAL (`upkeep.rs`); the writer's own
            // checkpoint, inside a commit, is the backstop.
            .pragma("wal_autocheckpoint", upkeep::BACKSTOP_PAGES.to_string());
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            create_dir(dir)?;
        }
        if create && !path.as_os_str().is_empty() && path.as_os_str() != ":memory:" {
            create_private_file(&path)?;
        }
        // No ping before handing out a connection: a local file does not
        // drop connections, and on the writer the ping was a round trip to
        // SQLite's thread in front of every group commit (~10% of durable
        // append throughput at 64 writers).
        let pools = || SqlitePoolOptions::new().test_before_acquire(false);
        let writer = pools().max_connections(1).connect_with(options.clone()).await?;
        MIGRATIONS.run(&writer).await?;
        let pool = pools().max_connections(4).connect_with(options.clone()).await?;
        let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
        let point = (!in_memory).then(|| Arc::new(PointReads::new(&path)));
        let upkeep = if in_memory { None } else { Some(Arc::new(Upkeep::start(&path)?)) };
        Ok(Self {
            pool,
            writer,
            path,
            head: Arc::default(),
            tree: Arc::default(),
            indexed_upto: Arc::new(AtomicU64::new(u64::MAX)),
            point,
            upkeep,
            checkpoint_asked: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The point reads stepped on the caller's thread, if this file has them.
    pub(super) fn point(&self) -> Option<&PointReads> {
        self.point.as_deref()
    }

    /// For reads.
    pub(super) fn reader(&self) -> &SqlitePool {
        &self.pool
    }

    /// For every write.
    pub(super) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// A write transaction: `BEGIN IMMEDIATE` takes SQLite's write lock up
    /// front, so what it reads stays true until it commits.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Row locks on the tokens a write transaction reads: none needed, the
    /// transaction already holds the only write lock.
    pub(super) fn for_update(&self) -> &'static str {
        ""
    }

    /// Serialises token changes across processes: the write lock already does.
    pub(super) async fn lock_tokens(&self, _: &mut SqliteConnection, _ids: &[String]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Serialises appends to the chain: the write lock already does.
    pub(super) async fn lock_chain(&self, _: &mut SqliteConnection) -> Result<(), StoreError> {
        Ok(())
    }

    /// The head and the tree's edge, inside a write transaction (which holds
    /// SQLite's only write lock, so the chain needs no lock of its own).
    pub(super) async fn take_turn(&self, tx: &mut SqliteConnection) -> Result<Turn, StoreError> {
        let stored: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, mac FROM audit_records ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let head = head_of(stored)?;
        let (edge, changed) = tree::edge_at(&mut *tx, &self.tree, head.0).await?;
        Ok(Turn { head, edge, changed })
    }

    /// Inserts sealed records and writes the stored ones of the tiles they
    /// changed, inside the write transaction of their [`Self::take_turn`].
    pub(super) async fn store_sealed(
        &self,
        tx: &mut SqliteConnection,
        rows: Vec<NewRow<'_>>,
        changed: &BTreeMap<TileId, Vec<Hash>>,
    ) -> Result<(), StoreError> {
        for mut insert in insert_statements(rows, RECORDS_PER_INSERT) {
            insert.build().execute(&mut *tx).await?;
        }
        if let Some(mut upsert) = tree::upsert(changed, self.stores_partial_leaves()) {
            upsert.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// After a write transaction that appended records committed: remember
    /// the new head, so the next group commit is one statement.
    pub(super) fn appended(&self, head: (u64, warrant_engine::audit::Mac)) {
        self.head.set(head);
    }

    /// Level 0's partial tile is not stored (`tree::is_stored`): one
    /// process writes, and its edge holds it.
    pub(super) fn stores_partial_leaves(&self) -> bool {
        false
    }

    /// The tree's edge as this handle last wrote it.
    pub(super) fn tree(&self) -> &TreeCache {
        &self.tree
    }

    /// Upkeep after each group commit: a WAL checkpoint every
    /// [`upkeep::CHECKPOINT_EVERY`] records, and the lookup postings,
    /// looking at the database only once a partition may have closed since.
    pub(super) async fn index(&self) -> Result<u64, StoreError> {
        let stored = self.head.stored();
        if let Some(upkeep) = &self.upkeep
            && stored >= self.checkpoint_asked.load(Ordering::Relaxed) + upkeep::CHECKPOINT_EVERY
        {
            self.checkpoint_asked.store(stored, Ordering::Relaxed);
            upkeep.checkpoint();
        }
        let upto = self.indexed_upto.load(Ordering::Relaxed);
        if upto != u64::MAX && stored < upto + lookup::PART {
            return Ok(upto);
        }
        let upto = lookup::index(self.reader(), self.writer(), self.upkeep.as_deref()).await?;
        self.indexed_upto.store(upto, Ordering::Relaxed);
        Ok(upto)
    }

    /// Records matching `filter`, through the postings where they cover the log.
    pub(super) async fn query(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        lookup::query(self.reader(), filter).await
    }

    /// Streams records through `verifier` on connections of its own.
    pub(super) async fn verify_range(
        &self,
        range: (u64, u64, u32),
        verifier: &mut ChainVerifier<'_>,
        leaves: Option<&mut Vec<Hash>>,
    ) -> Result<Result<u64, ChainBreak>, StoreError> {
        scan::verify_range(&self.path, range, verifier, leaves).await
    }
}

/// SQLite's fast append: a group commit after the head and tree edge this
/// handle remembers, with no head to read back.
///
/// Whether the remembered head is still the head is the insert's to check:
/// the next record's `seq` is the table's primary key (a record someone else
/// appended meanwhile makes the insert fail as a whole), and the schema
/// refuses a record that does not follow the stored one (migration `0009`).
/// When it is refused, or nothing is remembered, the caller takes the write
/// transaction every backend shares (`store/write.rs`).
impl SqliteStore {
    /// Seals `entries` after the remembered head and stores them with the
    /// tiles they change, in one transaction. `None` when there is no
    /// remembered head (or tree edge at it) or the insert was refused
    /// because another writer appended meanwhile: nothing of it is stored,
    /// and the caller appends in a transaction that reads the head.
    pub(super) async fn append_after_remembered_head(
        &self,
        entries: &[Prepared],
        keyring: &Keyring,
        ts: Timestamp,
    ) -> Result<Option<Vec<Result<Sealed, SealError>>>, StoreError> {
        let Some(head) = self.head.take() else { return Ok(None) };
        let Some(mut edge) = self.tree.take_at(head.0) else { return Ok(None) };
        let sealing = seal_after(head, entries, keyring, ts);
        let changed = edge.append(sealing.results.iter().filter_map(|r| r.as_ref().ok()).map(|s| s.leaf));
        if !changed.iter().any(|(id, hashes)| tree::is_stored(id, hashes, self.stores_partial_leaves())) {
            // No stored tile changes: the records alone, one statement
            // (SQLite commits a statement atomically on its own).
            return self.insert_alone(sealing, edge).await;
        }
        if sealing.rows.len() > RECORDS_PER_INSERT {
            return Ok(None);
        }
        // The records and the tiles they complete, in one transaction sent as
        // one batch of statements: one round trip to SQLite's thread, where
        // BEGIN, INSERT, INSERT and COMMIT apart cost four (sqlx binds `?`
        // parameters in order across the statements of a query).
        let mut batch = QueryBuilder::<Sqlite>::new("BEGIN IMMEDIATE; ");
        batch.push(INSERT_RECORDS);
        push_records(&mut batch, sealing.rows);
        batch.push("; ");
        tree::push_upsert(&mut batch, &changed, self.stores_partial_leaves());
        batch.push("; COMMIT");
        match batch.build().execute(self.writer()).await {
            Ok(_) => {}
            // A statement was refused (the insert, when someone else
            // appended meanwhile): nothing of it is stored, and the batch
            // stopped inside its transaction, which is rolled back.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "audit append after the remembered head refused; reading the head");
                // (No transaction is open if BEGIN itself was refused.)
                let _ = sqlx::query("ROLLBACK").execute(self.writer()).await;
                return Ok(None);
            }
            // Anything else could have come after the commit: retrying might
            // store the batch twice, so the batch fails (and a transaction
            // left open is closed).
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(self.writer()).await;
                return Err(e.into());
            }
        }
        self.head.set(sealing.head);
        self.tree.set(edge);
        Ok(Some(sealing.results))
    }

    /// The records of `sealing` as one INSERT statement, when no stored
    /// tile changes with them; `edge` is the tree's edge once they are in.
    async fn insert_alone(
        &self,
        sealing: Sealing<'_>,
        edge: TileEdge,
    ) -> Result<Option<Vec<Result<Sealed, SealError>>>, StoreError> {
        let mut statements = insert_statements(sealing.rows, RECORDS_PER_INSERT);
        let attempt = match statements.as_mut_slice() {
            [] => Ok(()),
            [insert] => insert.build().execute(self.writer()).await.map(|_| ()),
            // More than one statement needs a transaction.
            [_, _, ..] => return Ok(None),
        };
        match attempt {
            Ok(()) => {
                self.head.set(sealing.head);
                self.tree.set(edge);
                Ok(Some(sealing.results))
            }
            // SQLite refused the statement, so nothing of it is stored:
            // someone else appended meanwhile.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "audit append after the remembered head refused; reading the head");
                Ok(None)
            }
            // Anything else could have come after the commit: retrying
            // might store the batch twice, so the batch fails.
            Err(e) => Err(e.into()),
        }
    }
}

/// Creates `dir` (and its parents) readable by this user only: the
/// database holds token state and the audit log.
fn create_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| cannot_create(dir, &e))
}

/// Creates the database file, empty, with mode 0600 if it does not exist
/// yet; SQLite gives its `-wal` and `-shm` files the same mode. An existing
/// file keeps the mode its owner chose.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(cannot_create(path, &e)),
    }
}

fn cannot_create(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Configuration(format!("cannot create `{}`: {e}", path.display()).into()))
}
