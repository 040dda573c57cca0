//! The JSON Schemas in `docs/schemas/` describe what the engine accepts,
//! so editors and CI can check a rules manifest or a policy test file
//! before a bundle ever loads:
//!
//! - every manifest and policy test file in the repository is valid;
//! - for a table of variants, valid and not, the schema's verdict equals the
//!   engine's (`Manifest::parse` through a bundle load, `cases::run`), so a
//!   field added to, or tightened in, either side fails here.
//!
//! What the schemas cannot say (names unique, files present, actions and
//! attribute types of the bundle's schema) is listed in their descriptions
//! and pinned below as known differences.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::{Value, json};
use warrant_engine::{Bundle, BundleSource, Timestamp, cases};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator(file: &str) -> Validator {
    let path = repo().join("docs/schemas").join(file);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest_schema() -> Validator {
    validator("rules-manifest.schema.json")
}

fn tests_schema() -> Validator {
    validator("policy-tests.schema.json")
}

fn errors(validator: &Validator, doc: &Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("at `{}`: {e}", e.instance_path())).collect()
}

/// Files of the repository's own tree (not build output or dependencies).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), ".git" | "target" | "node_modules" | "dist") {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

fn parent_name(path: &Path, up: usize) -> String {
    let mut dir = path;
    for _ in 0..up {
        dir = dir.parent().unwrap();
    }
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Rules manifests (`…/rules/manifest.json`, `example-rules/manifest.json`)
/// and policy test files (`tests/*.json` of a bundle or of `example-rules/`).
fn repository_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut all = Vec::new();
    walk(&repo(), &mut all);
    let manifests = all
        .iter()
        .filter(|p| p.file_name().unwrap() == "manifest.json")
        .filter(|p| matches!(parent_name(p, 1).as_str(), "rules" | "example-rules"))
        .cloned()
        .collect();
    let is_bundle = |dir: &Path| {
        dir.file_name().unwrap() == "example-rules"
            || std::fs::read_dir(dir)
                .unwrap()
                .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "cedarschema"))
    };
    let case_files = all
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json") && parent_name(p, 1) == "tests")
        .filter(|p| is_bundle(p.parent().unwrap().parent().unwrap()))
        .cloned()
        .collect();
    (manifests, case_files)
}

#[test]
fn every_manifest_and_test_file_in_the_repository_is_valid() {
    let (manifests, case_files) = repository_files();
    let named = |files: &[PathBuf], tail: &str| files.iter().any(|p| p.ends_with(tail));
    assert!(named(&manifests, "wasm-guests/example-rules/manifest.json"), "{manifests:?}");
    assert!(named(&case_files, "policies/tests/tokens.json"), "{case_files:?}");
    assert!(named(&case_files, "wasm-guests/example-rules/tests/rules.json"), "{case_files:?}");

    let mut problems = Vec::new();
    for (validator, files) in [(manifest_schema(), &manifests), (tests_schema(), &case_files)] {
        for path in files {
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            problems.extend(errors(&validator, &doc).into_iter().map(|e| format!("{}: {e}", path.display())));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The pack's schema and policies, as `PUT /v1/policies` would send them.
fn pack_files() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".cedar") || name.ends_with(".cedarschema") {
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    files
}

/// Whether the engine parses `manifest`: loading the pack with it fails
/// only because the components it names are missing (or, naming none, loads).
fn engine_parses_manifest(manifest: &Value) -> bool {
    let mut files = pack_files();
    files.insert("rules/manifest.json".into(), manifest.to_string());
    match Bundle::load(BundleSource::from_files(files).unwrap()) {
        Ok(bundle) => bundle.rules().is_empty(),
        Err(e) => e.diagnostics().iter().all(|d| d.to_string().contains("does not exist")),
    }
}

/// One valid entry, to vary.
fn entry() -> Value {
    json!({"name": "a", "file": "a.wasm", "actions": ["run_query"], "mode": "enforce"})
}

/// `doc` with the value at `pointer` set (replaced or added) or removed.
fn with(mut doc: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match (doc.pointer_mut(parent).unwrap(), value) {
        (Value::Array(items), Some(v)) => items[key.parse::<usize>().unwrap()] = v,
        (Value::Object(map), Some(v)) => {
            map.insert(key.to_owned(), v);
        }
        (Value::Object(map), None) => {
            map.remove(key);
        }
        (other, _) => panic!("{pointer}: cannot change {other}"),
    }
    doc
}

fn manifest_variants() -> Vec<(&'static str, Value)> {
    let base = json!({"version": 1, "rules": [entry()]});
    let set = |pointer: &str, value: Value| with(base.clone(), pointer, Some(value));
    let unset = |pointer: &str| with(base.clone(), pointer, None);
    vec![
        ("minimal", base.clone()),
        ("no rules", json!({"version": 1, "rules": []})),
        (
            "every field",
            set(
                "/rules/0",
                json!({"name": "a_b-9", "file": "a.wasm", "actions": ["run_query", "use_token"],
                       "config": {"k": [1]}, "limits": {"fuel": 1, "memory_bytes": 65536, "timeout_ms": 1},
                       "mode": "observe", "isolation": "fresh"}),
            ),
        ),
        ("limits at their maximum", set("/rules/0/limits", json!({"memory_bytes": 67_108_864, "timeout_ms": 1000}))),
        ("empty limits", set("/rules/0/limits", json!({}))),
        ("64-character name", set("/rules/0/name", json!("a".repeat(64)))),
        ("version 2", set("/version", json!(2))),
        ("no version", unset("/version")),
        ("no rules list", unset("/rules")),
        ("unknown top-level field", set("/comment", json!("x"))),
        ("no name", unset("/rules/0/name")),
        ("no file", unset("/rules/0/file")),
        ("no actions", unset("/rules/0/actions")),
        ("no mode", unset("/rules/0/mode")),
        ("unknown entry field", set("/rules/0/description", json!("x"))),
        ("empty name", set("/rules/0/name", json!(""))),
        ("uppercase name", set("/rules/0/name", json!("A"))),
        ("65-character name", set("/rules/0/name", json!("a".repeat(65)))),
        ("dotted name", set("/rules/0/name", json!("a.b"))),
        ("file not .wasm", set("/rules/0/file", json!("a.wat"))),
        ("file in a folder", set("/rules/0/file", json!("sub/a.wasm"))),
        ("file with a backslash", set("/rules/0/file", json!("sub\\a.wasm"))),
        ("hidden file", set("/rules/0/file", json!(".a.wasm"))),
        ("no actions listed", set("/rules/0/actions", json!([]))),
        ("actions as a string", set("/rules/0/actions", json!("run_query"))),
        ("config a list", set("/rules/0/config", json!([]))),
        ("config null", set("/rules/0/config", Value::Null)),
        ("zero fuel", set("/rules/0/limits", json!({"fuel": 0}))),
        ("negative fuel", set("/rules/0/limits", json!({"fuel": -1}))),
        ("fractional fuel", set("/rules/0/limits", json!({"fuel": 1.5}))),
        ("memory below a page", set("/rules/0/limits", json!({"memory_bytes": 65_535}))),
        ("memory above 64 MiB", set("/rules/0/limits", json!({"memory_bytes": 67_108_865}))),
        ("zero timeout", set("/rules/0/limits", json!({"timeout_ms": 0}))),
        ("timeout above a second", set("/rules/0/limits", json!({"timeout_ms": 1001}))),
        ("unknown limit", set("/rules/0/limits", json!({"cpu": 1}))),
        ("limits null", set("/rules/0/limits", Value::Null)),
        ("mode capitalised", set("/rules/0/mode", json!("Enforce"))),
        ("unknown mode", set("/rules/0/mode", json!("audit"))),
        ("unknown isolation", set("/rules/0/isolation", json!("cold"))),
        ("isolation null", set("/rules/0/isolation", Value::Null)),
    ]
}

#[test]
fn the_manifest_schema_accepts_what_the_engine_parses() {
    let schema = manifest_schema();
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for (what, doc) in manifest_variants() {
        let (by_schema, by_engine) = (schema.is_valid(&doc), engine_parses_manifest(&doc));
        refused += usize::from(!by_engine);
        if by_schema != by_engine {
            disagreements.push(format!("{what}: schema {by_schema}, engine {by_engine}: {doc}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(refused >= 30, "the table should mostly hold invalid manifests");
}

#[test]
fn what_the_manifest_schema_cannot_say() {
    // Unique names are checked at load only.
    let twice = json!({"version": 1, "rules": [entry(), entry()]});
    assert!(manifest_schema().is_valid(&twice));
    assert!(!engine_parses_manifest(&twice));
}

/// A group: a pack entity type without attributes.
fn group(id: &str) -> Value {
    json!({"uid": {"type": "Analytics::Group", "id": id}, "attrs": {}, "parents": []})
}

fn case() -> Value {
    json!({"name": "c", "principal": {"type": "User", "id": "u"}, "action": "run_query",
           "resource": {"type": "Connection", "id": "c"}, "expect": "deny"})
}

fn case_variants() -> Vec<(&'static str, Value)> {
    let base = json!({"entities": [group("g")], "cases": [case()]});
    let set = |pointer: &str, value: Value| with(base.clone(), pointer, Some(value));
    let unset = |pointer: &str| with(base.clone(), pointer, None);
    vec![
        ("minimal", json!({"cases": []})),
        ("one case", base.clone()),
        ("description", set("/description", json!("d"))),
        ("context", set("/cases/0/context", json!({"now": "2026-06-01T00:00:00Z"}))),
        ("reasons", set("/cases/0/reasons", json!(["no_permit"]))),
        ("reasons null", set("/cases/0/reasons", Value::Null)),
        ("rules", set("/cases/0/rules", json!({"a": "allow", "b": "deny", "c": "abstain", "d": "error", "e": "none"}))),
        ("uid as __entity", set("/entities/0/uid", json!({"__entity": {"type": "Analytics::Group", "id": "g"}}))),
        (
            "attrs and parents null",
            set("/entities/0", json!({"uid": group("g")["uid"], "attrs": null, "parents": null})),
        ),
        ("attrs and parents left out", set("/entities/0", json!({"uid": group("g")["uid"]}))),
        (
            "parents",
            set("/entities", json!([group("g"), with(group("h"), "/parents", Some(json!([group("g")["uid"]])))])),
        ),
        (
            "parent as __entity",
            set(
                "/entities",
                json!([group("g"), with(group("h"), "/parents", Some(json!([{"__entity": group("g")["uid"]}])))]),
            ),
        ),
        ("entity with more fields", set("/entities/0/note", json!("x"))),
        ("uid with more fields", set("/entities/0/uid/note", json!("x"))),
        ("no cases", unset("/cases")),
        ("unknown top-level field", set("/comment", json!("x"))),
        ("description not a string", set("/description", json!(1))),
        ("description null", set("/description", Value::Null)),
        ("entities an object", set("/entities", json!({}))),
        ("entities null", set("/entities", Value::Null)),
        ("entity not an object", set("/entities", json!([1]))),
        ("entity without uid", set("/entities/0", json!({"attrs": {}, "parents": []}))),
        ("uid type not a string", set("/entities/0/uid", json!({"type": 1, "id": "g"}))),
        ("uid without id", set("/entities/0/uid", json!({"type": "Analytics::Group"}))),
        ("attrs a list", set("/entities/0/attrs", json!([]))),
        ("parents an object", set("/entities/0/parents", json!({}))),
        ("no name", unset("/cases/0/name")),
        ("no principal", unset("/cases/0/principal")),
        ("no action", unset("/cases/0/action")),
        ("no resource", unset("/cases/0/resource")),
        ("no expect", unset("/cases/0/expect")),
        ("unknown case field", set("/cases/0/note", json!("x"))),
        ("principal without id", set("/cases/0/principal", json!({"type": "User"}))),
        ("principal with more", set("/cases/0/principal", json!({"type": "User", "id": "u", "attrs": {}}))),
        ("action not a string", set("/cases/0/action", json!(["run_query"]))),
        ("expect capitalised", set("/cases/0/expect", json!("Deny"))),
        ("expect error", set("/cases/0/expect", json!("error"))),
        ("reasons a string", set("/cases/0/reasons", json!("no_permit"))),
        ("reasons of numbers", set("/cases/0/reasons", json!([1]))),
        ("context a list", set("/cases/0/context", json!([]))),
        ("context null", set("/cases/0/context", Value::Null)),
        ("unknown rule verdict", set("/cases/0/rules", json!({"a": "maybe"}))),
        ("rules null", set("/cases/0/rules", Value::Null)),
    ]
}

/// Whether `cases::run` reads `doc`: no failure says the file is malformed
/// (`malformed test file`, or `entities:` for entity JSON it cannot read).
fn engine_reads_cases(bundle: &Bundle, doc: &Value) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("tests/t.json"), doc.to_string()).unwrap();
    let report = cases::run(bundle, dir.path(), Timestamp::now());
    report
        .results
        .iter()
        .filter_map(|r| r.failure.as_deref())
        .all(|f| !f.starts_with("malformed test file") && !f.starts_with("entities:"))
}

#[test]
fn the_test_file_schema_accepts_what_the_engine_reads() {
    let bundle = Bundle::load_dir(&repo().join("policies")).unwrap();
    let schema = tests_schema();
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for (what, doc) in case_variants() {
        let (by_schema, by_engine) = (schema.is_valid(&doc), engine_reads_cases(&bundle, &doc));
        refused += usize::from(!by_engine);
        if by_schema != by_engine {
            disagreements.push(format!("{what}: schema {by_schema}, engine {by_engine}: {doc}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(refused >= 25, "the table should mostly hold invalid files");
}

#[test]
fn the_manifest_schema_defaults_and_bounds_are_the_engines() {
    use warrant_engine::rules::{Isolation, Limits, MAX_MEMORY_BYTES, MAX_TIMEOUT_MS};
    let path = repo().join("docs/schemas/rules-manifest.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let limits = &schema["$defs"]["limits"]["properties"];
    let defaults = json!({"fuel": limits["fuel"]["default"], "memory_bytes": limits["memory_bytes"]["default"],
                          "timeout_ms": limits["timeout_ms"]["default"]});
    assert_eq!(serde_json::from_value::<Limits>(defaults.clone()).unwrap(), Limits::default());
    assert_eq!(schema["$defs"]["rule"]["properties"]["limits"]["default"], defaults);
    assert_eq!(limits["memory_bytes"]["maximum"], json!(MAX_MEMORY_BYTES));
    assert_eq!(limits["timeout_ms"]["maximum"], json!(MAX_TIMEOUT_MS));
    let isolation = &schema["$defs"]["rule"]["properties"]["isolation"]["default"];
    assert_eq!(serde_json::from_value::<Isolation>(isolation.clone()).unwrap(), Isolation::default());
}
