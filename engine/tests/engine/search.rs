//! AuthZEN resource search over the policy pack: exactly the schemas a user
//! may browse, among 10,000, computed per principal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::path::PathBuf;

use serde_json::{Value, json};
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, EntityRef, Query, Search};

const SCHEMAS: usize = 10_000;

fn pack() -> Bundle {
    Bundle::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap()
}

fn user(id: &str, roles: &[&str]) -> Value {
    json!({"uid": {"type": "Analytics::User", "id": id},
           "attrs": {"email": format!("{id}@example.com"), "workspace_role": "viewer", "is_support": false, "warehouse_roles": roles},
           "parents": []})
}

/// 10,000 schemas, schema `s{i}` granted role `R{i % 10}` (and `ADMIN_ALL` on every 7th).
fn workspace() -> Vec<Value> {
    let mut docs = vec![
        json!({"uid": {"type": "Analytics::Connection", "id": "c"}, "attrs": {"warehouse": "snowflake", "auth_type": "oauth", "grantees": []}}),
        user("analyst", &["R3"]),
        user("lead", &["R3", "ADMIN_ALL"]),
        user("nobody", &["r3"]),
    ];
    for i in 0..SCHEMAS {
        let mut roles = vec![format!("R{}", i % 10)];
        if i % 7 == 0 {
            roles.push("ADMIN_ALL".into());
        }
        docs.push(json!({"uid": {"type": "Analytics::Schema", "id": format!("s{i:05}")},
                         "attrs": {"connection": {"__entity": {"type": "Analytics::Connection", "id": "c"}}, "granted_roles": roles}}));
    }
    docs
}

fn search(bundle: &Bundle, set: &warrant_engine::EntitySet, who: &str) -> Vec<String> {
    let s = Search {
        subject: EntityRef { type_name: "User".into(), id: who.into(), properties: None },
        action: "browse_schema".into(),
        resource: EntityRef { type_name: "Schema".into(), ..EntityRef::default() },
        context: serde_json::Map::new(),
        ..Search::default()
    };
    bundle.search_resources(set, &s, Timestamp::now()).unwrap()
}

#[test]
fn lists_exactly_the_schemas_each_user_may_browse() {
    let bundle = pack();
    let set = bundle.entity_set(workspace()).unwrap();

    let analyst = search(&bundle, &set, "analyst");
    let expected: Vec<String> = (0..SCHEMAS).filter(|i| i % 10 == 3).map(|i| format!("s{i:05}")).collect();
    assert_eq!(analyst, expected);

    // A higher-privileged user sees more; the analyst's answer is unchanged
    // after computing it (no listing is shared across principals).
    let lead = search(&bundle, &set, "lead");
    let expected_lead: Vec<String> =
        (0..SCHEMAS).filter(|i| i % 10 == 3 || i % 7 == 0).map(|i| format!("s{i:05}")).collect();
    assert_eq!(lead, expected_lead);
    assert_eq!(search(&bundle, &set, "analyst"), expected);

    // Roles are case-sensitive; an unknown user sees nothing.
    assert!(search(&bundle, &set, "nobody").is_empty());
    assert!(search(&bundle, &set, "ghost").is_empty());
}

#[test]
fn search_agrees_with_one_decision_per_schema() {
    let bundle = pack();
    let set = bundle.entity_set(workspace().into_iter().take(503).collect()).unwrap();
    let listed = search(&bundle, &set, "lead");
    let decided: Vec<String> = set
        .ids_of_type("Analytics::Schema")
        .iter()
        .filter(|id| {
            let q = Query {
                principal: EntityRef { type_name: "User".into(), id: "lead".into(), properties: None },
                action: "browse_schema".into(),
                resource: EntityRef { type_name: "Schema".into(), id: (*id).clone(), properties: None },
                ..Query::default()
            };
            bundle.decide(&set, &q, Timestamp::now()).unwrap().allowed
        })
        .cloned()
        .collect();
    assert_eq!(listed, decided);
    assert!(!listed.is_empty());
}

#[test]
fn unknown_types_have_no_results() {
    let bundle = pack();
    let set = bundle.entity_set(workspace().into_iter().take(10).collect()).unwrap();
    let s = Search {
        subject: EntityRef { type_name: "User".into(), id: "lead".into(), properties: None },
        action: "browse_schema".into(),
        resource: EntityRef { type_name: "Warehouse".into(), ..EntityRef::default() },
        context: serde_json::Map::new(),
        ..Search::default()
    };
    assert!(bundle.search_resources(&set, &s, Timestamp::now()).unwrap().is_empty());
}

#[test]
fn browse_schema_is_answered_from_the_indexes() {
    let bundle = pack();
    let set = bundle.entity_set(workspace()).unwrap();
    let s = Search {
        subject: EntityRef { type_name: "User".into(), id: "lead".into(), properties: None },
        action: "browse_schema".into(),
        resource: EntityRef { type_name: "Schema".into(), ..Default::default() },
        context: serde_json::Map::new(),
        ..Search::default()
    };
    let now = Timestamp::now();
    let indexed = bundle
        .search_entities(&set, &s, warrant_engine::Searched::Resources, warrant_engine::SearchMode::Auto, now)
        .unwrap();
    let every = bundle
        .search_entities(&set, &s, warrant_engine::Searched::Resources, warrant_engine::SearchMode::EveryCandidate, now)
        .unwrap();
    assert_eq!(indexed.path, warrant_engine::SearchPath::Indexed);
    assert_eq!(every.path, warrant_engine::SearchPath::EveryCandidate);
    assert_eq!(indexed.ids, every.ids);
    assert!(!indexed.ids.is_empty());
}

#[test]
fn a_new_store_version_can_be_warmed_with_the_indexes_searches_used() {
    let bundle = pack();
    let before = bundle.entity_set(workspace()).unwrap();
    assert!(before.search_indexes().is_empty(), "nothing is built before a search");
    let lead = search(&bundle, &before, "lead");
    let built = before.search_indexes();
    assert_eq!(built, [("Analytics::Schema".to_owned(), vec!["granted_roles".to_owned()], false)]);

    let mut docs = workspace();
    docs.push(user("newcomer", &["R3"]));
    let after = bundle.entity_set(docs).unwrap();
    after.warm_search_like(&before);
    assert_eq!(after.search_indexes(), built, "the same indexes, built for the new version");
    assert_eq!(search(&bundle, &after, "lead"), lead);
    assert_eq!(search(&bundle, &after, "newcomer"), search(&bundle, &after, "analyst"));
}
