//! Search must list exactly what deciding each candidate allows. Over
//! generated policy sets (scopes, `in`, conditions on set, string, long,
//! boolean, optional and entity attributes, `!`, `||`, `if`, forbids, errors
//! from missing entities) and generated stores, every resource search and
//! subject search — indexed (partial evaluation + indexes) or not — equals
//! one `decide` per candidate.

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
use warrant_engine::{Bundle, BundleSource, EntityRef, EntitySet, Query, Search, SearchMode, SearchPath, Searched};

use crate::common::Rng;

const SCHEMA: &str = r#"namespace S {
    type Ctx = { flag?: Bool };
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
const USERS: u64 = 7;
const DOCS: u64 = 12;

fn condition(rng: &mut Rng) -> String {
    let k = rng.below(3);
    match rng.below(27) {
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

fn policy(rng: &mut Rng, id: usize) -> String {
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

fn entities(rng: &mut Rng) -> Vec<Value> {
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

/// What one `decide` per candidate allows: the reference.
fn decided(bundle: &Bundle, store: &EntitySet, search: &Search, searched: Searched) -> Vec<String> {
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let ty = match searched {
        Searched::Resources => "S::Doc",
        Searched::Subjects => "S::User",
    };
    store
        .ids_of_type(ty)
        .iter()
        .filter(|id| {
            let (principal, resource) = match searched {
                Searched::Resources => (search.subject.clone(), entity("Doc", id)),
                Searched::Subjects => (entity("User", id), search.resource.clone()),
            };
            let query = Query {
                principal,
                action: search.action.clone(),
                resource,
                context: search.context.clone(),
                entities: Vec::new(),
            };
            bundle.decide(store, &query, now).unwrap().allowed
        })
        .cloned()
        .collect()
}

#[test]
fn searches_equal_one_decision_per_candidate() {
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut compared, mut indexed, mut found) = (0, 0, 0);
    for _ in 0..150 {
        let count = 1 + rng.below(6) as usize;
        let text: String = (0..count).map(|i| policy(&mut rng, i)).collect();
        let files =
            BTreeMap::from([("s.cedarschema".to_owned(), SCHEMA.to_owned()), ("p.cedar".to_owned(), text.clone())]);
        let bundle = Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let store = bundle.entity_set(entities(&mut rng)).unwrap();
        for action in ["read", "edit"] {
            let mut context = serde_json::Map::new();
            if rng.below(2) == 0 {
                context.insert("flag".into(), json!(rng.below(2) == 0));
            }
            let mut searches = Vec::new();
            for u in 0..USERS {
                let search = Search {
                    subject: entity("User", &format!("u{u}")),
                    action: action.into(),
                    resource: EntityRef { type_name: "Doc".into(), ..Default::default() },
                    context: context.clone(),
                };
                searches.push((search, Searched::Resources));
            }
            for d in 0..DOCS {
                let search = Search {
                    subject: EntityRef { type_name: "User".into(), ..Default::default() },
                    action: action.into(),
                    resource: entity("Doc", &format!("d{d:02}")),
                    context: context.clone(),
                };
                searches.push((search, Searched::Subjects));
            }
            for (search, searched) in searches {
                let reference = decided(&bundle, &store, &search, searched);
                for mode in [SearchMode::Auto, SearchMode::EveryCandidate] {
                    let answer = bundle.search_entities(&store, &search, searched, mode, now).unwrap();
                    assert_eq!(
                        answer.ids, reference,
                        "{mode:?} {searched:?} {action} subject {} resource {}\npolicies:\n{text}",
                        search.subject.id, search.resource.id
                    );
                    if mode == SearchMode::Auto {
                        indexed += usize::from(answer.path == SearchPath::Indexed);
                        found += usize::from(!answer.ids.is_empty());
                        compared += 1;
                    }
                }
            }
        }
    }
    // Both paths, and non-empty answers, must be exercised.
    assert!(indexed > compared / 2, "indexed {indexed} of {compared}");
    assert!(indexed < compared, "every search was indexed: the fallback went untested");
    assert!(found > compared / 5 && found < compared * 9 / 10, "non-empty {found} of {compared}");
}
