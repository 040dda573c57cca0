//! The audit writer with a real SQLite file: what it keeps up to date
//! behind the acknowledgements.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::time::{Duration, Instant};

use warrant_service::audit::{AuditLog, DecisionAudit, Event};
use warrant_service::keys::Keyring;
use warrant_service::store::{AuditFilter, Store};

const KEY: &str = "k1 5f2c9a01b7e34d6f8a1c2e3b4d5f60718293a4b5c6d7e8f90123456789abcdef";

/// Once a partition of the log is complete, the writer's indexer builds its
/// lookup postings without anyone asking; lookups answer the same before
/// and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_indexes_complete_partitions_behind_itself() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = Store::open(&url).await.unwrap();
    let log = AuditLog::open(store.clone(), Keyring::parse(KEY).unwrap(), DecisionAudit::All).await.unwrap();
    let event = |i: usize| {
        let mut e = Event::new("token.used", format!("user{}", i % 13));
        e.token_id = Some(format!("t{}", i % 101));
        e.connection = Some("snow".into());
        e
    };
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let indexed = || {
        let raw = raw.clone();
        async move {
            let upto: i64 =
                sqlx::query_scalar("SELECT indexed_upto FROM audit_lookup_state").fetch_one(&raw).await.unwrap();
            upto
        }
    };
    let by_actor = AuditFilter { actor: Some("user5".into()), limit: 10_000, ..AuditFilter::default() };
    let seqs = |records: Vec<warrant_engine::audit::Record>| records.iter().map(|r| r.seq).collect::<Vec<_>>();

    for chunk in (0..4000).collect::<Vec<_>>().chunks(500) {
        for appended in log.append_all(chunk.iter().map(|i| event(*i)).collect()).await {
            appended.unwrap();
        }
    }
    assert_eq!(indexed().await, 0, "no partition is complete yet");
    let before = seqs(store.audit_query(&by_actor).await.unwrap());

    for appended in log.append_all((4000..4200).map(event).collect()).await {
        appended.unwrap();
    }
    let started = Instant::now();
    while indexed().await != 4096 {
        assert!(started.elapsed() < Duration::from_secs(20), "the first partition was not indexed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = seqs(store.audit_query(&by_actor).await.unwrap());
    let expected: Vec<u64> = (0..4200u64).filter(|i| i % 13 == 5).map(|i| i + 1).collect();
    assert_eq!(after, expected);
    assert_eq!(before, expected.iter().copied().filter(|s| *s <= 4000).collect::<Vec<_>>());
}
