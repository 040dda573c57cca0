//! What custom rules cost: decision latency with 0, 1 and 3 warm rules and
//! with a fresh-isolation rule, for the cheapest possible rule (the
//! `allow.wat` fixture: the host's own cost) and for the real Rust guests;
//! then bundle load time with components compiled now, read from the disk
//! cache, or already in memory.
//!
//! Needs the built guests: `wasm-guests/build.sh` (run by `tests/run`).
//! `cargo bench -p warrant-engine --bench rules`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, reason = "benchmark")]

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, BundleSource, EntityRef, EntitySet, Query, RuleRuntime};

const SAMPLES: usize = 100_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn component(file: &str) -> Vec<u8> {
    if let Some(fixture) = file.strip_suffix(".wat") {
        let path = repo().join("tests/fixtures/rules").join(format!("{fixture}.wat"));
        return wat::parse_file(&path).unwrap();
    }
    let path = repo().join("wasm-guests/dist").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (build the guests: wasm-guests/build.sh)", path.display()))
}

/// The policy pack plus `rules`: (name, component file, config, isolation).
fn bundle_with(rules: &[(&str, &str, Value, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    if rules.is_empty() {
        return dir;
    }
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let mut entries = Vec::new();
    for (name, file, config, isolation) in rules {
        let wasm = format!("{}.wasm", file.trim_end_matches(".wat").trim_end_matches(".wasm"));
        std::fs::write(dir.path().join("rules").join(&wasm), component(file)).unwrap();
        entries.push(json!({"name": name, "file": wasm, "actions": ["use_token"], "mode": "enforce",
                            "isolation": isolation, "config": config,
                            "limits": {"fuel": 100_000_000, "memory_bytes": 33_554_432, "timeout_ms": 100}}));
    }
    let manifest = json!({"version": 1, "rules": entries});
    std::fs::write(dir.path().join("rules/manifest.json"), manifest.to_string()).unwrap();
    dir
}

fn use_token() -> Query {
    let mut context = serde_json::Map::new();
    context.insert("now".into(), json!("2026-06-01T00:00:00Z"));
    context.insert("token_issued_at".into(), json!("2026-05-01T00:00:00Z"));
    Query {
        principal: EntityRef { type_name: "User".into(), id: "u3".into(), properties: None },
        action: "use_token".into(),
        resource: EntityRef { type_name: "Token".into(), id: "t3".into(), properties: None },
        context,
        entities: Vec::new(),
        ..Query::default()
    }
}

/// Decides `use_token` on every bundle in turn, 1,000 samples at a time,
/// so machine drift (frequency, the other core's load) hits all alike.
/// Returns each bundle's sorted latencies in ns.
fn measure_interleaved(bundles: &[Bundle], entities: &EntitySet, samples: &[usize]) -> Vec<Vec<u64>> {
    let query = use_token();
    let now = Timestamp::now();
    for bundle in bundles {
        for _ in 0..1_000 {
            assert!(bundle.decide(entities, &query, now).unwrap().allowed);
        }
    }
    let mut times: Vec<Vec<u64>> = samples.iter().map(|n| Vec::with_capacity(*n)).collect();
    let most = samples.iter().copied().max().unwrap_or(0);
    for round in 0..most.div_ceil(1_000) {
        for (i, bundle) in bundles.iter().enumerate() {
            if round * 1_000 >= samples[i] {
                continue;
            }
            for _ in 0..1_000 {
                let t = Instant::now();
                let d = bundle.decide(entities, &query, now).unwrap();
                times[i].push(t.elapsed().as_nanos() as u64);
                std::hint::black_box(d);
            }
        }
    }
    for t in &mut times {
        t.sort_unstable();
    }
    times
}

fn pct(times: &[u64], p: f64) -> f64 {
    times[((times.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

/// A manifest entry: (name, component file, config, isolation).
type Entry = (String, &'static str, Value, &'static str);

fn latency() {
    // Every bundle here has the pack's schema, so one entity set serves all.
    let entities = fixture::entities(&fixture::pack(), 1_000);
    let noop = |n: &str, iso: &'static str| (n.to_owned(), "allow.wat", json!({}), iso);
    let max_age = json!({"max_age_days": 90});
    let sql = json!({"pii": {"tables": ["hr.salaries"], "columns": ["ssn"]}, "allowed_purposes": [], "actions": ["use_token"]});
    let window = json!({"time_zone": "Europe/Berlin", "admin_roles": ["admin"], "actions": ["use_token"],
                        "windows": [{"days": ["mon"], "start": "00:00", "end": "24:00"}]});
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("Cedar alone (0 rules)", vec![]),
        ("1 warm rule (allow.wat: host cost)", vec![noop("a", "warm")]),
        ("3 warm rules (allow.wat)", vec![noop("a", "warm"), noop("b", "warm"), noop("c", "warm")]),
        ("1 fresh rule (allow.wat)", vec![noop("a", "fresh")]),
        ("1 warm token-max-age", vec![("max-age".into(), "token-max-age.wasm", max_age.clone(), "warm")]),
        ("1 fresh token-max-age", vec![("max-age".into(), "token-max-age.wasm", max_age.clone(), "fresh")]),
        (
            "3 warm Rust rules (max-age, sql-guard, window)",
            vec![
                ("max-age".into(), "token-max-age.wasm", max_age, "warm"),
                ("sql".into(), "sql-guard.wasm", sql, "warm"),
                ("window".into(), "change-window.wasm", window, "warm"),
            ],
        ),
    ];
    let mut labels = Vec::new();
    let mut bundles = Vec::new();
    let mut samples = Vec::new();
    for (label, rules) in cases {
        let rules: Vec<(&str, &str, Value, &str)> =
            rules.iter().map(|(n, f, c, i)| (n.as_str(), *f, c.clone(), *i)).collect();
        let dir = bundle_with(&rules);
        bundles.push(Bundle::load_dir(dir.path()).unwrap());
        samples.push(if label.contains("fresh") { SAMPLES / 10 } else { SAMPLES });
        labels.push(label);
    }
    let times = measure_interleaved(&bundles, &entities, &samples);
    let base = pct(&times[0], 0.5);
    for (label, t) in labels.iter().zip(&times) {
        let p50 = pct(t, 0.5);
        println!("{label:<48} p50 {p50:>7.2} µs  p99 {:>7.2} µs  (+{:.2} µs p50)", pct(t, 0.99), p50 - base);
    }
    rule_call_alone(&bundles[1]);
}

/// The rules' share of a decision: `RuleSet::evaluate` alone, no Cedar.
fn rule_call_alone(bundle: &Bundle) {
    let action: cedar_policy::EntityUid = r#"Analytics::Action::"use_token""#.parse().unwrap();
    let context = r#"{"now":"2026-06-01T00:00:00.000Z","token_issued_at":"2026-05-01T00:00:00.000Z"}"#;
    let request = || warrant_engine::rules::RuleRequest {
        principal: ("Analytics::User", "u3"),
        action: ("Analytics::Action", "use_token"),
        resource: ("Analytics::Token", "t3"),
        context_json: context.to_owned(),
    };
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let v = bundle.rules().evaluate(&action, request());
        times.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(v);
    }
    times.sort_unstable();
    println!(
        "{:<48} p50 {:>7.2} µs  p99 {:>7.2} µs",
        "RuleSet::evaluate alone (1 warm allow.wat)",
        pct(&times, 0.5),
        pct(&times, 0.99)
    );
}

fn load_times() {
    let guests = [
        ("sql-guard", "sql-guard.wasm", json!({"pii": {"tables": [], "columns": []}, "allowed_purposes": []})),
        ("token-max-age", "token-max-age.wasm", json!({"max_age_days": 90})),
        ("change-window", "change-window.wasm", json!({"time_zone": "UTC", "windows": [], "admin_roles": []})),
        ("purpose-required", "js-rule.wasm", json!({"actions": [], "allowed_purposes": []})),
    ];
    let rules: Vec<(&str, &str, Value, &str)> = guests.iter().map(|(n, f, c)| (*n, *f, c.clone(), "warm")).collect();
    let dir = bundle_with(&rules);
    let source = || BundleSource::read_dir(dir.path()).unwrap();
    let time = |label: &str, runtime: &Arc<RuleRuntime>| {
        let t = Instant::now();
        let b = Bundle::load_with(source(), Some(runtime)).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let r = b.rules().load_report();
        println!("{label:<44} {ms:>8.1} ms  (compiled {}, disk {}, memory {})", r.compiled, r.from_disk, r.from_memory);
    };
    let t = Instant::now();
    Bundle::load_dir(&repo().join("policies")).unwrap();
    println!("{:<44} {:>8.1} ms", "bundle load, the pack without rules", t.elapsed().as_secs_f64() * 1000.0);
    let cache = tempfile::tempdir().unwrap();
    time("bundle load + 4 guests, compiled now", &RuleRuntime::new(Some(cache.path().to_owned()), None).unwrap());
    let restarted = RuleRuntime::new(Some(cache.path().to_owned()), None).unwrap();
    time("bundle load + 4 guests, precompiled on disk", &restarted);
    time("bundle load + 4 guests, compiled in memory", &restarted);
    for (name, file, _) in guests {
        let bytes = component(file);
        let runtime = RuleRuntime::new(None, None).unwrap();
        let t = Instant::now();
        runtime.compile(&bytes).unwrap();
        println!(
            "{:<44} {:>8.1} ms  ({} KiB)",
            format!("  compile {name}"),
            t.elapsed().as_secs_f64() * 1000.0,
            bytes.len() / 1024
        );
    }
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("latency") {
        latency();
    }
    if wants("load") {
        load_times();
    }
}
