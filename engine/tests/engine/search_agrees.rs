//! Search agrees with evaluation on the same inputs (issue 20). Over the
//! policy pack (the store of each of its policy test files) and the AuthZEN
//! certification fixture, random searches carrying `properties` (on the
//! given entity and on the searched-for type), `action.properties` and
//! context keys, some of them undeclared, list exactly the resources,
//! subjects and actions that one evaluation each, with the same inputs,
//! allows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use warrant_engine::{Bundle, EntityRef, EntitySet, Query, Search, Timestamp};

use crate::common::Rng;

/// A request from a policy test file: action, principal and resource
/// `(type, id)`, context.
struct Seed {
    action: String,
    principal: (String, String),
    resource: (String, String),
    context: Map<String, Value>,
}

/// A store and the requests to vary over it.
struct World {
    name: String,
    bundle: Bundle,
    store: EntitySet,
    docs: Vec<Value>,
    seeds: Vec<Seed>,
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn worlds() -> Vec<World> {
    let mut worlds = Vec::new();
    for dir in ["policies", "tests/fixtures/authzen-certification"] {
        let dir = repo(dir);
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir.join("tests")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let base = if dir.join("entities.json").exists() { read(&dir.join("entities.json")) } else { json!([]) };
        for file in files.into_iter().filter(|f| f.is_file()) {
            let bundle = Bundle::load_dir(&dir).unwrap();
            let cases = read(&file);
            // warrant's own case files; the Cedar CLI suite (an array) repeats their cases.
            if cases.is_array() {
                continue;
            }
            let docs: Vec<Value> = cases.get("entities").and_then(Value::as_array).cloned().unwrap_or_default();
            let store = bundle.entity_set(docs.clone()).unwrap();
            let all_docs = base.as_array().unwrap().iter().cloned().chain(docs).collect();
            let side = |c: &Value| (c["type"].as_str().unwrap().to_owned(), c["id"].as_str().unwrap().to_owned());
            let seeds = cases["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| Seed {
                    action: c["action"].as_str().unwrap().to_owned(),
                    principal: side(&c["principal"]),
                    resource: side(&c["resource"]),
                    context: c.get("context").and_then(Value::as_object).cloned().unwrap_or_default(),
                })
                .collect();
            worlds.push(World { name: file.display().to_string(), bundle, store, docs: all_docs, seeds });
        }
    }
    worlds
}

/// Attribute values seen on stored entities of `ty` (qualified), by name.
fn attribute_values(docs: &[Value], ty: &str) -> BTreeMap<String, Vec<Value>> {
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for doc in docs.iter().filter(|d| d["uid"]["type"] == ty) {
        for (name, value) in doc["attrs"].as_object().into_iter().flatten() {
            values.entry(name.clone()).or_default().push(value.clone());
        }
    }
    values
}

/// Sometimes properties for an entity of `ty`: stored values of other
/// entities of the type (so they change decisions), sometimes an
/// undeclared name too.
fn properties(rng: &mut Rng, docs: &[Value], ty: &str) -> Option<Map<String, Value>> {
    if rng.below(2) == 0 {
        return None;
    }
    let values = attribute_values(docs, ty);
    let mut properties = Map::new();
    for (name, seen) in &values {
        if rng.below(3) == 0 {
            properties.insert(name.clone(), seen[rng.below(seen.len() as u64) as usize].clone());
        }
    }
    if rng.below(4) == 0 {
        properties.insert("not_declared".into(), json!("x"));
    }
    Some(properties)
}

fn entity(type_name: &str, id: &str, properties: Option<Map<String, Value>>) -> EntityRef {
    EntityRef { type_name: type_name.to_owned(), id: id.to_owned(), properties }
}

#[test]
fn searches_list_what_evaluation_allows_with_the_same_properties() {
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut compared, mut with_properties, mut non_empty) = (0, 0, 0);
    for world in worlds() {
        let World { name, bundle, store, docs, seeds } = &world;
        let qualified = |ty: &str| bundle.entity_type(ty).unwrap();
        for _ in 0..30 {
            let seed = &seeds[rng.below(seeds.len() as u64) as usize];
            let (p_ty, r_ty) = (qualified(&seed.principal.0), qualified(&seed.resource.0));
            let given_p = properties(&mut rng, docs, &p_ty);
            let given_r = properties(&mut rng, docs, &r_ty);
            let candidate_p = properties(&mut rng, docs, &p_ty);
            let candidate_r = properties(&mut rng, docs, &r_ty);
            let action_properties = match rng.below(3) {
                0 => Some(Map::from_iter([("soft".to_owned(), json!(rng.below(2) == 0))])),
                _ => None,
            };
            let mut context = seed.context.clone();
            if rng.below(3) == 0 {
                context.insert("ip".into(), json!("192.168.1.1"));
            }
            let decide = |principal: EntityRef, action: &str, resource: EntityRef, action_properties| {
                let query = Query {
                    principal,
                    action: action.to_owned(),
                    action_properties,
                    resource,
                    context: context.clone(),
                    ..Query::default()
                };
                bundle.decide(store, &query, now)
            };
            with_properties += usize::from(given_p.is_some() || candidate_r.is_some());

            // Resources the principal may act on.
            let search = Search {
                subject: entity(&seed.principal.0, &seed.principal.1, given_p.clone()),
                action: seed.action.clone(),
                action_properties: action_properties.clone(),
                resource: entity(&seed.resource.0, "", candidate_r.clone()),
                context: context.clone(),
                ..Search::default()
            };
            let decisions: Vec<_> = store
                .ids_of_type(&r_ty)
                .iter()
                .map(|id| {
                    let principal = entity(&seed.principal.0, &seed.principal.1, given_p.clone());
                    let d = decide(
                        principal,
                        &seed.action,
                        entity(&seed.resource.0, id, candidate_r.clone()),
                        action_properties.clone(),
                    );
                    (id.clone(), d)
                })
                .collect();
            compare(name, &search, bundle.search_resources(store, &search, now), &decisions, &mut non_empty);

            // Subjects that may act on the resource.
            let search = Search {
                subject: entity(&seed.principal.0, "", candidate_p.clone()),
                action: seed.action.clone(),
                action_properties: action_properties.clone(),
                resource: entity(&seed.resource.0, &seed.resource.1, given_r.clone()),
                context: context.clone(),
                ..Search::default()
            };
            let decisions: Vec<_> = store
                .ids_of_type(&p_ty)
                .iter()
                .map(|id| {
                    let resource = entity(&seed.resource.0, &seed.resource.1, given_r.clone());
                    let d = decide(
                        entity(&seed.principal.0, id, candidate_p.clone()),
                        &seed.action,
                        resource,
                        action_properties.clone(),
                    );
                    (id.clone(), d)
                })
                .collect();
            compare(name, &search, bundle.search_subjects(store, &search, now), &decisions, &mut non_empty);

            // Actions the principal may take on the resource (no action properties).
            let search = Search {
                subject: entity(&seed.principal.0, &seed.principal.1, given_p.clone()),
                resource: entity(&seed.resource.0, &seed.resource.1, given_r.clone()),
                context: context.clone(),
                ..Search::default()
            };
            let mut allowed: Vec<String> = bundle
                .actions()
                .into_iter()
                .filter(|action| bundle.action_applies_to(action, &seed.principal.0, &seed.resource.0))
                .filter(|action| {
                    let principal = entity(&seed.principal.0, &seed.principal.1, given_p.clone());
                    let resource = entity(&seed.resource.0, &seed.resource.1, given_r.clone());
                    decide(principal, action, resource, None).is_ok_and(|d| d.allowed)
                })
                .map(|action| {
                    action.rsplit_once("Action::").map_or(action.clone(), |(_, id)| id.trim_matches('"').to_owned())
                })
                .collect();
            allowed.sort();
            assert_eq!(bundle.search_actions(store, &search, now).unwrap(), allowed, "{name}: {search:?}");
            compared += 3;
        }
    }
    assert!(compared >= 300, "compared {compared}");
    assert!(with_properties > compared / 6, "with properties {with_properties} of {compared}");
    assert!(non_empty > compared / 10, "non-empty {non_empty} of {compared}");
}

/// The search's answer against one decision per candidate: the allowed ids,
/// or, when some decision is refused (a property of the wrong type), an
/// error from the search too.
fn compare(
    world: &str,
    search: &Search,
    answer: Result<Vec<String>, warrant_engine::RequestError>,
    decisions: &[(String, Result<warrant_engine::Decision, warrant_engine::RequestError>)],
    non_empty: &mut usize,
) {
    if decisions.iter().any(|(_, d)| d.is_err()) {
        assert!(answer.is_err(), "{world}: evaluation refuses, the search answered {answer:?}: {search:?}");
        return;
    }
    let allowed: Vec<String> =
        decisions.iter().filter(|(_, d)| d.as_ref().is_ok_and(|d| d.allowed)).map(|(id, _)| id.clone()).collect();
    let answer = answer.unwrap_or_else(|e| panic!("{world}: {e}: {search:?}"));
    assert_eq!(answer, allowed, "{world}: {search:?}");
    *non_empty += usize::from(!answer.is_empty());
}
