//! The audit writer with a real SQLite file: what it keeps up to date
//! behind the acknowledgements, and token changes committed with their
//! records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::time::{Duration, Instant};

use warrant_service::audit::{AuditLog, DecisionAudit, Event, Kind};
use warrant_service::keys::AuditKeys;
use warrant_service::store::{AuditFilter, Store, TokenUpdate};
use warrant_service::tokens::{Applied, TokenChange, TokenConflict, TokenEventKind, TokenState, apply};

const KEY: &str = "k1 5f2c9a01b7e34d6f8a1c2e3b4d5f60718293a4b5c6d7e8f90123456789abcdef";

/// Once a partition of the log is complete, the writer's indexer builds its
/// lookup postings without anyone asking; lookups answer the same before
/// and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_indexes_complete_partitions_behind_itself() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = Store::open(&url).await.unwrap();
    let log = AuditLog::open(store.clone(), AuditKeys::parse(KEY).unwrap(), DecisionAudit::All).await.unwrap();
    let event = |i: usize| {
        let mut e = Event::new(Kind::TokenUsed, format!("user{}", i % 13));
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

/// Token changes travel through the writer beside plain records: each job's
/// record is made from its outcomes and shares the group commit; a refused
/// change records nothing; a job that changes a token but gives no record
/// stores nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_changes_commit_with_their_records_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("audit.db").display())).await.unwrap();
    let log = AuditLog::open(store.clone(), AuditKeys::parse(KEY).unwrap(), DecisionAudit::All).await.unwrap();
    let change = |id: &str, kind| TokenChange {
        kind,
        token_id: id.into(),
        owner: "ann".into(),
        connection: "snow".into(),
        role: None,
        expires_at: Some("2030-01-01T00:00:00.000Z".parse().unwrap()),
        issued_at: None,
    };
    let update = move |id: &str, kind| {
        let c = change(id, kind);
        TokenUpdate::new(id, move |b: Option<&TokenState>| apply(b, &c, "2026-01-01T00:00:00.000Z".parse().unwrap()))
    };
    let record =
        |kind: Kind| move |outcomes: &[Applied]| outcomes.first()?.as_ref().ok().map(|_| Event::new(kind, "ann"));

    // Many at once, token jobs and plain records interleaved: one gap-free chain.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let seq = if i % 2 == 0 {
                let done =
                    log.apply_tokens(vec![update(&format!("t{i}"), TokenEventKind::Issued)], record(Kind::TokenIssued));
                done.await.unwrap().appended.unwrap().seq
            } else {
                log.append(Event::new(Kind::Decision, "bob")).await.unwrap().seq
            };
            assert!(log.size() >= seq, "acknowledged {seq} before its Merkle leaf ({} leaves)", log.size());
            seq
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=64).collect::<Vec<u64>>());
    // Plain records alone take the one-statement path: same promise.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let seq = log.append(Event::new(Kind::Decision, "bob")).await.unwrap().seq;
            assert!(log.size() >= seq, "acknowledged {seq} before its Merkle leaf ({} leaves)", log.size());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.token("t0").await.unwrap().unwrap().status, "active");

    // A refused change: the outcome says why, nothing is recorded.
    log.apply_tokens(vec![update("t0", TokenEventKind::Revoked)], record(Kind::TokenRevoked)).await.unwrap();
    let refused =
        log.apply_tokens(vec![update("t0", TokenEventKind::Refreshed)], record(Kind::TokenRefreshed)).await.unwrap();
    assert_eq!(refused.outcomes, vec![Err(TokenConflict::RefreshRevoked("t0".into()))]);
    assert!(refused.appended.is_none());
    assert_eq!(store.audit_count().await.unwrap(), 129);

    // A change without its record is refused whole.
    let unrecorded = log.apply_tokens(vec![update("t2", TokenEventKind::Revoked)], |_| None).await;
    assert!(unrecorded.is_err(), "{unrecorded:?}");
    assert_eq!(store.token("t2").await.unwrap().unwrap().status, "active", "the change was not stored");
    assert_eq!(store.audit_count().await.unwrap(), 129);
    // The writer goes on.
    assert_eq!(log.append(Event::new(Kind::Decision, "bob")).await.unwrap().seq, 130);
}
