//! The policy index (slicing by action, then by principal and resource
//! scope literals for large slices) must not change any answer: over
//! generated schemas-worth of policies (action groups, `in` scopes, `==`
//! scopes, unscoped policies, conditions that error, templates linked from
//! `links.json`) and generated
//! requests, warrant's decision equals cedar-policy's over the whole set —
//! same decision, same determining policies, same errors (with warrant's
//! one deliberate difference applied: a forbid that errors denies).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityUid, PolicySet, Request, Schema,
};
use serde_json::json;
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, BundleSource, EntityRef, Query};

use crate::common::Rng;

const SCHEMA: &str = r#"namespace D {
    type Ctx = { now: datetime, flag?: Bool };
    entity Group in [Group];
    entity User in [Group] = { level: Long };
    entity Folder in [Folder];
    entity Doc in [Folder] = { owner: User, locked: Bool, secret?: User };
    action all;
    action readers in [all];
    action read, list in [readers] appliesTo { principal: User, resource: Doc, context: Ctx };
    action write in [all] appliesTo { principal: User, resource: Doc, context: Ctx };
    action share appliesTo { principal: User, resource: Doc, context: Ctx };
}"#;

const ACTIONS: [&str; 4] = ["read", "list", "write", "share"];

fn policy(rng: &mut Rng, id: usize) -> String {
    let effect = if rng.below(3) == 0 { "forbid" } else { "permit" };
    let principal = match rng.below(4) {
        0 => format!("principal == D::User::\"u{}\"", rng.below(6)),
        1 => format!("principal in D::Group::\"g{}\"", rng.below(3)),
        _ => "principal".to_owned(),
    };
    let action = match rng.below(6) {
        0 => "action".to_owned(),
        1 => format!("action == D::Action::\"{}\"", rng.pick(&ACTIONS)),
        2 => format!("action in [D::Action::\"{}\", D::Action::\"{}\"]", rng.pick(&ACTIONS), rng.pick(&ACTIONS)),
        3 => "action in D::Action::\"readers\"".to_owned(),
        4 => "action in D::Action::\"all\"".to_owned(),
        _ => format!("action in [D::Action::\"readers\", D::Action::\"{}\"]", rng.pick(&ACTIONS)),
    };
    let resource = match rng.below(4) {
        0 => format!("resource == D::Doc::\"d{}\"", rng.below(6)),
        1 => format!("resource in D::Folder::\"f{}\"", rng.below(3)),
        _ => "resource".to_owned(),
    };
    let condition = match rng.below(6) {
        0 => " when { resource.owner == principal }".to_owned(),
        1 => format!(" when {{ principal.level > {} }}", rng.below(4)),
        2 => " unless { resource.locked }".to_owned(),
        // Errors when the secret names a user that does not exist.
        3 => " when { resource has secret && resource.secret.level > 1 }".to_owned(),
        4 => " when { context has flag && context.flag }".to_owned(),
        _ => String::new(),
    };
    format!("@id(\"p{id}\") @reason(\"r{id}\")\n{effect} ({principal}, {action}, {resource}){condition};\n")
}

/// A template with `?principal` and/or `?resource` slots, and links to it
/// (as `links.json` entries).
fn template(rng: &mut Rng, id: usize) -> (String, Vec<serde_json::Value>) {
    let effect = if rng.below(3) == 0 { "forbid" } else { "permit" };
    let (principal, principal_slot) = match rng.below(3) {
        0 => ("principal == ?principal", Some(("D::User", "u", 7))),
        1 => ("principal in ?principal", Some(("D::Group", "g", 3))),
        _ => ("principal", None),
    };
    let (resource, resource_slot) = match rng.below(3) {
        0 => ("resource == ?resource", Some(("D::Doc", "d", 7))),
        1 => ("resource in ?resource", Some(("D::Folder", "f", 3))),
        // A template needs a slot.
        _ if principal_slot.is_none() => ("resource in ?resource", Some(("D::Folder", "f", 3))),
        _ => ("resource", None),
    };
    let action = match rng.below(3) {
        0 => format!("action == D::Action::\"{}\"", rng.pick(&ACTIONS)),
        1 => "action in D::Action::\"readers\"".to_owned(),
        _ => "action".to_owned(),
    };
    let condition = match rng.below(3) {
        0 => " when { resource.owner == principal }",
        1 => " unless { resource.locked }",
        _ => "",
    };
    let text =
        format!("@id(\"t{id}\") @reason(\"rt{id}\")\n{effect} ({principal}, {action}, {resource}){condition};\n");
    let links = (0..rng.below(12))
        .map(|n| {
            let mut values = serde_json::Map::new();
            for (slot, fill) in [("?principal", principal_slot), ("?resource", resource_slot)] {
                if let Some((ty, prefix, count)) = fill {
                    values.insert(slot.into(), json!({"type": ty, "id": format!("{prefix}{}", rng.below(count))}));
                }
            }
            json!({"id": format!("t{id}-link{n}"), "template": format!("t{id}"), "values": values})
        })
        .collect();
    (text, links)
}

fn entities(rng: &mut Rng) -> serde_json::Value {
    let mut docs = vec![
        json!({"uid": {"type": "D::Group", "id": "g0"}, "attrs": {}, "parents": [{"type": "D::Group", "id": "g2"}]}),
        json!({"uid": {"type": "D::Group", "id": "g1"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "D::Group", "id": "g2"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "D::Folder", "id": "f0"}, "attrs": {}, "parents": [{"type": "D::Folder", "id": "f2"}]}),
        json!({"uid": {"type": "D::Folder", "id": "f1"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "D::Folder", "id": "f2"}, "attrs": {}, "parents": []}),
    ];
    for u in 0..6 {
        docs.push(json!({"uid": {"type": "D::User", "id": format!("u{u}")}, "attrs": {"level": rng.below(4)},
                         "parents": [{"type": "D::Group", "id": format!("g{}", rng.below(3))}]}));
    }
    for d in 0..6 {
        let mut attrs = json!({"owner": {"__entity": {"type": "D::User", "id": format!("u{}", rng.below(6))}}, "locked": rng.below(2) == 0});
        if rng.below(3) == 0 {
            // Sometimes a user that does not exist: policies reading it error.
            attrs["secret"] = json!({"__entity": {"type": "D::User", "id": format!("u{}", rng.below(9))}});
        }
        docs.push(json!({"uid": {"type": "D::Doc", "id": format!("d{d}")}, "attrs": attrs,
                         "parents": [{"type": "D::Folder", "id": format!("f{}", rng.below(3))}]}));
    }
    serde_json::Value::Array(docs)
}

#[test]
fn sliced_decisions_equal_whole_set_decisions() {
    let schema = Schema::from_cedarschema_str(SCHEMA).unwrap().0;
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    let mut allowed = 0;
    let mut with_errors = 0;
    let mut linked = 0;
    let mut determined_by_link = 0;
    for _ in 0..60 {
        // Up to 30 policies (every action slice evaluated whole), or up to
        // 150 (large slices narrowed by principal/resource scope literals).
        let most = if rng.below(2) == 0 { 30 } else { 150 };
        let count = 1 + rng.below(most) as usize;
        let mut text: String = (0..count).map(|i| policy(&mut rng, i)).collect();
        // Templates and their links, in half of the sets.
        let mut links = Vec::new();
        for t in 0..if rng.below(2) == 0 { 1 + rng.below(3) } else { 0 } {
            let (template_text, template_links) = template(&mut rng, t as usize);
            text.push_str(&template_text);
            links.extend(template_links);
        }
        let links_json = serde_json::to_string(&links).unwrap();
        let files = BTreeMap::from([
            ("d.cedarschema".to_owned(), SCHEMA.to_owned()),
            ("p.cedar".to_owned(), text.clone()),
            ("links.json".to_owned(), links_json.clone()),
        ]);
        let bundle = Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let docs = entities(&mut rng);
        let store = bundle.entity_set(docs.as_array().unwrap().clone()).unwrap();

        // The reference: plain Cedar over the whole set, ids from `@id`.
        let mut whole = PolicySet::new();
        let parsed = PolicySet::from_str(&text).unwrap();
        for p in parsed.policies() {
            let id = cedar_policy::PolicyId::new(p.annotation("id").unwrap());
            whole.add(p.new_id(id)).unwrap();
        }
        for t in parsed.templates() {
            whole.add_template(t.new_id(cedar_policy::PolicyId::new(t.annotation("id").unwrap()))).unwrap();
        }
        for link in &links {
            let slot = |name: &str, id: cedar_policy::SlotId| {
                link["values"].get(name).map(|v| {
                    (
                        id,
                        EntityUid::from_str(&format!(
                            "{}::\"{}\"",
                            v["type"].as_str().unwrap(),
                            v["id"].as_str().unwrap()
                        ))
                        .unwrap(),
                    )
                })
            };
            let values = [
                slot("?principal", cedar_policy::SlotId::principal()),
                slot("?resource", cedar_policy::SlotId::resource()),
            ]
            .into_iter()
            .flatten()
            .collect();
            whole
                .link(
                    cedar_policy::PolicyId::new(link["template"].as_str().unwrap()),
                    cedar_policy::PolicyId::new(link["id"].as_str().unwrap()),
                    values,
                )
                .unwrap();
        }
        linked += links.len();
        let reference_entities = Entities::from_json_value(docs, Some(&schema)).unwrap();

        for _ in 0..80 {
            let (user, action, doc) = (format!("u{}", rng.below(7)), rng.pick(&ACTIONS), format!("d{}", rng.below(7)));
            let mut context = serde_json::Map::from_iter([("now".to_owned(), json!("2026-06-01T00:00:00.000Z"))]);
            if rng.below(2) == 0 {
                context.insert("flag".into(), json!(rng.below(2) == 0));
            }
            let query = Query {
                principal: EntityRef { type_name: "User".into(), id: user.clone(), properties: None },
                action: action.into(),
                resource: EntityRef { type_name: "Doc".into(), id: doc.clone(), properties: None },
                context: context.clone(),
                entities: Vec::new(),
                ..Query::default()
            };
            let ours = bundle.decide(&store, &query, now).unwrap();

            let uid = |s: &str| EntityUid::from_str(s).unwrap();
            let action_uid = uid(&format!("D::Action::\"{action}\""));
            let ctx =
                Context::from_json_value(serde_json::Value::Object(context), Some((&schema, &action_uid))).unwrap();
            let request = Request::new(
                uid(&format!("D::User::\"{user}\"")),
                action_uid,
                uid(&format!("D::Doc::\"{doc}\"")),
                ctx,
                Some(&schema),
            )
            .unwrap();
            let response = Authorizer::new().is_authorized(&request, &whole, &reference_entities);
            let mut determining: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
            determining.sort();
            let errored: Vec<String> = response
                .diagnostics()
                .errors()
                .map(|cedar_policy::AuthorizationError::PolicyEvaluationError(e)| e.policy_id().to_string())
                .collect();
            let forbid_errored = errored
                .iter()
                .any(|id| whole.policy(&cedar_policy::PolicyId::new(id)).is_some_and(|p| p.effect() == Effect::Forbid));
            let reference_allowed = response.decision() == CedarDecision::Allow && !forbid_errored;

            let context_of = || format!("policies:\n{text}\nrequest: {user} {action} {doc}");
            assert_eq!(ours.allowed, reference_allowed, "{}", context_of());
            assert_eq!(ours.errors.len(), errored.len(), "{}", context_of());
            if reference_allowed || !forbid_errored {
                assert_eq!(ours.policies, determining, "{}", context_of());
            }
            compared += 1;
            determined_by_link += usize::from(determining.iter().any(|id| id.contains("-link")));
            allowed += usize::from(ours.allowed);
            with_errors += usize::from(!errored.is_empty());
        }
    }
    // The generator must exercise both answers and the error path.
    assert_eq!(compared, 60 * 80);
    assert!(allowed > compared / 10 && allowed < compared * 9 / 10, "allowed {allowed} of {compared}");
    assert!(with_errors > 50, "only {with_errors} requests hit an evaluation error");
    assert!(linked > 100, "only {linked} template links generated");
    assert!(determined_by_link > 100, "only {determined_by_link} decisions determined by a linked policy");
}
