//! Search must list exactly what deciding each candidate allows. Over
//! generated policy sets (scopes, `in`, conditions on set, string, long,
//! boolean, optional and entity attributes, `!`, `||`, `if`, forbids, errors
//! from missing entities) and generated stores, every resource search and
//! subject search — indexed (partial evaluation + indexes) or not — equals
//! one `decide` per candidate.
//!
//! Searches also carry AuthZEN `properties` (on the given entity, and on the
//! searched-for type, for every candidate), `action.properties` and context
//! keys, some of them undeclared. The reference for those does not use the
//! engine's merging: it decides, without properties, over a store in which
//! the declared properties were written into the entities themselves, with
//! action properties written as the context's `action` record.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, BundleSource, EntityRef, Query, Search, SearchMode, SearchPath, Searched};

use crate::common::Rng;

pub(crate) const SCHEMA: &str = r#"namespace S {
    type Ctx = { flag?: Bool, "action"?: { soft?: Bool } };
    entity Group in [Group];
    entity User in [Group] = { roles: Set<String>, dept: String, level: Long, active: Bool, manager?: User };
    entity Folder in [Folder];
    entity Doc in [Folder] = {
        tags: Set<String>, owner: User, class: String, public: Bool, size: Long,
        readers: Set<User>, label?: String,
    };
    action read, edit appliesTo { principal: User, resource: Doc, context: Ctx };
}"#;

/// Users `u0..u5` exist; `u6` is searched for but never stored.
pub(crate) const USERS: u64 = 7;
const DOCS: u64 = 12;

fn condition(rng: &mut Rng) -> String {
    let k = rng.below(3);
    match rng.below(28) {
        26 => "context has action && context.action has soft && context.action.soft".into(),
        0 => "resource.tags.containsAny(principal.roles)".into(),
        1 => format!("resource.tags.contains(\"t{k}\")"),
        2 => format!("resource.tags.containsAll([\"t{k}\", \"t{}\"])", rng.below(3)),
        3 => format!("resource.class == \"c{k}\""),
        4 => format!("resource.class != \"c{k}\""),
        5 => "resource.public".into(),
        6 => format!("resource has label && resource.label == \"l{k}\""),
        7 => format!("resource in S::Folder::\"f{k}\""),
        8 => format!("resource == S::Doc::\"d{}\"", rng.below(DOCS)),
        9 => "resource.owner == principal".into(),
        10 => "resource.readers.contains(principal)".into(),
        // Dereferences the resource's owner: not indexed.
        11 => "resource.owner.dept == principal.dept".into(),
        12 => format!("resource.size > {}", rng.below(6)),
        13 => format!("{} <= resource.size", rng.below(6)),
        14 => format!("principal.level >= {}", rng.below(4)),
        15 => "principal.active".into(),
        16 => format!("principal in S::Group::\"g{k}\""),
        17 => format!("principal.roles.contains(\"t{k}\")"),
        18 => "context has flag && context.flag".into(),
        19 => format!("!(resource.tags.contains(\"t{k}\"))"),
        20 => format!("resource.public || resource.class == \"c{k}\""),
        21 => format!("if resource.public then resource.size < {k} else resource.tags.contains(\"t{k}\")"),
        // Errors where the user has no manager stored.
        22 => "principal has manager && principal.manager.level > 1".into(),
        // Mixing both sides under `||`, `!` and `if`: for the unstored
        // user, the principal's side is an error the other must not mask.
        23 => format!("principal.roles.contains(\"t{k}\") || resource.public"),
        24 => "!(principal.active && resource.public)".into(),
        25 => format!("if principal.level > {k} then resource.tags.contains(\"t{k}\") else resource.size > {k}"),
        _ => format!("resource is S::Doc in S::Folder::\"f{k}\""),
    }
}

pub(crate) fn policy(rng: &mut Rng, id: usize) -> String {
    let effect = if rng.below(3) == 0 { "forbid" } else { "permit" };
    let principal = match rng.below(5) {
        0 => format!("principal == S::User::\"u{}\"", rng.below(USERS)),
        1 => format!("principal in S::Group::\"g{}\"", rng.below(3)),
        _ => "principal".to_owned(),
    };
    let action = match rng.below(3) {
        0 => "action == S::Action::\"read\"",
        1 => "action == S::Action::\"edit\"",
        _ => "action",
    };
    let resource = match rng.below(5) {
        0 => format!("resource == S::Doc::\"d{}\"", rng.below(DOCS)),
        1 => format!("resource in S::Folder::\"f{}\"", rng.below(3)),
        _ => "resource".to_owned(),
    };
    let mut when = String::new();
    for _ in 0..rng.below(3) {
        let joiner = if rng.below(3) == 0 { "unless" } else { "when" };
        when.push_str(&format!(" {joiner} {{ {} }}", condition(rng)));
    }
    format!("@id(\"p{id}\")\n{effect} ({principal}, {action}, {resource}){when};\n")
}

fn uid(ty: &str, id: String) -> Value {
    json!({"__entity": {"type": ty, "id": id}})
}

pub(crate) fn entities(rng: &mut Rng) -> Vec<Value> {
    let mut docs = vec![
        json!({"uid": {"type": "S::Group", "id": "g0"}, "attrs": {}, "parents": [{"type": "S::Group", "id": "g2"}]}),
        json!({"uid": {"type": "S::Group", "id": "g1"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "S::Group", "id": "g2"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "S::Folder", "id": "f0"}, "attrs": {}, "parents": [{"type": "S::Folder", "id": "f2"}]}),
        json!({"uid": {"type": "S::Folder", "id": "f1"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "S::Folder", "id": "f2"}, "attrs": {}, "parents": []}),
    ];
    let set = |rng: &mut Rng, prefix: &str| -> Vec<String> {
        (0..3).filter(|_| rng.below(2) == 0).map(|i| format!("{prefix}{i}")).collect()
    };
    for u in 0..USERS - 1 {
        let mut attrs = json!({"roles": set(rng, "t"), "dept": format!("d{}", rng.below(2)),
                               "level": rng.below(4), "active": rng.below(2) == 0});
        if rng.below(2) == 0 {
            // Sometimes a manager that is not stored: reading it errors.
            attrs["manager"] = uid("S::User", format!("u{}", rng.below(USERS + 2)));
        }
        docs.push(json!({"uid": {"type": "S::User", "id": format!("u{u}")}, "attrs": attrs,
                         "parents": [{"type": "S::Group", "id": format!("g{}", rng.below(3))}]}));
    }
    for d in 0..DOCS {
        let readers: Vec<Value> =
            (0..USERS).filter(|_| rng.below(3) == 0).map(|u| uid("S::User", format!("u{u}"))).collect();
        let mut attrs = json!({"tags": set(rng, "t"), "owner": uid("S::User", format!("u{}", rng.below(USERS))),
                               "class": format!("c{}", rng.below(3)), "public": rng.below(2) == 0,
                               "size": rng.below(6), "readers": readers});
        if rng.below(2) == 0 {
            attrs["label"] = json!(format!("l{}", rng.below(3)));
        }
        let parents: Vec<Value> =
            (0..rng.below(3)).map(|_| json!({"type": "S::Folder", "id": format!("f{}", rng.below(3))})).collect();
        docs.push(json!({"uid": {"type": "S::Doc", "id": format!("d{d:02}")}, "attrs": attrs, "parents": parents}));
    }
    docs
}

fn entity(ty: &str, id: &str) -> EntityRef {
    EntityRef { type_name: ty.into(), id: id.into(), properties: None }
}

/// Attributes the schema declares, by type: the reference writes only these.
fn declared(ty: &str) -> &'static [&'static str] {
    match ty {
        "S::User" => &["roles", "dept", "level", "active", "manager"],
        _ => &["tags", "owner", "class", "public", "size", "readers", "label"],
    }
}

/// What one `decide` per candidate allows: the reference. Properties are
/// written into a copy of the store (the given entity's, and the searched-for
/// side's into that candidate only), not merged by the engine.
fn decided(bundle: &Bundle, docs: &[Value], search: &Search, searched: Searched) -> Vec<String> {
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let (ty, candidate_side) = match searched {
        Searched::Resources => ("S::Doc", &search.resource),
        Searched::Subjects => ("S::User", &search.subject),
    };
    let written = |candidate: Option<&str>| {
        let mut docs = docs.to_vec();
        for doc in &mut docs {
            let (doc_ty, doc_id) =
                (doc["uid"]["type"].as_str().unwrap().to_owned(), doc["uid"]["id"].as_str().unwrap().to_owned());
            let is = |e: &EntityRef, id: &str| format!("S::{}", e.type_name) == doc_ty && id == doc_id;
            let properties = [&search.subject, &search.resource]
                .into_iter()
                .find(|e| !e.id.is_empty() && is(e, &e.id))
                .or_else(|| candidate.filter(|id| is(candidate_side, id)).map(|_| candidate_side))
                .and_then(|e| e.properties.as_ref());
            for (name, value) in properties.into_iter().flatten() {
                if declared(&doc_ty).contains(&name.as_str()) {
                    doc["attrs"][name] = value.clone();
                }
            }
        }
        bundle.entity_set(docs).unwrap()
    };
    let shared = written(None);
    let mut context = search.context.clone();
    context.remove("undeclared");
    if let Some(soft) = search.action_properties.as_ref().and_then(|p| p.get("soft")) {
        context.insert("action".into(), json!({"soft": soft}));
    }
    let plain =
        |e: &EntityRef, id: &str| EntityRef { type_name: e.type_name.clone(), id: id.to_owned(), properties: None };
    shared
        .ids_of_type(ty)
        .iter()
        .filter(|id| {
            let own;
            let store = if candidate_side.properties.is_some() {
                own = written(Some(id));
                &own
            } else {
                &shared
            };
            let (principal, resource) = match searched {
                Searched::Resources => (plain(&search.subject, &search.subject.id), plain(&search.resource, id)),
                Searched::Subjects => (plain(&search.subject, id), plain(&search.resource, &search.resource.id)),
            };
            let query = Query {
                principal,
                action: search.action.clone(),
                resource,
                context: context.clone(),
                ..Query::default()
            };
            let decision = bundle.decide(store, &query, now).unwrap();
            assert!(decision.ignored.is_empty(), "the reference sends only declared names");
            decision.allowed
        })
        .cloned()
        .collect()
}

/// Sometimes properties for an entity of `ty`: declared ones with random
/// values, and sometimes one the schema does not declare.
fn properties(rng: &mut Rng, ty: &str) -> Option<serde_json::Map<String, Value>> {
    if rng.below(4) != 0 {
        return None;
    }
    let mut p = serde_json::Map::new();
    let k = rng.below(3);
    match ty {
        "User" => {
            match rng.below(3) {
                0 => p.insert("level".into(), json!(rng.below(4))),
                1 => p.insert("active".into(), json!(rng.below(2) == 0)),
                _ => p.insert("roles".into(), json!([format!("t{k}")])),
            };
        }
        _ => {
            match rng.below(3) {
                0 => p.insert("public".into(), json!(rng.below(2) == 0)),
                1 => p.insert("class".into(), json!(format!("c{k}"))),
                _ => p.insert("size".into(), json!(rng.below(6))),
            };
        }
    }
    if rng.below(3) == 0 {
        p.insert("undeclared".into(), json!("ignored"));
    }
    Some(p)
}

#[test]
fn searches_equal_one_decision_per_candidate() {
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut compared, mut indexed, mut found, mut with_properties) = (0, 0, 0, 0);
    for _ in 0..150 {
        let count = 1 + rng.below(6) as usize;
        let text: String = (0..count).map(|i| policy(&mut rng, i)).collect();
        let files =
            BTreeMap::from([("s.cedarschema".to_owned(), SCHEMA.to_owned()), ("p.cedar".to_owned(), text.clone())]);
        let bundle = Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let docs = entities(&mut rng);
        let store = bundle.entity_set(docs.clone()).unwrap();
        for action in ["read", "edit"] {
            let mut context = serde_json::Map::new();
            if rng.below(2) == 0 {
                context.insert("flag".into(), json!(rng.below(2) == 0));
            }
            if rng.below(4) == 0 {
                context.insert("undeclared".into(), json!(1));
            }
            let action_properties = match rng.below(4) {
                0 => Some(serde_json::Map::from_iter([("soft".to_owned(), json!(rng.below(2) == 0))])),
                1 => Some(serde_json::Map::from_iter([("hard".to_owned(), json!(true))])),
                _ => None,
            };
            let mut searches = Vec::new();
            for u in 0..USERS {
                // `u6` is not stored: properties would make it an entity
                // missing required attributes (a 400 in both).
                let given = if u < USERS - 1 { properties(&mut rng, "User") } else { None };
                let search = Search {
                    subject: EntityRef { properties: given, ..entity("User", &format!("u{u}")) },
                    action: action.into(),
                    action_properties: action_properties.clone(),
                    resource: EntityRef {
                        type_name: "Doc".into(),
                        properties: properties(&mut rng, "Doc"),
                        ..Default::default()
                    },
                    context: context.clone(),
                    ..Search::default()
                };
                searches.push((search, Searched::Resources));
            }
            for d in 0..DOCS {
                let search = Search {
                    subject: EntityRef {
                        type_name: "User".into(),
                        properties: properties(&mut rng, "User"),
                        ..Default::default()
                    },
                    action: action.into(),
                    action_properties: action_properties.clone(),
                    resource: EntityRef {
                        properties: properties(&mut rng, "Doc"),
                        ..entity("Doc", &format!("d{d:02}"))
                    },
                    context: context.clone(),
                    ..Search::default()
                };
                searches.push((search, Searched::Subjects));
            }
            for (search, searched) in searches {
                let reference = decided(&bundle, &docs, &search, searched);
                for mode in [SearchMode::Auto, SearchMode::EveryCandidate] {
                    let answer = bundle.search_entities(&store, &search, searched, mode, now).unwrap();
                    assert_eq!(answer.ids, reference, "{mode:?} {searched:?} {action} {search:?}\npolicies:\n{text}");
                    if mode == SearchMode::Auto {
                        with_properties +=
                            usize::from(search.subject.properties.is_some() || search.resource.properties.is_some());
                        indexed += usize::from(answer.path == SearchPath::Indexed);
                        found += usize::from(!answer.ids.is_empty());
                        compared += 1;
                    }
                }
            }
        }
    }
    // Both paths, properties, and non-empty answers, must be exercised.
    assert!(with_properties > compared / 4, "with properties {with_properties} of {compared}");
    assert!(indexed > compared / 4, "indexed {indexed} of {compared}");
    assert!(indexed < compared, "every search was indexed: the fallback went untested");
    assert!(found > compared / 5 && found < compared * 9 / 10, "non-empty {found} of {compared}");
}
