//! Criterion benchmarks of engine decisions against the policy pack.
//!
//! `cargo bench -p warrant-engine --bench decide`

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark setup fails loudly")]

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use warrant_engine::Timestamp;

fn decisions(c: &mut Criterion) {
    let bundle = fixture::pack();
    let now = Timestamp::now();
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

/// The data browser's question: which of 10,000 schemas may this user
/// browse — warrant (partial evaluation once, residual from the indexes),
/// warrant deciding every candidate, and cedar-policy's own
/// `query_resource` over the whole pack, side by side.
fn search(c: &mut Criterion) {
    use cedar_policy::{Context, Entities, EntityUid, PolicySet, ResourceQueryRequest, Schema};
    use warrant_engine::{SearchMode, Searched};

    let bundle = fixture::pack();
    let now = Timestamp::now();
    let docs = fixture::entity_docs(20_000);
    let entities = bundle.entity_set(docs.clone()).unwrap();
    let search = warrant_engine::Search {
        subject: warrant_engine::EntityRef { type_name: "User".into(), id: "u3".into(), properties: None },
        action: "browse_schema".into(),
        resource: warrant_engine::EntityRef { type_name: "Schema".into(), ..Default::default() },
        context: serde_json::Map::new(),
        ..warrant_engine::Search::default()
    };
    assert_eq!(entities.ids_of_type("Analytics::Schema").len(), 10_000);

    // The first search after a store change builds the attribute index.
    let first = std::time::Instant::now();
    let indexed = bundle.search_entities(&entities, &search, Searched::Resources, SearchMode::Auto, now).unwrap();
    eprintln!("search: first query on a new store version (builds the index): {:?}", first.elapsed());
    assert_eq!(indexed.path, warrant_engine::SearchPath::Indexed);

    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let schema =
        Schema::from_cedarschema_str(&std::fs::read_to_string(dir.join("analytics.cedarschema")).unwrap()).unwrap().0;
    let mut text = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            text.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let raw: PolicySet = text.parse().unwrap();
    let docs: Vec<serde_json::Value> = docs
        .into_iter()
        .map(|mut d| {
            d.as_object_mut().unwrap().entry("parents").or_insert(json!([]));
            d
        })
        .collect();
    let raw_entities = Entities::from_json_value(serde_json::Value::Array(docs), Some(&schema)).unwrap();
    let action: EntityUid = r#"Analytics::Action::"browse_schema""#.parse().unwrap();
    let context = Context::from_json_value(json!({"now": "2026-06-01T00:00:00Z"}), Some((&schema, &action))).unwrap();
    let request = ResourceQueryRequest::new(
        r#"Analytics::User::"u3""#.parse().unwrap(),
        action,
        "Analytics::Schema".parse().unwrap(),
        context,
        &schema,
    )
    .unwrap();
    let mut cedar_ids: Vec<String> = raw
        .query_resource(&request, &raw_entities, &schema)
        .unwrap()
        .map(|uid| uid.id().unescaped().to_owned())
        .collect();
    cedar_ids.sort();
    assert_eq!(indexed.ids, cedar_ids, "warrant and cedar-policy disagree");

    let mut group = c.benchmark_group("search");
    group.sample_size(10);
    group.bench_function("browse_schema_10000_schemas", |b| {
        b.iter(|| bundle.search_entities(&entities, &search, Searched::Resources, SearchMode::Auto, now).unwrap())
    });
    group.bench_function("browse_schema_10000_schemas_every_candidate", |b| {
        b.iter(|| {
            bundle.search_entities(&entities, &search, Searched::Resources, SearchMode::EveryCandidate, now).unwrap()
        })
    });
    group.bench_function("browse_schema_10000_schemas_cedar_query_resource", |b| {
        b.iter(|| raw.query_resource(&request, &raw_entities, &schema).unwrap().count())
    });
    group.finish();
}

criterion_group!(benches, decisions, loading, search);
criterion_main!(benches);
