//! One store test suite, run against every backend: SQLite (a temp file)
//! and PostgreSQL (a fresh database on `WARRANT_TEST_POSTGRES_URL`, which
//! `tests/run` provides; under CI its absence fails the suite).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;

use serde_json::json;
use warrant_engine::Timestamp;
use warrant_engine::audit::overview::{Bucket, Overview};
use warrant_engine::audit::{
    BreakReason, ChainStart, ChainVerifier, Checkpoint, Entry, Keyring, Outcome, Prepared, Record, SealError, TileId,
    merkle, verify_chain,
};
use warrant_service::scope::Scope;
use warrant_service::store::api_keys::StoredKey;
use warrant_service::store::grant_flows::GrantFlow;
use warrant_service::store::webhooks::Cursor;
use warrant_service::store::{
    AuditFilter, BundleOrigin, Grant, GrantStatus, GrantWrite, Sealed, Store, StoreError, StoredBundle, TokenUpdate,
};
use warrant_service::tokens::{TokenChange, TokenConflict, TokenEventKind, TokenState, TokenStatus, apply};

/// An instant written as the cases write it.
fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The n-th minute of 2026-06-01: distinct arrival times.
fn n(minute: u32) -> Timestamp {
    at(&format!("2026-06-01T00:{minute:02}:00Z"))
}

/// A fresh token for the counting batches (`role` holds the count).
fn fresh(id: &str) -> TokenState {
    TokenState {
        token_id: id.into(),
        owner: "ann".into(),
        connection: "snow".into(),
        status: TokenStatus::Active,
        role: "0".into(),
        expires_at: at("2030-01-01T00:00:00.000Z"),
        updated_at: n(0),
        issued_at: None,
    }
}

// One test per concern, each on both backends, each on a fresh database.
on_both_backends!(
    entities_are_replaced_as_a_set,
    the_newest_bundle_activation_wins,
    a_token_changes_in_one_read_modify_write,
    a_token_batch_applies_in_order,
    concurrent_token_batches_lose_no_update,
    audit_records_are_gap_free_verifiable_and_queryable,
    checkpoints_are_kept_once_per_size,
    token_changes_commit_with_their_records,
    api_keys_are_stored_and_revoked,
    webhook_state_is_kept,
    grant_flows_are_bounded_per_owner_and_taken_once,
    grants_change_only_from_the_version_they_were_read_at,
    the_overview_counts_a_window,
);

/// Defines, for each case, `sqlite::<case>` and `postgres::<case>` tests
/// running it on a fresh database of that backend.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(store) = super::postgres_store(stringify!($case)).await else { return };
                    super::$case(store).await;
                }
            )*
        }
    };
}
use on_both_backends;

/// A store on a fresh SQLite file (kept while the directory lives).
async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

/// A store on a fresh PostgreSQL database on `WARRANT_TEST_POSTGRES_URL`;
/// `None` (the case skips) without one, which CI refuses.
async fn postgres_store(case: &str) -> Option<Store> {
    Some(Store::open(&postgres_database(case)?).await.unwrap())
}

/// The URL of a fresh PostgreSQL database, as [`postgres_store`] makes it.
fn postgres_database(case: &str) -> Option<String> {
    let Ok(admin) = std::env::var("WARRANT_TEST_POSTGRES_URL") else {
        assert!(std::env::var_os("CI").is_none(), "WARRANT_TEST_POSTGRES_URL is not set: run the suite with tests/run");
        eprintln!("skipping: WARRANT_TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("warrant_store_{}_{case}", std::process::id());
    let out = std::process::Command::new("psql")
        .arg(&admin)
        .args(["-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// A token change of `kind` to `t1`, owned by ann, as the cases send it.
fn change(kind: TokenEventKind) -> TokenChange {
    TokenChange {
        kind,
        token_id: "t1".into(),
        owner: "ann".into(),
        connection: "snow".into(),
        role: Some("ANALYST".into()),
        expires_at: Some(at("2030-01-01T00:00:00.000Z")),
        issued_at: Some(at("2026-01-01T00:00:00.000Z")),
    }
}

fn of(id: &str, kind: TokenEventKind, owner: &str) -> TokenChange {
    TokenChange { token_id: id.into(), owner: owner.into(), ..change(kind) }
}

fn keys() -> Keyring {
    Keyring::new("k1", &[7u8; 32]).unwrap()
}

/// `n` entries of `kind` by `actor0…`, alternating projects `p0`/`p1`.
fn entries(n: usize, kind: &str) -> Vec<Prepared> {
    (0..n)
        .map(|i| {
            let mut e = Entry::new(0, "", kind, format!("actor{i}"));
            e.project = Some(format!("p{}", i % 2));
            Prepared::new(e).unwrap()
        })
        .collect()
}

type Appended = Vec<Result<Sealed, SealError>>;

/// Five records: three decisions on day 1, two token uses on day 2.
async fn five_records(store: &Store) -> (Appended, Appended) {
    let keys = keys();
    let first = store.append_audit(entries(3, "decision"), &keys, at("2026-01-01T00:00:00Z")).await.unwrap();
    let second = store.append_audit(entries(2, "token.used"), &keys, at("2026-01-02T00:00:00Z")).await.unwrap();
    (first, second)
}

async fn entities_are_replaced_as_a_set(store: Store) {
    // Entities: replaced as a set; the version moves.
    let v0 = store.versions().await.unwrap();
    let docs = vec![
        json!({"uid": {"type": "A::U", "id": "b"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "A::U", "id": "a"}, "attrs": {"x": 1}, "parents": []}),
    ];
    let v1 = store.replace_entities(&docs).await.unwrap();
    assert!(v1 > v0.entities);
    let back = store.entities().await.unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0]["uid"]["id"], "a", "ordered by type and id");
    assert_eq!(store.replace_entities(&docs[..1]).await.unwrap(), v1 + 1);
    assert_eq!(store.entities().await.unwrap().len(), 1);
    assert_eq!(store.versions().await.unwrap().entities, v1 + 1);
}

async fn the_newest_bundle_activation_wins(store: Store) {
    // Bundles: the newest activation wins; ids increase.
    assert!(store.active_bundle().await.unwrap().is_none());
    let bundle = |digest: &str, origin| StoredBundle {
        id: 0,
        digest: digest.into(),
        files: BTreeMap::from([("p.cedar".to_owned(), "// x".to_owned())]),
        origin,
        activated_at: at("2026-01-01T00:00:00Z"),
    };
    let id1 = store.record_bundle(&bundle("sha256:1", BundleOrigin::Disk)).await.unwrap();
    let id2 = store.record_bundle(&bundle("sha256:2", BundleOrigin::Api)).await.unwrap();
    assert!(id2 > id1);
    let active = store.active_bundle().await.unwrap().unwrap();
    assert_eq!((active.id, active.digest.as_str(), active.origin), (id2, "sha256:2", BundleOrigin::Api));
    assert_eq!(active.files["p.cedar"], "// x");
    assert_eq!(store.versions().await.unwrap().bundle, id2);
}

async fn a_token_changes_in_one_read_modify_write(store: Store) {
    // Tokens: read-modify-write in one transaction; conflicts change nothing.
    let issued = store.update_token("t1", |b| apply(b, &change(TokenEventKind::Issued), n(1))).await.unwrap().unwrap();
    assert_eq!(issued.unwrap().status, "active");
    let stored = store.token("t1").await.unwrap().unwrap();
    assert_eq!(stored.issued_at, Some(at("2026-01-01T00:00:00.000Z")), "the issue time is stored");
    store.update_token("t1", |b| apply(b, &change(TokenEventKind::Revoked), n(2))).await.unwrap().unwrap();
    let refused = store.update_token("t1", |b| apply(b, &change(TokenEventKind::Refreshed), n(3))).await.unwrap();
    assert_eq!(refused, Err(TokenConflict::RefreshRevoked("t1".into())));
    assert_eq!(store.token("t1").await.unwrap().unwrap().status, "revoked");
    assert_eq!(store.tokens_of("ann", "snow").await.unwrap().len(), 1);
    assert!(store.tokens_of("ann", "other").await.unwrap().is_empty());
    assert_eq!(store.tokens_of_owner("ann").await.unwrap().len(), 1);
    let owned = store.tokens_of_owner("ann").await.unwrap();
    assert_eq!(owned[0].issued_at, Some(at("2026-01-01T00:00:00.000Z")), "a revoke keeps the issue time");
}

async fn a_token_batch_applies_in_order(store: Store) {
    // t1 as the read-modify-write case leaves it: issued to ann, then revoked.
    store.update_token("t1", |b| apply(b, &change(TokenEventKind::Issued), n(1))).await.unwrap().unwrap();
    store.update_token("t1", |b| apply(b, &change(TokenEventKind::Revoked), n(2))).await.unwrap().unwrap();
    // Batches: changes apply in order, each seeing the ones before it; a
    // refused change or one that changes nothing leaves the token as it was.
    let batch = [
        of("t2", TokenEventKind::Issued, "ann"),
        of("t2", TokenEventKind::Revoked, "ann"),
        of("t2", TokenEventKind::Refreshed, "ann"),
        of("t3", TokenEventKind::Issued, "ann"),
        of("t3", TokenEventKind::Used, "ann"),
        of("t1", TokenEventKind::Issued, "bob"),
    ];
    let updates = batch
        .iter()
        .map(|c| TokenUpdate::new(c.token_id.clone(), move |b: Option<&TokenState>| apply(b, c, n(4))))
        .collect();
    let outcomes = store.update_tokens(updates).await.unwrap();
    let statuses: Vec<Result<Option<&str>, &TokenConflict>> =
        outcomes.iter().map(|o| o.as_ref().map(|t| t.as_ref().map(|t| t.status.as_str()))).collect();
    assert_eq!(
        &statuses[..5],
        &[
            Ok(Some("active")),
            Ok(Some("revoked")),
            Err(&TokenConflict::RefreshRevoked("t2".into())),
            Ok(Some("active")),
            Ok(None)
        ]
    );
    assert!(matches!(statuses[5], Err(TokenConflict::Mismatch { .. })), "{:?}", statuses[5]);
    assert_eq!(store.token("t2").await.unwrap().unwrap().status, "revoked", "the batch's last word on t2");
    assert_eq!(store.token("t3").await.unwrap().unwrap().status, "active");
    let t1 = store.token("t1").await.unwrap().unwrap();
    assert_eq!((t1.owner.as_str(), t1.status.as_str()), ("ann", "revoked"), "a refused change writes nothing");
    assert!(store.update_tokens::<TokenConflict>(Vec::new()).await.unwrap().is_empty());
}

async fn concurrent_token_batches_lose_no_update(store: Store) {
    // Concurrent batches over the same tokens, named in different orders,
    // lose no update (each change counts one up in `role`) and never wait
    // on each other in a cycle.
    let count = |id: &'static str| {
        TokenUpdate::new(id, move |b: Option<&TokenState>| {
            let mut t = b.cloned().unwrap_or_else(|| fresh(id));
            t.role = (t.role.parse::<u32>().unwrap_or(0) + 1).to_string();
            Ok::<_, TokenConflict>(Some(t))
        })
    };
    let names = ["c1", "c2", "c3", "c4"];
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    let mut order: Vec<&str> = names.to_vec();
                    order.rotate_left((task + round) % names.len());
                    if task % 2 == 1 {
                        order.reverse();
                    }
                    let outcomes = store.update_tokens(order.into_iter().map(count).collect()).await.unwrap();
                    assert!(outcomes.iter().all(Result::is_ok));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for id in names {
        assert_eq!(store.token(id).await.unwrap().unwrap().role, "80", "token {id}: 8 tasks x 10 batches");
    }
}

async fn audit_records_are_gap_free_verifiable_and_queryable(store: Store) {
    // Audit: sealed after the stored head, gap-free, verifiable, queryable.
    let keys = keys();
    let (first, second) = five_records(&store).await;
    let seqs: Vec<u64> = first.iter().chain(&second).map(|r| r.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let (head_seq, head_mac) = store.audit_head().await.unwrap().unwrap();
    assert_eq!((head_seq, head_mac.as_str()), (5, second[1].as_ref().unwrap().mac.as_str()));
    let all = store.audit_range(1, 5, 100).await.unwrap();
    verify_chain(&all, &keys, &ChainStart::genesis()).unwrap();
    // The stored-text verifier reads the same rows (canonical text from a
    // fresh database's first record on) and collects the same leaves.
    assert_eq!(store.audit_canonical_since().await.unwrap(), 1);
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(1);
    let mut leaves = Vec::new();
    let read = store.audit_verify_range((2, 5, 2), &mut verifier, Some(&mut leaves)).await.unwrap();
    assert_eq!(read.unwrap_err().seq, 1, "a range must start where the verifier expects");
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(1);
    assert_eq!(store.audit_verify_range((1, 5, 3), &mut verifier, Some(&mut leaves)).await.unwrap(), Ok(3));
    assert_eq!(store.audit_verify_range((4, 5, 3), &mut verifier, Some(&mut leaves)).await.unwrap(), Ok(2));
    assert_eq!(leaves, all.iter().map(|r| r.leaf_hash().unwrap()).collect::<Vec<_>>());
    assert_eq!(verifier.finish().count, 5);
    assert_eq!(store.audit_range(2, 3, 100).await.unwrap().len(), 2);
    assert_eq!(store.audit_count().await.unwrap(), 5);
    assert_eq!(
        store.audit_leaves_after(0, u32::MAX).await.unwrap(),
        all.iter().map(|r| r.leaf_hash().unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(store.audit_macs_after(3, 100).await.unwrap().len(), 2);
    let page: Vec<u64> = store.audit_macs_after(1, 2).await.unwrap().iter().map(|(seq, _)| *seq).collect();
    assert_eq!(page, vec![2, 3], "a page stops at its limit");
    let filter =
        AuditFilter { kind: Some("decision".into()), project: Some("p0".into()), limit: 10, ..AuditFilter::default() };
    let found = store.audit_query(&filter).await.unwrap();
    assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 3]);
    let page = store.audit_query(&AuditFilter { after_seq: 3, limit: 10, ..AuditFilter::default() }).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4, 5]);
    let since = store
        .audit_query(&AuditFilter { since: Some(at("2026-01-02T00:00:00Z")), limit: 10, ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
}

async fn the_overview_counts_a_window(store: Store) {
    // Decisions and token events over two hours, and one outside the window.
    let keys = keys();
    let decision = |outcome: Outcome, reasons: &[&str], details: serde_json::Value| {
        let mut e = Entry::new(0, "", "decision", "User::ann");
        e.decision = Some(outcome);
        e.reasons = Some(reasons.iter().map(|r| (*r).to_owned()).collect());
        e.details = details.as_object().cloned().unwrap();
        Prepared::new(e).unwrap()
    };
    let token = |kind: &str, connection: &str| {
        let mut e = Entry::new(0, "", kind, "ann");
        e.connection = Some(connection.into());
        Prepared::new(e).unwrap()
    };
    let failed = json!({"rules": [{"rule": "quota", "mode": "enforce", "verdict": "error", "reason": "timeout"}]});
    let batches = [
        ("2026-03-01T08:59:59.999Z", vec![decision(Outcome::Deny, &["no_permit"], json!({}))]),
        (
            "2026-03-01T09:10:00Z",
            vec![
                decision(Outcome::Allow, &[], json!({})),
                decision(Outcome::Deny, &["no_permit", "not_member"], json!({})),
                token("token.used", "snow"),
            ],
        ),
        (
            "2026-03-01T10:20:00Z",
            vec![
                decision(Outcome::Deny, &["rule_error:quota"], failed.clone()),
                token("token.used", "snow"),
                token("token.revoked", "bq"),
            ],
        ),
    ];
    for (ts, batch) in batches {
        store.append_audit(batch, &keys, at(ts)).await.unwrap();
    }
    let (since, until) = (at("2026-03-01T09:00:00Z"), at("2026-03-01T11:00:00Z"));
    let groups = store.audit_overview(&since, &until, Bucket::Hour).await.unwrap();
    let mut o = Overview::fold(Bucket::Hour, groups);
    assert_eq!((o.records, o.allowed, o.denied), (6, 1, 2), "the record before `since` is out");
    let bars: Vec<(&str, u64, u64)> = o.decisions.iter().map(|d| (d.start.as_str(), d.allow, d.deny)).collect();
    assert_eq!(bars, vec![("2026-03-01T09:00:00Z", 1, 1), ("2026-03-01T10:00:00Z", 0, 1)]);
    let reasons: Vec<(&str, u64)> = o.deny_reasons.iter().map(|c| (c.name.as_str(), c.count)).collect();
    assert_eq!(reasons, vec![("no_permit", 1), ("not_member", 1), ("rule_error:quota", 1)]);
    let per_connection: Vec<(Option<&str>, u64)> =
        o.token_events.iter().map(|c| (c.connection.as_deref(), c.total)).collect();
    assert_eq!(per_connection, vec![(Some("snow"), 2), (Some("bq"), 1)]);
    assert_eq!(o.decisions_with_rule_failures, 1);
    let details = store.audit_rule_failures(&since, &until, 10).await.unwrap();
    assert_eq!(details.len(), 1);
    o.add_rule_failures(details.iter().map(String::as_str), false);
    assert_eq!((o.rule_failures[0].rule.as_str(), o.rule_failures[0].reason.as_str()), ("quota", "timeout"));
    // Minute buckets name the minute.
    let o = Overview::fold(Bucket::Minute, store.audit_overview(&since, &until, Bucket::Minute).await.unwrap());
    assert_eq!(o.decisions[0].start, "2026-03-01T09:10:00Z");
}

async fn checkpoints_are_kept_once_per_size(store: Store) {
    let keys = keys();
    five_records(&store).await;
    let all = store.audit_range(1, 5, 100).await.unwrap();
    // Checkpoints: kept once per size.
    let leaves: Vec<_> = all.iter().map(|r| r.leaf_hash().unwrap()).collect();
    let c = Checkpoint::sign(5, &merkle::root(&leaves), "2026-01-03T00:00:00Z", &keys).unwrap();
    store.save_checkpoint(&c).await.unwrap();
    store.save_checkpoint(&c).await.unwrap();
    assert_eq!(store.checkpoints().await.unwrap(), vec![c]);
}

async fn token_changes_commit_with_their_records(store: Store) {
    let keys = keys();
    five_records(&store).await;
    store.update_token("t3", |b| apply(b, &of("t3", TokenEventKind::Issued, "ann"), n(4))).await.unwrap().unwrap();
    // Token changes with their records, in one transaction: the records are
    // made from the outcomes and seal after the head. A record that cannot
    // be made, or cannot be sealed, stores neither it nor the change.
    let revoke =
        || TokenUpdate::new("t3", |b: Option<&TokenState>| apply(b, &of("t3", TokenEventKind::Revoked, "ann"), n(5)));
    let unmade = store
        .update_tokens_and_append(
            None,
            vec![revoke()],
            |outcomes| {
                assert_eq!(outcomes[0].as_ref().unwrap().as_ref().unwrap().status, "revoked", "seen before commit");
                Ok((vec![Prepared::new(Entry::new(0, "", "", "actor"))?], ()))
            },
            &keys,
            at("2026-01-04T00:00:00Z"),
        )
        .await;
    assert!(matches!(unmade, Err(StoreError::Seal(_))), "{unmade:?}");
    assert_eq!(store.token("t3").await.unwrap().unwrap().status, "active", "no change without its record");
    assert_eq!(store.audit_count().await.unwrap(), 5, "and no record");
    let (status, sealed) = store
        .update_tokens_and_append(
            None,
            vec![revoke()],
            |outcomes| {
                let status = outcomes[0].as_ref().unwrap().as_ref().unwrap().status;
                Ok((entries(1, "token.revoked"), status))
            },
            &keys,
            at("2026-01-04T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(status, "revoked");
    assert_eq!(sealed.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![6]);
    assert_eq!(store.token("t3").await.unwrap().unwrap().status, "revoked");
    let next = store.append_audit(entries(1, "decision"), &keys, at("2026-01-05T00:00:00Z")).await.unwrap();
    assert_eq!(next[0].as_ref().unwrap().seq, 7, "a plain append follows the head the transaction left");
    verify_chain(store.audit_range(1, 7, 100).await.unwrap(), &keys, &ChainStart::genesis()).unwrap();
    let (none, sealed) = store
        .update_tokens_and_append::<TokenConflict, _, _>(
            None,
            Vec::new(),
            |o| Ok((Vec::new(), o.len())),
            &keys,
            at("2026-01-05T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!((none, sealed.len()), (0, 0), "nothing to change and nothing to record is fine");
}

async fn api_keys_are_stored_and_revoked(store: Store) {
    // API keys.
    let key = StoredKey {
        id: "0123456789abcdef".into(),
        secret_hash: "h".into(),
        scopes: vec![Scope::Decide],
        description: "d".into(),
        created_at: at("2026-01-01T00:00:00Z"),
        expires_at: at("2026-04-01T00:00:00Z"),
        revoked_at: None,
    };
    store.insert_api_key(&key).await.unwrap();
    assert_eq!(store.api_key(&key.id).await.unwrap().unwrap(), key);
    assert!(store.revoke_api_key(&key.id, at("2026-02-01T00:00:00Z")).await.unwrap());
    assert!(!store.revoke_api_key(&key.id, at("2026-02-01T00:00:00Z")).await.unwrap(), "revoking twice is a no-op");
    assert_eq!(store.api_keys().await.unwrap()[0].revoked_at, Some(at("2026-02-01T00:00:00Z")));
}

async fn webhook_state_is_kept(store: Store) {
    // Webhook state.
    assert!(
        store
            .webhook_seen("okta", "msg_1", at("2026-01-01T00:00:00Z"), Some(at("2026-01-02T00:00:00Z")))
            .await
            .unwrap()
    );
    assert!(!store.webhook_seen("okta", "msg_1", at("2026-01-01T00:01:00Z"), None).await.unwrap(), "a replay");
    assert!(store.webhook_seen("other", "msg_1", at("2026-01-01T00:01:00Z"), None).await.unwrap());
    store.webhook_forget("okta", "msg_1").await.unwrap();
    assert!(store.webhook_seen("okta", "msg_1", at("2026-01-01T00:02:00Z"), None).await.unwrap());
    assert!(store.webhook_cursor("siem").await.unwrap().is_none());
    let cursor = Cursor { delivered_seq: 4, attempts: 2, next_attempt_at: Some(at("2026-01-01T00:00:05Z")) };
    store.save_webhook_cursor("siem", &cursor).await.unwrap();
    assert_eq!(store.webhook_cursor("siem").await.unwrap(), Some(cursor));
    store.ping().await.unwrap();
}

#[tokio::test]
async fn only_an_existing_database_opens_existing() {
    let (_, dir) = sqlite_store().await;
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    // An existing database opens without creating; a missing one is an error.
    assert!(Store::open_existing(&url).await.is_ok());
    assert!(Store::open_existing(&format!("sqlite://{}", dir.path().join("none.db").display())).await.is_err());
}

/// Rows stored before details were stored as canonical text verify when
/// their text parses to the content the MAC covers, but only before the
/// mark the migration set; from it on, a rewrite is reported.
#[tokio::test]
async fn sqlite_accepts_non_canonical_text_only_before_the_canonical_mark() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let entries = (0..4)
        .map(|i| {
            let mut e = Entry::new(0, "", "token.issued", format!("actor{i}"));
            e.details = json!({"status": "active", "ratio": 1.5, "n": i}).as_object().unwrap().clone();
            e.reasons = Some(vec!["r\"1".into(), "r2".into()]);
            Prepared::new(e).unwrap()
        })
        .collect();
    store.append_audit(entries, &keys, at("2026-11-22T00:00:00Z")).await.unwrap();
    // As an older writer stored them: insertion order, spaces.
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(concat!(
        "DROP TRIGGER audit_records_no_update; ",
        r#"UPDATE audit_records SET details = '{"status": "active", "ratio": 1.5, "n": ' || (seq - 1) || '}', "#,
        r#"reasons = '["r\"1", "r2"]' WHERE seq <= 2"#
    ))
    .execute(&raw)
    .await
    .unwrap();
    let verdict = |since: u64| {
        let store = store.clone();
        let keys = keys.clone();
        async move {
            let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(since);
            store.audit_verify_range((1, 4, 100), &mut verifier, None).await.unwrap().map_err(|b| (b.seq, b.reason))
        }
    };
    let mark = |seq: i64| {
        let raw = raw.clone();
        async move {
            sqlx::query("UPDATE audit_canonical_since SET seq = ?").bind(seq).execute(&raw).await.unwrap();
        }
    };
    assert_eq!(verdict(store.audit_canonical_since().await.unwrap()).await, Err((1, BreakReason::NotCanonical)));
    mark(3).await;
    assert_eq!(store.audit_canonical_since().await.unwrap(), 3);
    assert_eq!(verdict(3).await, Ok(4), "rows 1 and 2 predate the mark");
    mark(2).await;
    assert_eq!(verdict(2).await, Err((2, BreakReason::NotCanonical)));
    // A change of content is a mismatch whatever the mark.
    sqlx::query(r#"UPDATE audit_records SET details = '{"status": "revoked", "ratio": 1.5, "n": 0}' WHERE seq = 1"#)
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(verdict(3).await, Err((1, BreakReason::MacMismatch)));
}

/// The SQLite verifier reads records in parallel runs: separators, NUL and
/// multi-byte text inside fields, absent optionals and more records than
/// one run must all come back exactly.
#[tokio::test]
async fn sqlite_verifies_awkward_text_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let awkward = ["a;b,c", "\u{0}nul\u{0}", "é😀\u{2028}", ";", ",", "-1", "x\"y\\z\n"];
    let entries: Vec<Prepared> = (0..9000)
        .map(|i| {
            let text = |k: usize| awkward[(i + k) % awkward.len()].to_owned();
            let mut e = Entry::new(0, "", text(0), text(1));
            if i % 3 == 0 {
                e.token_id = Some(text(2));
                e.connection = Some(String::new());
                e.reasons = Some(vec![text(3), text(4)]);
            }
            e.details = json!({ text(5): text(6), "n": i, "f": 0.5 }).as_object().unwrap().clone();
            Prepared::new(e).unwrap()
        })
        .collect();
    store.append_audit(entries, &keys, at("2026-11-22T00:00:00Z")).await.unwrap();
    let all = store.audit_range(1, 9000, 10_000).await.unwrap();
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(1);
    let mut leaves = Vec::new();
    let read = store.audit_verify_range((1, 9000, 10_000), &mut verifier, Some(&mut leaves)).await.unwrap();
    assert_eq!(read, Ok(9000));
    assert_eq!(leaves, all.iter().map(|r| r.leaf_hash().unwrap()).collect::<Vec<_>>());
    // A limit inside a run, then the rest.
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(1);
    assert_eq!(store.audit_verify_range((1, 9000, 4100), &mut verifier, None).await.unwrap(), Ok(4100));
    assert_eq!(store.audit_verify_range((4101, 9000, 10_000), &mut verifier, None).await.unwrap(), Ok(4900));
}

/// SQLite finds records by kind, actor, token, connection and project
/// through postings built behind the log: every answer (pages, cursors
/// inside and across partitions, combined filters, time bounds) equals a
/// scan's, before the postings exist, once they cover the complete
/// partitions, and with records appended after them.
#[tokio::test]
async fn sqlite_lookups_through_postings_answer_as_a_scan_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let kinds = ["decision", "token.used", "token.issued", "policy.updated"];
    let entry = |i: usize| {
        let mut e = Entry::new(0, "", kinds[i % 4], format!("actor{}", (i * 7) % 37));
        // Tokens: a few common, most rare; one used only in the last partition.
        e.token_id = (!i.is_multiple_of(5))
            .then(|| if i.is_multiple_of(3) { format!("t{}", i % 11) } else { format!("t{}", i % 997) });
        e.connection = (i % 4 != 3).then(|| format!("c{}", i % 3));
        e.project = (!i.is_multiple_of(6)).then(|| format!("p{}", i % 5));
        if i == 12_500 {
            e.token_id = Some("late".into());
        }
        Prepared::new(e).unwrap()
    };
    let appended = |from: usize, to: usize, ts: Timestamp| {
        let store = store.clone();
        let keys = keys.clone();
        async move {
            for chunk in (from..to).collect::<Vec<_>>().chunks(1000) {
                let batch = chunk.iter().map(|i| entry(*i)).collect();
                store.append_audit(batch, &keys, ts).await.unwrap();
            }
        }
    };
    appended(0, 6000, at("2026-01-01T00:00:00Z")).await;
    appended(6000, 12_600, at("2026-01-02T00:00:00Z")).await;

    let filters = vec![
        AuditFilter { token_id: Some("t7".into()), ..AuditFilter::default() },
        AuditFilter { token_id: Some("t500".into()), ..AuditFilter::default() },
        AuditFilter { token_id: Some("late".into()), ..AuditFilter::default() },
        AuditFilter { token_id: Some("never".into()), ..AuditFilter::default() },
        AuditFilter { actor: Some("actor3".into()), kind: Some("token.used".into()), ..AuditFilter::default() },
        AuditFilter { project: Some("p2".into()), decision: None, ..AuditFilter::default() },
        AuditFilter {
            connection: Some("c1".into()),
            until: Some(at("2026-01-02T00:00:00Z")),
            ..AuditFilter::default()
        },
        AuditFilter {
            kind: Some("decision".into()),
            since: Some(at("2026-01-02T00:00:00Z")),
            ..AuditFilter::default()
        },
        AuditFilter { actor: Some("actor5".into()), token_id: Some("t5".into()), ..AuditFilter::default() },
    ];
    let scan = |all: &[Record], f: &AuditFilter| -> Vec<u64> {
        all.iter()
            .filter(|r| {
                let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
                r.seq > f.after_seq
                    && f.kind.as_ref().is_none_or(|k| *k == r.kind)
                    && f.actor.as_ref().is_none_or(|a| *a == r.actor)
                    && eq(&f.token_id, &r.token_id)
                    && eq(&f.connection, &r.connection)
                    && eq(&f.project, &r.project)
                    && f.since.as_ref().is_none_or(|s| r.ts >= s.to_string())
                    && f.until.as_ref().is_none_or(|u| r.ts < u.to_string())
            })
            .map(|r| r.seq)
            .take(f.limit as usize)
            .collect()
    };
    let check = |phase: &'static str, records: usize| {
        let store = store.clone();
        let filters = filters.clone();
        let scan = &scan;
        async move {
            let all = store.audit_range(1, u64::MAX, 100_000).await.unwrap();
            assert_eq!(all.len(), records);
            let scan = |f: &AuditFilter| scan(&all, f);
            for f in &filters {
                for (after_seq, limit) in [(0, 100_000), (0, 3), (4095, 40), (4096, 1), (5000, 700), (12_287, 50)] {
                    let f = AuditFilter { after_seq, limit, ..f.clone() };
                    let got: Vec<u64> = store.audit_query(&f).await.unwrap().iter().map(|r| r.seq).collect();
                    assert_eq!(got, scan(&f), "{phase}: {f:?}");
                }
                // Walking every page with the cursor yields the whole answer.
                let mut walked = Vec::new();
                let mut after_seq = 0;
                loop {
                    let page = store.audit_query(&AuditFilter { after_seq, limit: 97, ..f.clone() }).await.unwrap();
                    let Some(last) = page.last() else { break };
                    after_seq = last.seq;
                    walked.extend(page.iter().map(|r| r.seq));
                }
                assert_eq!(walked, scan(&AuditFilter { limit: u32::MAX, ..f.clone() }), "{phase}: pages of {f:?}");
            }
        }
    };
    check("no postings", 12_600).await;
    let late = AuditFilter { token_id: Some("late".into()), limit: 10, ..AuditFilter::default() };
    assert_eq!(store.audit_query(&late).await.unwrap().len(), 1);
    assert_eq!(store.audit_index().await.unwrap(), 12_288, "three complete partitions");
    assert_eq!(store.audit_index().await.unwrap(), 12_288, "nothing more to do");
    check("postings for 3 partitions", 12_600).await;
    appended(12_600, 13_000, at("2026-01-03T00:00:00Z")).await;
    check("postings, then records after them", 13_000).await;
    // The Merkle leaves load a page of MACs at a time: two pages here.
    let all = store.audit_range(1, u64::MAX, 100_000).await.unwrap();
    assert_eq!(
        store.audit_leaves_after(0, u32::MAX).await.unwrap(),
        all.iter().map(|r| r.leaf_hash().unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(store.audit_index().await.unwrap(), 12_288, "the fourth partition is not complete");
}

/// The WAL is checkpointed behind the writer, by upkeep, once enough
/// records have been appended: the records reach the database file itself
/// while the WAL is far below the writer's own checkpoint threshold (which
/// before upkeep was the only one, so nothing reached the file here).
#[tokio::test]
async fn sqlite_upkeep_checkpoints_the_wal_off_the_commit_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let keys = keys();
    let file = || std::fs::metadata(&path).unwrap().len();
    let before = file();
    // 2,500 small records: about 150 WAL pages, against a threshold of
    // 10,000 for the writer (SQLite's default is 1,000).
    for _ in 0..40 {
        store.append_audit(entries(64, "decision"), &keys, at("2026-01-01T00:00:00Z")).await.unwrap();
        store.audit_index().await.unwrap();
    }
    let appended_bytes = 2_560 * 150;
    let started = std::time::Instant::now();
    while file() < before + appended_bytes {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no checkpoint: the database file is {} bytes, {before} before 2,560 records",
            file()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.audit_range(1, u64::MAX, 10_000).await.unwrap().len(), 2_560);
}

/// Upkeep runs on a thread of its own at nice 19, so the decisions get the
/// core first; the rest of the process keeps its priority.
#[tokio::test]
async fn sqlite_upkeep_runs_at_the_lowest_priority() {
    let (_store, _dir) = sqlite_store().await;
    let nice_of = |task: &std::path::Path| -> (String, i64) {
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default().trim().to_owned();
        let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis start at field 3
        // (state); the nice value is field 19.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let nice = rest.split_whitespace().nth(16).and_then(|n| n.parse().ok()).unwrap_or(i64::MIN);
        (comm, nice)
    };
    let threads: Vec<(String, i64)> =
        std::fs::read_dir("/proc/self/task").unwrap().map(|t| nice_of(&t.unwrap().path())).collect();
    let upkeep: Vec<i64> =
        threads.iter().filter(|(comm, _)| comm == warrant_service::store::UPKEEP_THREAD).map(|(_, n)| *n).collect();
    assert!(!upkeep.is_empty(), "no upkeep thread among {threads:?}");
    assert!(upkeep.iter().all(|n| *n == 19), "upkeep's nice values: {upkeep:?}");
    // The rest keeps the process's own value (0, or what the test runner
    // was started with).
    let (_, process) = nice_of(&std::path::Path::new("/proc/self/task").join(std::process::id().to_string()));
    let others: Vec<&(String, i64)> =
        threads.iter().filter(|(comm, _)| comm != warrant_service::store::UPKEEP_THREAD).collect();
    assert!(others.iter().all(|(_, n)| *n == process), "process nice {process}, other threads: {others:?}");
}

/// Two processes' indexers on one file, at once: one claims the partition,
/// the other finds it claimed, and lookups through either handle answer as
/// a scan does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_indexers_racing_on_one_file_build_one_set_of_postings() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    let keys = keys();
    for chunk in 0..9 {
        let batch = (0..500)
            .map(|i| {
                let mut e = Entry::new(0, "", "decision", format!("actor{}", (chunk * 500 + i) % 7));
                e.token_id = Some(format!("t{}", (chunk * 500 + i) % 13));
                Prepared::new(e).unwrap()
            })
            .collect();
        a.append_audit(batch, &keys, at("2026-01-01T00:00:00Z")).await.unwrap();
    }
    let (x, y) = tokio::join!(a.audit_index(), b.audit_index());
    assert_eq!((x.unwrap(), y.unwrap()), (4096, 4096));
    let all = a.audit_range(1, u64::MAX, 10_000).await.unwrap();
    for store in [&a, &b] {
        for (actor, token) in [("actor3", None), ("actor0", Some("t5")), ("nobody", None)] {
            let f = AuditFilter {
                actor: Some(actor.into()),
                token_id: token.map(Into::into),
                limit: 10_000,
                ..AuditFilter::default()
            };
            let got: Vec<u64> = store.audit_query(&f).await.unwrap().iter().map(|r| r.seq).collect();
            let want: Vec<u64> = all
                .iter()
                .filter(|r| r.actor == actor && token.is_none_or(|t| r.token_id.as_deref() == Some(t)))
                .map(|r| r.seq)
                .collect();
            assert_eq!(got, want, "{actor} {token:?}");
        }
    }
}

/// Two handles on one SQLite file (the service and the CLI): each append
/// after a head the other moved is refused by the schema and sealed again
/// after the stored head; the chain stays single, gap-free and verifiable.
/// A record that does not follow the head is refused whoever writes it.
#[tokio::test]
async fn sqlite_appends_from_two_handles_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let entries = |n: usize, actor: &str| {
        (0..n).map(|_| Prepared::new(Entry::new(0, "", "decision", actor)).unwrap()).collect::<Vec<_>>()
    };
    let mut seqs = Vec::new();
    for round in 0..5 {
        for (store, actor) in [(&a, "a"), (&b, "b"), (&a, "a")] {
            let done = store.append_audit(entries(round + 1, actor), &keys, at("2026-01-01T00:00:00Z")).await.unwrap();
            seqs.extend(done.iter().map(|r| r.as_ref().unwrap().seq));
        }
    }
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let all = a.audit_range(1, u64::MAX, 1000).await.unwrap();
    verify_chain(&all, &keys, &ChainStart::genesis()).unwrap();

    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let forged = |seq: i64, prev_mac: String| {
        let raw = raw.clone();
        async move {
            sqlx::query(concat!(
                "INSERT INTO audit_records (seq, ts, kind, actor, details, key_id, prev_mac, mac) ",
                "VALUES (?, '2026-01-01T00:00:00Z', 'decision', 'x', '{}', 'k1', ?, ?)"
            ))
            .bind(seq)
            .bind(prev_mac)
            .bind("0".repeat(64))
            .execute(&raw)
            .await
        }
    };
    let head = all.len() as i64;
    let head_mac = all.last().unwrap().mac.clone();
    let gap = forged(head + 2, head_mac.clone()).await.unwrap_err();
    assert!(gap.to_string().contains("must follow the stored head"), "{gap}");
    let fork = forged(head + 1, "1".repeat(64)).await.unwrap_err();
    assert!(fork.to_string().contains("must follow the stored head"), "{fork}");
    forged(head + 1, head_mac).await.unwrap();
}

/// Two PostgreSQL instances take turns appending. Each commit stores the
/// tree's tiles, level 0's partial one included, so the instance whose turn
/// comes next reads the tree's edge from the tiles rather than rehashing
/// the other's records: the stored tiles cover the whole log after every
/// commit, and their leaves are the records'.
#[tokio::test]
async fn postgres_appends_from_two_instances_store_the_whole_tree() {
    let Some(url) = postgres_database("two_instances_tree") else { return };
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let entries = |n: usize, actor: &str| {
        (0..n).map(|_| Prepared::new(Entry::new(0, "", "decision", actor)).unwrap()).collect::<Vec<_>>()
    };
    let mut size = 0;
    // 1 + 2 + … + 24 = 300 records: across the first full tile and into the next.
    for n in 1..=24 {
        let (store, actor) = if n % 2 == 0 { (&a, "a") } else { (&b, "b") };
        let done = store.append_audit(entries(n, actor), &keys, at("2026-01-01T00:00:00Z")).await.unwrap();
        size += done.len() as u64;
        assert_eq!(a.audit_tree_size().await.unwrap(), size, "the stored tiles cover the log after {n} turns");
    }
    assert_eq!(size, 300);
    let partial = TileId { level: 0, index: 1 };
    let stored = a.audit_tiles(&[partial]).await.unwrap().remove(&partial).unwrap();
    assert_eq!(stored, a.audit_leaves_after(256, 100).await.unwrap());
    assert_eq!(stored.len(), 44);
}

/// The PostgreSQL schema refuses a record that does not follow the stored
/// head: a gap, a fork, and a bad row anywhere in a multi-row insert (which
/// then stores none of its rows), while rows that each follow the one
/// before, the first the stored head, are stored. (Appends insert a group
/// commit's records in one statement.)
#[tokio::test]
async fn postgres_refuses_a_record_that_does_not_follow_the_head() {
    let Some(url) = postgres_database("follow_head") else { return };
    let store = Store::open(&url).await.unwrap();
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let entries = (0..3).map(|_| Prepared::new(Entry::new(0, "", "decision", "a")).unwrap()).collect();
    store.append_audit(entries, &keys, at("2026-01-01T00:00:00Z")).await.unwrap();
    let head_mac = store.audit_range(3, 3, 1).await.unwrap().remove(0).mac;

    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    let insert = |rows: Vec<(i64, String, String)>| {
        let raw = raw.clone();
        async move {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO audit_records (seq, ts, kind, actor, details, key_id, prev_mac, mac) ",
            );
            q.push_values(rows, |mut row, (seq, prev, mac)| {
                row.push_bind(seq)
                    .push("'2026-01-01T00:00:00Z', 'decision', 'x', '{}', 'k1'")
                    .push_bind(prev)
                    .push_bind(mac);
            });
            q.build().execute(&raw).await
        }
    };
    let mac = |c: char| c.to_string().repeat(64);
    let refused = [
        ("a gap", vec![(5, head_mac.clone(), mac('5'))]),
        ("a fork", vec![(4, mac('9'), mac('4'))]),
        ("a bad second row", vec![(4, head_mac.clone(), mac('4')), (5, mac('9'), mac('5'))]),
        ("a bad first row", vec![(4, mac('9'), mac('4')), (5, mac('4'), mac('5'))]),
    ];
    for (what, rows) in refused {
        let e = insert(rows).await.unwrap_err();
        assert!(e.to_string().contains("must follow the stored head"), "{what}: {e}");
        assert_eq!(store.audit_range(1, u64::MAX, 10).await.unwrap().len(), 3, "{what}: nothing stored");
    }
    insert(vec![(4, head_mac, mac('4')), (5, mac('4'), mac('5'))]).await.unwrap();
    assert_eq!(store.audit_range(1, u64::MAX, 10).await.unwrap().len(), 5);
}

/// Runs of a SQLite log are read and checked in parallel and joined in
/// order: a change to a run's first record, its last, one inside, or a
/// missing record is reported at exactly the first affected `seq`, as a
/// record-by-record pass reports it.
#[tokio::test]
async fn sqlite_parallel_verification_reports_the_first_bad_seq() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    let keys = Keyring::new("k1", &[7u8; 32]).unwrap();
    let entries: Vec<Prepared> =
        (0..5000).map(|i| Prepared::new(Entry::new(0, "", "decision", format!("actor{i}"))).unwrap()).collect();
    store.append_audit(entries, &keys, at("2026-11-23T00:00:00Z")).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_no_delete")
        .execute(&raw)
        .await
        .unwrap();
    let verdict = || {
        let store = store.clone();
        let keys = keys.clone();
        async move {
            let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(1);
            let mut leaves = Vec::new();
            let found = store.audit_verify_range((1, 5000, 10_000), &mut verifier, Some(&mut leaves)).await.unwrap();
            (found.map_err(|b| (b.seq, b.reason)), leaves.len())
        }
    };
    let all = store.audit_range(1, 5000, 10_000).await.unwrap();
    let (found, leaves) = verdict().await;
    assert_eq!(found, Ok(5000));
    assert_eq!(leaves, 5000);
    let tamper = |seq: i64| {
        let raw = raw.clone();
        async move {
            sqlx::query("UPDATE audit_records SET actor = 'mallory' WHERE seq = ?")
                .bind(seq)
                .execute(&raw)
                .await
                .unwrap();
        }
    };
    let restore = |seq: i64| {
        let raw = raw.clone();
        let actor = all[usize::try_from(seq - 1).unwrap()].actor.clone();
        async move {
            sqlx::query("UPDATE audit_records SET actor = ? WHERE seq = ?")
                .bind(actor)
                .bind(seq)
                .execute(&raw)
                .await
                .unwrap();
        }
    };
    // Whatever the run size, these land on different runs and edges.
    for (bad, also) in [(1025, 4000), (1024, 2000), (2049, 2050), (4999, 5000), (1, 3000), (3333, 4444)] {
        tamper(also).await;
        tamper(bad).await;
        assert_eq!(verdict().await.0, Err((bad as u64, BreakReason::MacMismatch)), "tampered {bad} and {also}");
        restore(bad).await;
        restore(also).await;
    }
    assert_eq!(verdict().await.0, Ok(5000));
    // A column rewritten as a blob: the same bytes verify as the text they
    // are; other bytes are a changed record; bytes that are not UTF-8 are
    // refused, naming the record.
    let original = all[2999].actor.clone();
    sqlx::query("UPDATE audit_records SET actor = CAST(? AS BLOB) WHERE seq = 3000")
        .bind(&original)
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(verdict().await.0, Ok(5000));
    sqlx::query("UPDATE audit_records SET actor = X'6d616c6c6f7279' WHERE seq = 3000").execute(&raw).await.unwrap();
    assert_eq!(verdict().await.0, Err((3000, BreakReason::MacMismatch)));
    sqlx::query("UPDATE audit_records SET actor = X'ff' WHERE seq = 3000").execute(&raw).await.unwrap();
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis());
    let refused = store.audit_verify_range((1, 5000, 10_000), &mut verifier, None).await.unwrap_err();
    assert!(refused.to_string().contains("record 3000: `actor` is not UTF-8"), "{refused}");
    restore(3000).await;
    assert_eq!(verdict().await.0, Ok(5000));
    sqlx::query("DELETE FROM audit_records WHERE seq = 2048").execute(&raw).await.unwrap();
    let (found, _) = verdict().await;
    assert_eq!(found, Err((2048, BreakReason::SeqMismatch { expected: 2048, found: 2049 })));
}

#[tokio::test]
async fn unknown_database_urls_are_refused() {
    let err = Store::open("mysql://x").await.unwrap_err();
    assert!(err.to_string().contains("unsupported database url"), "{err}");
}

fn flow(state: &str, owner: &str, created: u32, expires: u32) -> GrantFlow {
    GrantFlow {
        state_hash: state.into(),
        connection: "snowflake".into(),
        owner: owner.into(),
        kek_id: "v1".into(),
        verifier: vec![0, 1, 2, 255],
        created_at: n(created),
        expires_at: n(expires),
    }
}

async fn grant_flows_are_bounded_per_owner_and_taken_once(store: Store) {
    // Two pending flows at most per owner; another owner is not affected.
    assert!(store.start_grant_flow(&flow("s1", "ann", 0, 10), 2).await.unwrap());
    assert!(store.start_grant_flow(&flow("s2", "ann", 1, 11), 2).await.unwrap());
    assert!(!store.start_grant_flow(&flow("s3", "ann", 2, 12), 2).await.unwrap(), "a third is refused");
    assert!(store.start_grant_flow(&flow("b1", "bob", 2, 12), 2).await.unwrap());

    // Taken once, whole; an unknown state is nothing.
    assert_eq!(store.take_grant_flow("s1", n(5)).await.unwrap(), Some(flow("s1", "ann", 0, 10)));
    assert_eq!(store.take_grant_flow("s1", n(5)).await.unwrap(), None, "a state works once");
    assert_eq!(store.take_grant_flow("nope", n(5)).await.unwrap(), None);

    // Expired flows answer nothing and stop counting against their owner.
    assert_eq!(store.take_grant_flow("s2", n(11)).await.unwrap(), None, "expired at its expiry");
    assert!(store.start_grant_flow(&flow("s4", "ann", 20, 30), 2).await.unwrap());
    assert!(store.start_grant_flow(&flow("s5", "ann", 21, 31), 2).await.unwrap(), "bob's expired flow went too");
    assert!(!store.start_grant_flow(&flow("s6", "ann", 22, 32), 2).await.unwrap());
    assert_eq!(store.take_grant_flow("b1", n(22)).await.unwrap(), None, "dropped when it expired");
}

fn grant(id: &str, version: i64, expires: u32) -> Grant {
    Grant {
        id: id.into(),
        connection: "snow".into(),
        owner: "ann".into(),
        provider: "idp".into(),
        status: GrantStatus::Active,
        reason: None,
        scopes: "openid offline_access".into(),
        kek_id: "k1".into(),
        data_key: vec![1; 60],
        access_token: vec![2; 40],
        access_expires_at: n(expires),
        refresh_token: Some(vec![3, 0, 255]),
        refresh_started_at: None,
        version,
        created_at: n(0),
        updated_at: n(0),
    }
}

/// Stores `write` alone: no token change, no record.
async fn put_grant(store: &Store, write: GrantWrite, ts: Timestamp) {
    let nothing = Vec::<TokenUpdate<'_, TokenConflict>>::new();
    store.update_tokens_and_append(Some(&write), nothing, |_| Ok((Vec::new(), ())), &keys(), ts).await.unwrap();
}

async fn grants_change_only_from_the_version_they_were_read_at(store: Store) {
    let keys = keys();
    let issue =
        || TokenUpdate::new("g1", |b: Option<&TokenState>| apply(b, &of("g1", TokenEventKind::Issued, "ann"), n(1)));
    let write = |g: Grant, expected| GrantWrite { grant: g, expected };
    // A new grant, with its token and its record.
    let new = write(grant("g1", 1, 10), None);
    let ((), sealed) = store
        .update_tokens_and_append(Some(&new), vec![issue()], |_| Ok((entries(1, "token.issued"), ())), &keys, n(1))
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!(store.grant("g1").await.unwrap(), Some(grant("g1", 1, 10)));
    assert_eq!(store.token("g1").await.unwrap().unwrap().status, "active");
    // The same id again is refused, and stores nothing of its transaction.
    let again =
        store.update_tokens_and_append(Some(&new), vec![issue()], |_| Ok((entries(1, "x"), ())), &keys, n(2)).await;
    assert!(matches!(again, Err(StoreError::GrantChanged(ref id)) if id == "g1"), "{again:?}");
    assert_eq!(store.audit_count().await.unwrap(), 1, "no record without its change");

    // A change from version 1 applies and makes version 2 ...
    let mut refreshed = grant("g1", 2, 20);
    refreshed.access_token = vec![4; 40];
    put_grant(&store, write(refreshed.clone(), Some(1)), n(3)).await;
    assert_eq!(store.grant("g1").await.unwrap(), Some(refreshed.clone()));
    // ... and another made from version 1 (a stale read) is refused.
    let stale = write(grant("g1", 2, 30), Some(1));
    let refused =
        store.update_tokens_and_append(Some(&stale), vec![issue()], |_| Ok((entries(1, "x"), ())), &keys, n(4)).await;
    assert!(matches!(refused, Err(StoreError::GrantChanged(_))), "{refused:?}");
    assert_eq!(store.grant("g1").await.unwrap(), Some(refreshed), "the newer row stays");
    assert_eq!(store.audit_count().await.unwrap(), 1);

    // Reads: by owner; the refresher's work, soonest expiry first.
    put_grant(&store, write(grant("g2", 1, 5), None), n(5)).await;
    let mut revoked = grant("g3", 1, 1);
    revoked.status = GrantStatus::Revoked;
    put_grant(&store, write(revoked, None), n(5)).await;
    let owned: Vec<String> = store.grants_of("ann").await.unwrap().into_iter().map(|g| g.id).collect();
    assert_eq!(owned, ["g1", "g2", "g3"]);
    let due: Vec<String> = store.grants_to_refresh(n(25), 10).await.unwrap().into_iter().map(|g| g.id).collect();
    assert_eq!(due, ["g2", "g1"], "active ones only, soonest first");
    assert_eq!(store.grant_ids_after("g1", 10).await.unwrap(), ["g2", "g3"]);

    // One refresh lease per grant at a time across instances (PostgreSQL;
    // SQLite has one writing process).
    let held = store.grant_lease("g1").await.unwrap();
    let waiting = tokio::time::timeout(std::time::Duration::from_millis(300), store.grant_lease("g1")).await;
    let other = tokio::time::timeout(std::time::Duration::from_millis(300), store.grant_lease("g2")).await;
    assert!(other.is_ok(), "another grant's lease is free");
    if matches!(store, Store::Postgres(_)) {
        assert!(waiting.is_err(), "a second lease on g1 waits while the first is held");
    }
    drop(held);
    drop(other);
    drop(waiting);
    let after = tokio::time::timeout(std::time::Duration::from_secs(5), store.grant_lease("g1")).await;
    assert!(after.is_ok(), "free again once the first is dropped");
}
