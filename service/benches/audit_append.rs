//! Durable audit append and offline verify, in process, on a real SQLite file.
//!
//! `cargo bench -p warrant-service --bench audit_append -- [--writers 64] [--events 200000] [--keep DIR] [--mix]`
//!
//! Append: `--writers` tokio tasks (on the service's runtime shape: a
//! multi-thread runtime, one worker per core) each append `token.issued`
//! events through [`AuditLog`] until `--events` have been acknowledged. An
//! acknowledgement means the record is committed and fsynced (WAL,
//! `synchronous=FULL`). Reports events/s and the p50/p99 acknowledgement
//! latency.
//!
//! Lookup: how long the lookup postings (built behind the log, see
//! `src/store/lookup.rs`) take to catch up once the appends end, and the
//! latency of a lookup by token.
//!
//! Verify: then runs the real CLI, `warrant audit verify`, on that database
//! (process start, open, read, verify every MAC, checkpoints) and reports
//! records/s.
//!
//! Output (one line each, for the suite runner):
//!
//! ```text
//! audit-append backend=sqlite writers=64 events=200000 seconds=3.10 events_per_s=64516 p50_ms=0.95 p99_ms=2.40
//! audit-lookup backend=sqlite indexed=196608 catch_up_ms=3.1 token_query_p50_ms=1.20 token_query_p99_ms=2.00
//! audit-verify backend=sqlite records=200000 seconds=0.18 records_per_s=1111111 cli=ok
//! ```

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark setup fails loudly"
)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use warrant_service::audit::{AuditLog, DecisionAudit, Event, Kind};
use warrant_service::keys::AuditKeys;
use warrant_service::store::{AuditFilter, Store};

/// As in the `warrant` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "bench 5f2c9a01b7e34d6f8a1c2e3b4d5f60718293a4b5c6d7e8f90123456789abcdef";

struct Args {
    writers: usize,
    events: u64,
    keep: Option<PathBuf>,
    /// Write the mix an auditor searches (decisions and token events of
    /// many actors, connections and projects) instead of `token.issued` only.
    mix: bool,
}

fn args() -> Args {
    let mut parsed = Args { writers: 64, events: 200_000, keep: None, mix: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--writers" => parsed.writers = it.next().and_then(|v| v.parse().ok()).expect("--writers N"),
            "--events" => parsed.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--keep" => parsed.keep = Some(it.next().map(PathBuf::from).expect("--keep DIR")),
            "--mix" => parsed.mix = true,
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {}
        }
    }
    parsed
}

/// A token event as `POST /v1/tokens/events` records it.
fn event(n: u64) -> Event {
    let mut e = Event::new(Kind::TokenIssued, format!("u{}", n % 1000));
    e.token_id = Some(format!("t{n}"));
    e.token_owner = Some(format!("u{}", n % 1000));
    e.connection = Some("snow".into());
    e.details = json!({
        "status": "active",
        "role": "ANALYST",
        "expires_at": "2030-01-01T00:00:00.000Z",
        "issued_at": "2026-11-22T10:00:00.000Z",
    })
    .as_object()
    .cloned()
    .unwrap();
    e
}

/// A record of the searched mix: every 4th a decision (a third of them
/// denied, for one of three reasons), the rest token events (`t{n}`, one
/// record each) over 1,000 users, 8 connections and 50 projects.
fn mixed(n: u64) -> Event {
    let user = format!("u{}", n % 1000);
    let connection = format!("c{}", n % 8);
    let project = format!("p{}", n % 50);
    if n.is_multiple_of(4) {
        let mut e = Event::new(Kind::Decision, format!("User::{user}"));
        let allowed = !n.is_multiple_of(3);
        e.decision = Some(allowed);
        e.reasons = Some(if allowed {
            Vec::new()
        } else {
            vec![["no_permit", "not_member", "token_expired"][(n / 3 % 3) as usize].to_owned()]
        });
        e.project = Some(project);
        e.policy_digest = Some("sha256:0000000000000000000000000000000000000000000000000000000000000000".into());
        e.details =
            json!({"decision_id": format!("d{n}"), "action": "run_query", "resource": format!("Project::p{}", n % 50)})
                .as_object()
                .cloned()
                .unwrap();
        return e;
    }
    let mut e = event(n);
    e.kind = [Kind::TokenIssued, Kind::TokenUsed, Kind::TokenRefreshed][(n % 4 - 1) as usize];
    e.actor = user;
    e.connection = Some(connection);
    e.project = Some(project);
    e
}

/// How long the lookup postings took to catch up once the appends ended,
/// and what a lookup by token costs then (records after the last complete
/// partition are scanned).
async fn lookups(store: &Store, keys: &AuditKeys, events: u64, mix: bool) -> String {
    let started = Instant::now();
    let indexed = store.audit_index().await.unwrap();
    let catch_up = started.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::new();
    for i in 0..200u64 {
        let mut n = (i * 7919) % events;
        if mix && n.is_multiple_of(4) {
            n = (n + 1) % events; // a decision has no token
        }
        let filter =
            AuditFilter { token_id: Some(keys.digest(&format!("t{n}"))), limit: 100, ..AuditFilter::default() };
        let started = Instant::now();
        let found = store.audit_query(&filter).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(found.len(), 1, "token t{n} is in one record");
    }
    times.sort_unstable();
    format!(
        "audit-lookup backend=sqlite indexed={indexed} catch_up_ms={catch_up:.1} token_query_p50_ms={:.2} token_query_p99_ms={:.2}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let args = args();
    let temp = tempfile::tempdir().unwrap();
    let dir = args.keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("audit-bench.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = format!("sqlite://{}", db.display());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (elapsed, mut latencies, lookup) = runtime.block_on(async {
        let keys = AuditKeys::parse(KEY).unwrap();
        let store = Store::open(&url).await.unwrap();
        let log = AuditLog::open(store.clone(), keys.clone(), DecisionAudit::All).await.unwrap();
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.writers)
            .map(|_| {
                let log = log.clone();
                let next = Arc::clone(&next);
                let total = args.events;
                let mix = args.mix;
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            break;
                        }
                        let sent = Instant::now();
                        log.append(if mix { mixed(n) } else { event(n) }).await.expect("append");
                        latencies.push(sent.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        (elapsed, latencies, lookups(&store, &keys, args.events, args.mix).await)
    });
    drop(runtime);
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    // `writeln!`, not `println!`: a closed pipe (`| head`) is not a failure.
    let mut console = std::io::stdout();
    let _ = writeln!(
        console,
        "audit-append backend=sqlite writers={} events={} seconds={secs:.2} events_per_s={:.0} p50_ms={:.2} p99_ms={:.2}",
        args.writers,
        latencies.len(),
        latencies.len() as f64 / secs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    let _ = writeln!(console, "{lookup}");

    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args(["audit", "verify", "--database-url", &url])
        .env("WARRANT_AUDIT_KEY", KEY)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok = out.status.success() && stdout.starts_with("ok:");
    let _ = writeln!(
        console,
        "audit-verify backend=sqlite records={} seconds={secs:.2} records_per_s={:.0} cli={}",
        latencies.len(),
        latencies.len() as f64 / secs,
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    }
}
