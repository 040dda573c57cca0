//! Policy impact must report exactly the requests whose answers change.
//! The reference decides every principal × resource pair of the store
//! under both bundles; the impact report, which decides only the pairs an
//! unmatched policy touches, must list the same flips.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use warrant_engine::impact::{Compared, Flip, Impact};
use warrant_engine::{Bundle, BundleSource, EntityRef, EntitySet, Query, Timestamp};

use crate::common::Rng;
use crate::search_differential::{SCHEMA, entities, policy};

fn now() -> Timestamp {
    Timestamp::parse("2026-06-01T00:00:00Z").unwrap()
}

/// Every flip between `before` and `after`, one decision per pair per
/// bundle over every action and type pair the after schema allows.
fn brute_force(
    before: (&Bundle, &EntitySet),
    after: (&Bundle, &EntitySet),
) -> BTreeSet<(String, String, String, bool)> {
    let mut flips = BTreeSet::new();
    for action in after.0.actions() {
        for p_type in types(after.1) {
            for r_type in types(after.1) {
                if !after.0.action_applies_to(&action, &p_type, &r_type) {
                    continue;
                }
                for p in after.1.ids_of_type(&p_type) {
                    for r in after.1.ids_of_type(&r_type) {
                        let query = Query {
                            principal: EntityRef { type_name: p_type.clone(), id: p.clone(), properties: None },
                            action: action.clone(),
                            resource: EntityRef { type_name: r_type.clone(), id: r.clone(), properties: None },
                            ..Query::default()
                        };
                        let old = before.0.decide(before.1, &query, now()).unwrap();
                        let new = after.0.decide(after.1, &query, now()).unwrap();
                        if old.allowed != new.allowed {
                            let action = action
                                .rsplit_once("::")
                                .map_or(action.clone(), |(_, id)| id.trim_matches('"').to_owned());
                            flips.insert((format!("{p_type}::{p:?}"), action, format!("{r_type}::{r:?}"), new.allowed));
                        }
                    }
                }
            }
        }
    }
    flips
}

/// The entity types of the store, qualified.
fn types(entities: &EntitySet) -> Vec<String> {
    let mut types: BTreeSet<String> = BTreeSet::new();
    for ty in [
        "S::User",
        "S::Doc",
        "S::Group",
        "S::Folder",
        "Analytics::User",
        "Analytics::Project",
        "Analytics::Connection",
        "Analytics::Token",
        "Analytics::Service",
        "Analytics::CellOutput",
        "Analytics::CacheEntry",
        "Analytics::Schema",
        "Analytics::Table",
        "Analytics::Group",
    ] {
        if !entities.ids_of_type(ty).is_empty() {
            types.insert(ty.to_owned());
        }
    }
    types.into_iter().collect()
}

fn reported(impact: &Impact) -> BTreeSet<(String, String, String, bool)> {
    let flips: Vec<&Flip> = impact.actions.iter().flat_map(|a| &a.examples).collect();
    flips.iter().map(|f| (f.principal.clone(), f.action.clone(), f.resource.clone(), f.allowed)).collect()
}

fn bundle(files: &[(&str, &str)]) -> Bundle {
    let files: BTreeMap<String, String> = files.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect();
    Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn generated_changes_report_exactly_the_flips_deciding_every_pair_finds() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut with_flips, mut narrowed) = (0, 0);
    for round in 0..120 {
        let count = 1 + rng.below(5) as usize;
        let mut policies: Vec<String> = (0..count).map(|i| policy(&mut rng, i)).collect();
        let before_text: String = policies.concat();
        // Edit: add, drop or replace one policy (ids stay unique).
        match rng.below(3) {
            0 => policies.push(policy(&mut rng, 100 + round)),
            1 if policies.len() > 1 => {
                let i = rng.below(policies.len() as u64) as usize;
                policies.remove(i);
            }
            _ => {
                let i = rng.below(policies.len() as u64) as usize;
                policies[i] = policy(&mut rng, 200 + round);
            }
        }
        let after_text: String = policies.concat();
        let before = bundle(&[("s.cedarschema", SCHEMA), ("p.cedar", &before_text)]);
        let after = bundle(&[("s.cedarschema", SCHEMA), ("p.cedar", &after_text)]);
        let docs = entities(&mut rng);
        let (b_store, a_store) = (before.entity_set(docs.clone()).unwrap(), after.entity_set(docs).unwrap());
        let impact = before.impact(&b_store, &after, &a_store, now(), usize::MAX);
        let expected = brute_force((&before, &b_store), (&after, &a_store));
        assert_eq!(reported(&impact), expected, "before:\n{before_text}\nafter:\n{after_text}");
        let permitted = expected.iter().filter(|f| f.3).count();
        assert_eq!((impact.newly_permitted, impact.newly_denied), (permitted, expected.len() - permitted));
        with_flips += usize::from(!expected.is_empty());
        // The work must track the pairs that can differ: fewer decided
        // than every pair of both actions (7 users × 12 docs × 2), often.
        narrowed += usize::from(impact.decided < 7 * 12 * 2);
    }
    assert!(with_flips > 30, "only {with_flips} rounds changed an answer");
    assert!(narrowed > 60, "only {narrowed} rounds decided fewer pairs than every pair");
}

/// The pack, with the entities of its tests (first definition of a uid wins).
fn pack() -> (BundleSource, Vec<Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let source = BundleSource::read_dir(&dir).unwrap();
    let mut seen = BTreeSet::new();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // warrant's own test files; the Cedar CLI suite (an array) shares their entities.
        let Some(entities) = file.get("entities").and_then(Value::as_array) else { continue };
        for doc in entities {
            if seen.insert((doc["uid"]["type"].to_string(), doc["uid"]["id"].to_string())) {
                docs.push(doc.clone());
            }
        }
    }
    (source, docs)
}

fn with(source: &BundleSource, path: &str, text: impl FnOnce(&str) -> String) -> Bundle {
    let mut files = source.to_files();
    let old = files.get(path).cloned().unwrap_or_default();
    files.insert(path.to_owned(), text(&old));
    Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn one_added_permit_on_the_pack_shows_exactly_the_requests_it_newly_allows() {
    let (source, docs) = pack();
    let before = Bundle::load(source.clone()).unwrap();
    let after = with(&source, "connections.cedar", |text| {
        format!(
            "{text}\n// Workspace admins may switch roles on any OAuth connection.\n\
             permit (principal, action == Analytics::Action::\"switch_role\", resource)\n\
             when {{ principal.workspace_role == \"admin\" && resource.auth_type == \"oauth\" }};\n"
        )
    });
    let (b_store, a_store) = (before.entity_set(docs.clone()).unwrap(), after.entity_set(docs).unwrap());
    let impact = before.impact(&b_store, &after, &a_store, now(), usize::MAX);
    let expected = brute_force((&before, &b_store), (&after, &a_store));
    assert!(!expected.is_empty(), "the change must allow something new over the test entities");
    assert!(expected.iter().all(|f| f.3 && f.1 == "switch_role"));
    assert_eq!(reported(&impact), expected);
    assert_eq!((impact.newly_permitted, impact.newly_denied), (expected.len(), 0));
    let switch_role = impact.actions.iter().find(|a| a.action == "switch_role").unwrap();
    assert_eq!(switch_role.compared, Compared::ChangedPolicies);
    let added = format!("+connections.cedar#{}", source_policies(&source, "connections.cedar"));
    assert_eq!(switch_role.changed_policies, std::slice::from_ref(&added));
    assert_eq!(switch_role.by_policy.len(), 1, "{:?}", switch_role.by_policy);
    assert_eq!(switch_role.by_policy[0].policy, added[1..]);
    // Every other action kept its policies: nothing decided there.
    for other in impact.actions.iter().filter(|a| a.action != "switch_role") {
        assert_eq!((other.compared, other.decided), (Compared::Unchanged, 0), "{}", other.action);
    }
    // `switch_role`'s policies read a context key the store cannot supply.
    assert!(impact.not_covered.iter().any(|n| n.action == "switch_role" && n.context_keys == ["role"]));
}

/// How many policies a file of the source holds (the next one's index).
fn source_policies(source: &BundleSource, path: &str) -> usize {
    let text = source.files().find(|(p, _)| *p == path).unwrap().1;
    cedar_policy_count(text)
}

fn cedar_policy_count(text: &str) -> usize {
    text.parse::<cedar_policy::PolicySet>().unwrap().policies().count()
}

#[test]
fn a_refactoring_of_the_pack_reports_no_flip() {
    let (source, docs) = pack();
    let before = Bundle::load(source.clone()).unwrap();
    // Every policy of notebook.cedar moves to another file, reformatted on
    // one line each, and `a == b` tests turned round: same meaning, other
    // text, other ids.
    let notebook = source.files().find(|(p, _)| *p == "notebook.cedar").unwrap().1.to_owned();
    let set: cedar_policy::PolicySet = notebook.parse().unwrap();
    let moved: String = set
        .policies()
        .map(|p| {
            let text = p.to_string().replace('\n', " ");
            format!("{}\n", text.replace("resource.owner == principal", "principal == resource.owner"))
        })
        .collect();
    let mut files = source.to_files();
    files.remove("notebook.cedar");
    files.insert("moved.cedar".to_owned(), moved.clone());
    let after = Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{e}\n{moved}"));
    let (b_store, a_store) = (before.entity_set(docs.clone()).unwrap(), after.entity_set(docs).unwrap());
    let impact = before.impact(&b_store, &after, &a_store, now(), usize::MAX);
    assert_eq!((impact.newly_permitted, impact.newly_denied), (0, 0), "{:?}", reported(&impact));
    // The turned-round tests changed the text of policies: those were
    // decided, and zero is an answer, not an assumption.
    let decided: Vec<&str> = impact.actions.iter().filter(|a| a.decided > 0).map(|a| a.action.as_str()).collect();
    assert!(decided.contains(&"view_notebook"), "{decided:?}");
    let view = impact.actions.iter().find(|a| a.action == "view_notebook").unwrap();
    assert_eq!(view.changed_policies, ["-R1.view_notebook.member", "+R1.view_notebook.member"]);
    // Policies moved to another file unchanged match by meaning.
    let view_cell = impact.actions.iter().find(|a| a.action == "view_cell_output").unwrap();
    assert!(moved.contains("view_cell_output"));
    assert_eq!((view_cell.compared, view_cell.decided), (Compared::Unchanged, 0));
}

/// A logged decision whose redacted input matters is not replayable; one
/// whose redacted input no policy reads, or with no redaction, is.
#[test]
fn a_record_whose_redacted_input_the_policies_read_is_not_replayable() {
    let schema = r#"namespace S {
        type Ctx = { surface?: String, note?: String };
        entity User; entity Doc;
        action read appliesTo { principal: User, resource: Doc, context: Ctx };
    }"#;
    let before = bundle(&[("s.cedarschema", schema), ("p.cedar", "permit (principal, action, resource);")]);
    let after = bundle(&[
        ("s.cedarschema", schema),
        (
            "p.cedar",
            "permit (principal, action, resource);\nforbid (principal, action, resource) when { context has surface && context.surface == \"app\" };",
        ),
    ]);
    let docs = vec![
        serde_json::json!({"uid": {"type": "S::User", "id": "ann"}, "attrs": {}, "parents": []}),
        serde_json::json!({"uid": {"type": "S::Doc", "id": "d1"}, "attrs": {}, "parents": []}),
    ];
    let (b, a) = (before.entity_set(docs.clone()).unwrap(), after.entity_set(docs).unwrap());
    let record = |seq: u64, context: Value| -> warrant_engine::Record {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "ts": "2026-06-01T00:00:00.000Z", "kind": "decision", "actor": "User::ann",
            "decision": "allow", "details": {"action": "read", "resource": "S::Doc::d1", "context": context},
            "key_id": "k", "prev_mac": "00", "mac": "00"
        }))
        .unwrap()
    };
    let records = [
        record(1, serde_json::json!({"surface": "app"})),
        record(2, serde_json::json!({"surface": "[REDACTED]"})),
        record(3, serde_json::json!({"surface": "notebook", "note": "hmac-sha256:00"})),
    ];
    let replay = before.replay(&b, &after, &a, &records, 10);
    assert_eq!((replay.replayed, replay.not_replayable), (2, 1), "{replay:?}");
    assert_eq!(replay.not_replayable_examples[0].seq, 2);
    assert!(replay.not_replayable_examples[0].reason.contains("context.surface"));
    assert_eq!((replay.newly_denied, replay.newly_permitted, replay.drifted), (1, 0, 0));
    assert_eq!(replay.examples[0].seq, 1);
    assert_eq!(replay.examples[0].principal, "User::\"ann\"");
}
