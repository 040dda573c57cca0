//! Criterion benchmarks of engine decisions against the policy pack.
//!
//! `cargo bench -p warrant-engine --bench decide`

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark setup fails loudly")]

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn decisions(c: &mut Criterion) {
    let bundle = fixture::pack();
    let now = Utc::now();
    let mut group = c.benchmark_group("decide");
    for users in [100, 1_000] {
        let entities = fixture::entities(&bundle, users);
        let allow = fixture::query(("User", "u11"), "view_notebook", ("Project", "p1"));
        let deny = fixture::query(("User", "u5"), "use_token", ("Token", "t5"));
        let qualified = fixture::query(("Analytics::User", "u7"), "run_query", ("Analytics::Connection", "c1"));
        group.bench_with_input(BenchmarkId::new("view_notebook_allow", entities.len()), &allow, |b, q| {
            b.iter(|| bundle.decide(&entities, q, now).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("use_token_deny_reason", entities.len()), &deny, |b, q| {
            b.iter(|| bundle.decide(&entities, q, now).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("run_query_qualified", entities.len()), &qualified, |b, q| {
            b.iter(|| bundle.decide(&entities, q, now).unwrap())
        });
        // AuthZEN properties force a per-request copy of the store.
        let mut with_properties = allow.clone();
        with_properties.resource.properties = Some(serde_json::Map::from_iter([("uses_oauth".into(), json!(false))]));
        group.bench_with_input(BenchmarkId::new("with_properties", entities.len()), &with_properties, |b, q| {
            b.iter(|| bundle.decide(&entities, q, now).unwrap())
        });
    }
    group.finish();
}

fn loading(c: &mut Criterion) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let source = warrant_engine::BundleSource::read_dir(&dir).unwrap();
    c.bench_function("bundle_load_policy_pack", |b| b.iter(|| warrant_engine::Bundle::load(source.clone()).unwrap()));
}

/// The data browser's question: which of 10,000 schemas may this user browse.
fn search(c: &mut Criterion) {
    let bundle = fixture::pack();
    let now = Utc::now();
    let entities = fixture::entities(&bundle, 20_000);
    let search = warrant_engine::Search {
        subject: warrant_engine::EntityRef { type_name: "User".into(), id: "u3".into(), properties: None },
        action: "browse_schema".into(),
        resource: warrant_engine::EntityRef { type_name: "Schema".into(), ..Default::default() },
        context: serde_json::Map::new(),
    };
    assert_eq!(entities.ids_of_type("Analytics::Schema").len(), 10_000);
    let mut group = c.benchmark_group("search");
    group.sample_size(20);
    group.bench_function("browse_schema_10000_schemas", |b| {
        b.iter(|| bundle.search_resources(&entities, &search, now).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decisions, loading, search);
criterion_main!(benches);
