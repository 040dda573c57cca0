//! Criterion benchmarks of the audit core: sealing a typical record (JCS +
//! HMAC-SHA256), verifying a chain, Merkle proofs, and redacting an event.
//!
//! `cargo bench -p warrant-engine --bench audit`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark setup fails loudly")]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use warrant_engine::audit::{
    ChainStart, Entry, Keyring, Kind, Mac, Outcome, Prepared, Record, Sealer, TileTree, merkle, seal, verify_chain,
};
use warrant_engine::{RedactionConfig, Redactor};

fn keyring() -> Keyring {
    Keyring::new("2026-03", b"bench-audit-key-material-0123456789abcdef").unwrap()
}

/// A token use as the service records it: every optional field set.
fn entry(seq: u64) -> Entry {
    let details: Map<String, Value> = json!({
        "surface": "notebook",
        "credential": "owner_token",
        "cache_key": "shared:p1",
        "request_id": "01956a1e-6c1f-7d2a-9b1e-3f4a5b6c7d8e",
        "client": {"ip": "10.0.0.12", "user_agent": "analytics-notebook/4.2"}
    })
    .as_object()
    .unwrap()
    .clone();
    Entry {
        token_id: Some("tok-7f3a".into()),
        token_owner: Some("alice".into()),
        connection: Some("snowflake-prod".into()),
        project: Some("p1".into()),
        decision: Some(Outcome::Allow),
        reasons: Some(vec![]),
        policy_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        details,
        ..Entry::new(seq, "2026-03-01T12:00:00.123456Z", Kind::TokenUsed, "alice")
    }
}

fn chain(n: u64, keys: &Keyring) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    for seq in 1..=n {
        let prev = records.last().map_or(Mac::ZERO, |r| r.mac().unwrap());
        records.push(seal(entry(seq), &prev, keys).unwrap());
    }
    records
}

fn sealing(c: &mut Criterion) {
    let keys = keyring();
    let prev = Mac::from_bytes([7; 32]);
    let typical = entry(42);
    println!(
        "typical record: {} canonical bytes",
        seal(typical.clone(), &prev, &keys).unwrap().canonical_bytes().unwrap().len()
    );
    c.bench_function("audit/seal_typical_record", |b| b.iter(|| seal(typical.clone(), &prev, &keys).unwrap()));
    // The service's split: callers prepare (canonical details, every field
    // but seq/ts/key_id/prev_mac); the single writer only seals.
    c.bench_function("audit/prepare_typical_record", |b| b.iter(|| Prepared::new(typical.clone()).unwrap()));
    let prepared = Prepared::new(typical.clone()).unwrap();
    let mut sealer = Sealer::new(&keys, "2026-03-01T12:00:00.123456Z").unwrap();
    c.bench_function("audit/seal_prepared_record", |b| b.iter(|| sealer.seal(&prepared, 42, &prev).unwrap()));

    let records = chain(1_000, &keys);
    c.bench_function("audit/verify_chain_1000", |b| {
        b.iter(|| verify_chain(&records, &keys, &ChainStart::genesis()).unwrap())
    });
}

fn merkle_proofs(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit/merkle");
    for n in [1_000u64, 100_000] {
        let leaves: Vec<merkle::Hash> = (0..n).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        group.bench_with_input(BenchmarkId::new("root", n), &leaves, |b, l| b.iter(|| merkle::root(l)));
        group.bench_with_input(BenchmarkId::new("inclusion_proof", n), &leaves, |b, l| {
            b.iter(|| merkle::inclusion_proof(l, n / 3, n).unwrap())
        });
        let root = merkle::root(&leaves);
        let proof = merkle::inclusion_proof(&leaves, n / 3, n).unwrap();
        let leaf = leaves[(n / 3) as usize];
        group.bench_with_input(BenchmarkId::new("verify_inclusion", n), &proof, |b, p| {
            b.iter(|| merkle::verify_inclusion(&leaf, n / 3, n, p, &root).unwrap())
        });
    }
    group.finish();
}

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::new(RedactionConfig::default(), b"bench-redaction-key").unwrap();
    let event = json!({
        "kind": "token.refreshed",
        "token_id": "tok-7f3a",
        "owner": "alice",
        "connection": "snowflake-prod",
        "details": {
            "access_token": "ya29.a0AfB_byC1234567890abcdefghijklmnopqrstuvwxyz",
            "refresh_token": "1//0gAbCdEfGhIjKlMnOpQrStUvWxYz",
            "expires_in": 3600,
            "scope": "session:role:ANALYST",
            "note": "refreshed by scheduler run 8812 for app p1",
            "warehouse": {"account": "xy12345.eu-west-1", "role": "ANALYST", "query_results": [1, 2, 3]}
        }
    });
    c.bench_function("redact/typical_event", |b| b.iter(|| redactor.redact_value(&event)));
    // The audit writer's form: its own value, changed in place (the clone
    // is part of the measure; `redact_value` makes the same copy).
    c.bench_function("redact/typical_event_in_place", |b| b.iter(|| redactor.redact_owned(event.clone())));
    let line = "GET /v1/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig";
    c.bench_function("redact/log_line_with_secrets", |b| b.iter(|| redactor.redact_text(line)));
    let clean = "decision allow for alice on project p1 via snowflake-prod in 15us";
    c.bench_function("redact/log_line_clean", |b| b.iter(|| redactor.redact_text(clean)));
}

/// The tree kept as tiles (`tiles.rs`): root, proofs and appends at sizes
/// where the leaf-by-leaf generator above is O(n).
fn tiles(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit/tiles");
    for n in [100_000u64, 1_000_000] {
        let tree = TileTree::from_leaves((0..n).map(|i| merkle::leaf_hash(&i.to_be_bytes())));
        // Not a power of two, so every level's right edge is partial.
        let size = n - 7;
        group.bench_with_input(BenchmarkId::new("root", n), &tree, |b, t| b.iter(|| t.root_at(size).unwrap()));
        group.bench_with_input(BenchmarkId::new("inclusion_proof", n), &tree, |b, t| {
            b.iter(|| t.inclusion_proof(size / 3, size).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("consistency_proof", n), &tree, |b, t| {
            b.iter(|| t.consistency_proof(size / 3, size).unwrap())
        });
    }
    let leaf = merkle::leaf_hash(b"x");
    group.bench_function("push", |b| {
        let mut tree = TileTree::default();
        b.iter(|| tree.push(leaf));
    });
    group.finish();
}

criterion_group!(benches, sealing, merkle_proofs, tiles, redaction);
criterion_main!(benches);
