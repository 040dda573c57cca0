//! A request that carries entities is decided against a slice of the store
//! (what the request can reach). This checks, case by case over the whole
//! policy pack's tests, that the slice decides exactly as the full store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::path::PathBuf;

use serde_json::Value;
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, EntityRef, Query};

fn pack_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#[test]
fn slices_decide_like_the_whole_store_on_every_pack_case() {
    let bundle = Bundle::load_dir(&pack_dir()).unwrap();
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let mut compared = 0;
    let mut files: Vec<_> = std::fs::read_dir(pack_dir().join("tests")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files.into_iter().filter(|f| f.is_file()) {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        // warrant's own case files; the Cedar CLI suite (an array) repeats their cases.
        if doc.is_array() {
            continue;
        }
        let docs = doc["entities"].as_array().cloned().unwrap_or_default();
        let store = bundle.entity_set(docs.clone()).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            let entity = |v: &Value| EntityRef {
                type_name: v["type"].as_str().unwrap().into(),
                id: v["id"].as_str().unwrap().into(),
                properties: None,
            };
            let mut query = Query {
                principal: entity(&case["principal"]),
                action: case["action"].as_str().unwrap().into(),
                resource: entity(&case["resource"]),
                context: case["context"].as_object().cloned().unwrap_or_default(),
                entities: Vec::new(),
                ..Query::default()
            };
            let whole = bundle.decide(&store, &query, now).unwrap();
            // Re-sending an unrelated stored entity forces the slice path
            // without changing any fact.
            let unrelated = docs.iter().find(|d| d["uid"]["type"] == "Analytics::Group").or(docs.first()).cloned();
            query.entities = unrelated.into_iter().collect();
            let sliced = bundle.decide(&store, &query, now).unwrap();
            assert_eq!(
                (whole.allowed, &whole.reasons, &whole.policies),
                (sliced.allowed, &sliced.reasons, &sliced.policies),
                "{}: {}",
                file.display(),
                case["name"]
            );
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} cases compared");
}

/// A kept slice is one of its entity set: when the stored entities change
/// (a new set), the same request with the same carried entities is decided
/// on the new facts, not on the slice kept from the old ones.
#[test]
fn a_kept_slice_never_outlives_its_entities() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.cedarschema"),
        "entity Group; entity User in [Group]; entity Doc { tag: String }; \
         action read appliesTo { principal: User, resource: Doc };",
    )
    .unwrap();
    std::fs::write(dir.path().join("p.cedar"), "permit (principal in Group::\"staff\", action, resource);").unwrap();
    let bundle = Bundle::load_dir(dir.path()).unwrap();
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let ann = |groups: &[&str]| {
        let parents: Vec<Value> = groups.iter().map(|g| serde_json::json!({"type": "Group", "id": g})).collect();
        vec![
            serde_json::json!({"uid": {"type": "User", "id": "ann"}, "attrs": {}, "parents": parents}),
            serde_json::json!({"uid": {"type": "Group", "id": "staff"}, "attrs": {}, "parents": []}),
        ]
    };
    let query = Query {
        principal: EntityRef { type_name: "User".into(), id: "ann".into(), properties: None },
        action: "read".into(),
        resource: EntityRef { type_name: "Doc".into(), id: "d1".into(), properties: None },
        // The document travels with the request: the slice path.
        entities: vec![serde_json::json!({"uid": {"type": "Doc", "id": "d1"}, "attrs": {"tag": "x"}, "parents": []})],
        ..Query::default()
    };
    let member = bundle.entity_set(ann(&["staff"])).unwrap();
    for _ in 0..2 {
        assert!(bundle.decide(&member, &query, now).unwrap().allowed, "ann is staff");
    }
    let left = bundle.entity_set(ann(&[])).unwrap();
    assert!(!bundle.decide(&left, &query, now).unwrap().allowed, "ann left staff: the kept slice must not answer");
    assert!(bundle.decide(&member, &query, now).unwrap().allowed, "the first set still decides as before");
}
