//! Upkeep: the work behind the log that no caller waits for, on one thread
//! of its own at the lowest CPU priority (nice 19).
//!
//! Two jobs used to land on the acknowledgement path as stalls (measured
//! on the pinned load, `tests/load/pinned`, 64 connections, every decision
//! audited; figures in BENCHMARKS.md, "Fifteenth session"):
//!
//! - **Lookup postings** (`lookup.rs`): reading a closed partition of
//!   4,096 records and hashing their looked-up values took about 7.5 ms
//!   of CPU, in one poll of a runtime thread: every request on that
//!   thread waited for it.
//! - **WAL checkpoints**: SQLite's automatic checkpoint runs inside the
//!   commit that takes the WAL past its threshold, about 6 ms, and the
//!   whole group commit's callers waited for it.
//!
//! Here they run on a thread whose nice value is 19: when the core is busy
//! deciding, the scheduler gives it a sliver (about 1.5% against a nice-0
//! thread), so upkeep fills the gaps where the core would idle (the
//! fsyncs) instead of delaying answers. A checkpoint is `PASSIVE`: it
//! never waits for the writer or a reader, and in WAL mode it runs beside
//! them: they go on reading and appending while it copies pages back.
//!
//! When upkeep cannot keep up (a core saturated for a long time), the
//! writer's own automatic checkpoint remains as a backstop, at
//! [`BACKSTOP_PAGES`] WAL pages instead of SQLite's default 1,000.
//!
//! The nice value is per thread on Linux (`setpriority(2)`, "BUGS"):
//! `PRIO_PROCESS` with who 0 sets the calling thread's, so the rest of the
//! process keeps its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::store::error::StoreError;

/// The thread's name (as `/proc` shows it).
pub const THREAD: &str = "warrant-upkeep";
/// The thread's nice value: the lowest priority.
const NICE: i32 = 19;
/// WAL pages at which the writer checkpoints inside its own commit, when
/// upkeep has not (SQLite's default is 1,000; a page is 4 KiB).
pub const BACKSTOP_PAGES: u32 = 10_000;
/// Records appended between two checkpoints upkeep makes: about two
/// group commits at 64 connections. Small, frequent checkpoints keep each
/// one's write-back (and the fsync of the database file that ends it) short,
/// and the writer's WAL fsyncs share the disk with them. Measured p99 at 64
/// connections, 3 runs each: 2,048 records 9.5–9.7 ms, 512 records
/// 6.9–8.1 ms, 256 records 5.8–6.3 ms, 128 records 5.7–6.3 ms, 64 records
/// 6.1–6.6 ms; throughput alike.
pub const CHECKPOINT_EVERY: u64 = 128;
/// The longest upkeep's connection waits for SQLite's locks.
const BUSY: Duration = Duration::from_secs(10);

/// A job: runs on the upkeep thread with its connection (or why there is
/// none).
type Job = Box<dyn FnOnce(Result<&Connection, &str>) + Send>;

/// The upkeep thread of one database file; it ends when the last handle
/// to it is dropped.
#[derive(Debug)]
pub struct Upkeep {
    jobs: std::sync::mpsc::Sender<Job>,
    /// A checkpoint is queued and has not started yet.
    checkpoint_queued: Arc<AtomicBool>,
}

impl Upkeep {
    /// Starts the thread for the database at `path`; returns once the
    /// thread has lowered its priority.
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (lowered, started) = std::sync::mpsc::channel::<()>();
        let path: PathBuf = path.to_path_buf();
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || {
                if let Err(e) = rustix::process::setpriority_process(None, NICE) {
                    tracing::warn!(error = %e, "upkeep runs at normal priority: cannot lower it");
                }
                let _ = lowered.send(());
                let connection = open(&path).map_err(|e| e.to_string());
                while let Ok(job) = queue.recv() {
                    job(connection.as_ref().map_err(String::as_str));
                }
            })
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let _ = started.recv();
        Ok(Self { jobs, checkpoint_queued: Arc::default() })
    }

    /// Runs `job` on the upkeep thread with its connection, and answers
    /// with its result.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let _ = reply.send(match connection {
                Ok(c) => job(c),
                Err(why) => Err(upkeep_error(format!("no connection: {why}"))),
            });
        });
        self.jobs.send(job).map_err(|_| upkeep_error("the thread has stopped".into()))?;
        answer.await.map_err(|_| upkeep_error("the job was dropped".into()))?
    }

    /// Queues a `PASSIVE` checkpoint unless one is queued already; does not
    /// wait for it.
    pub fn checkpoint(&self) {
        if self.checkpoint_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let queued = Arc::clone(&self.checkpoint_queued);
        let job: Job = Box::new(move |connection| {
            queued.store(false, Ordering::Release);
            let done = match connection {
                Ok(c) => c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(|e| e.to_string()),
                Err(why) => Err(why.to_owned()),
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own checkpoint remains");
            }
        });
        let _ = self.jobs.send(job);
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    // Read-write: a checkpoint writes pages back to the database file.
    // Upkeep's own jobs only read rows.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|e| upkeep_error(e.to_string()))?;
    connection.busy_timeout(BUSY).map_err(|e| upkeep_error(e.to_string()))?;
    Ok(connection)
}

fn upkeep_error(why: String) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("upkeep: {why}")))
}
