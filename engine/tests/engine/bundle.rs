//! Loading bundles and deciding against them, through the engine's public API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;

use serde_json::json;
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, BundleError, BundleSource, EntityRef, Query, RequestError, Undeclared};

const SCHEMA: &str = r#"namespace Docs {
    type Ctx = { now: datetime, purpose?: String };
    entity User = { level: Long };
    entity Doc = { owner: User, locked: Bool, expires_at?: datetime };
    action read, write appliesTo { principal: User, resource: Doc, context: Ctx };
}
"#;

const POLICIES: &str = r#"@id("read.owner")
permit (principal, action == Docs::Action::"read", resource)
when { resource.owner == principal };

@id("read.locked")
@reason("doc_locked")
forbid (principal, action, resource)
when { resource.locked };

@id("read.expired")
@reason("doc_expired")
forbid (principal, action, resource)
when { resource has expires_at && resource.expires_at <= context.now };
"#;

fn source(files: &[(&str, &str)]) -> BundleSource {
    let map: BTreeMap<String, String> = files.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect();
    BundleSource::from_files(map).unwrap()
}

fn bundle() -> Bundle {
    Bundle::load(source(&[("docs.cedarschema", SCHEMA), ("policies/read.cedar", POLICIES)])).unwrap()
}

fn entities() -> Vec<serde_json::Value> {
    vec![
        json!({"uid": {"type": "Docs::User", "id": "ann"}, "attrs": {"level": 3}, "parents": []}),
        json!({"uid": {"type": "Docs::Doc", "id": "open"}, "attrs": {"owner": {"__entity": {"type": "Docs::User", "id": "ann"}}, "locked": false}}),
        json!({"uid": {"type": "Docs::Doc", "id": "locked"}, "attrs": {"owner": {"__entity": {"type": "Docs::User", "id": "ann"}}, "locked": true}}),
        json!({"uid": {"type": "Docs::Doc", "id": "old"}, "attrs": {"owner": {"__entity": {"type": "Docs::User", "id": "ann"}}, "locked": false, "expires_at": {"__extn": {"fn": "datetime", "arg": "2026-01-01T00:00:00Z"}}}}),
    ]
}

fn query(principal: &str, action: &str, doc: &str) -> Query {
    Query {
        principal: EntityRef { type_name: "User".into(), id: principal.into(), properties: None },
        action: action.into(),
        resource: EntityRef { type_name: "Docs::Doc".into(), id: doc.into(), properties: None },
        ..Query::default()
    }
}

fn now() -> Timestamp {
    Timestamp::parse("2026-06-01T00:00:00Z").unwrap()
}

#[test]
fn owner_reads_and_the_permit_is_named() {
    let b = bundle();
    let set = b.entity_set(entities()).unwrap();
    let d = b.decide(&set, &query("ann", "read", "open"), now()).unwrap();
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policies, vec!["read.owner"]);
    assert!(d.reasons.is_empty());
}

#[test]
fn a_forbid_reports_its_reason_and_nothing_permitting_reports_no_permit() {
    let b = bundle();
    let set = b.entity_set(entities()).unwrap();
    let d = b.decide(&set, &query("ann", "read", "locked"), now()).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reasons, vec!["doc_locked"]);
    assert_eq!(d.policies, vec!["read.locked"]);

    let d = b.decide(&set, &query("bob", "write", "open"), now()).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reasons, vec!["no_permit"]);
}

#[test]
fn now_is_filled_in_and_rfc3339_offsets_are_accepted() {
    let b = bundle();
    let set = b.entity_set(entities()).unwrap();
    // Filled from the caller's clock: June 2026 is past the doc's expiry.
    let d = b.decide(&set, &query("ann", "read", "old"), now()).unwrap();
    assert_eq!(d.reasons, vec!["doc_expired"]);
    // Given explicitly with an RFC 3339 offset Cedar alone would reject.
    let mut q = query("ann", "read", "old");
    q.context.insert("now".into(), json!("2025-12-31T23:00:00-02:00"));
    let d = b.decide(&set, &q, now()).unwrap();
    assert!(!d.allowed, "2026-01-01T01:00Z is past expiry");
    q.context.insert("now".into(), json!("2025-12-31T20:00:00-02:00"));
    assert!(b.decide(&set, &q, now()).unwrap().allowed);
}

#[test]
fn properties_merge_over_the_stored_entity() {
    let b = bundle();
    let set = b.entity_set(entities()).unwrap();
    let mut q = query("ann", "read", "open");
    q.resource.properties = Some(serde_json::Map::from_iter([("locked".to_owned(), json!(true))]));
    let d = b.decide(&set, &q, now()).unwrap();
    assert_eq!(d.reasons, vec!["doc_locked"]);
    // The store itself is unchanged.
    assert!(b.decide(&set, &query("ann", "read", "open"), now()).unwrap().allowed);
}

#[test]
fn bad_requests_name_the_problem() {
    let b = bundle();
    let set = b.entity_set(entities()).unwrap();
    let mut q = query("ann", "read", "open");
    q.principal.type_name = "Robot".into();
    assert!(matches!(b.decide(&set, &q, now()), Err(RequestError::UnknownEntityType { field: "subject.type", .. })));
    let q = query("ann", "delete", "open");
    assert!(matches!(b.decide(&set, &q, now()), Err(RequestError::UnknownAction { .. })));
    let mut q = query("ann", "read", "open");
    q.context.insert("purpose".into(), json!(7));
    assert_eq!(b.decide(&set, &q, now()).unwrap_err().code(), "invalid_context");
    // A key the schema does not declare is ignored and named (AuthZEN's
    // forward compatibility), or refused when the operator asks.
    let mut q = query("ann", "read", "open");
    q.context.insert("surprise".into(), json!("x"));
    let decision = b.decide(&set, &q, now()).unwrap();
    assert_eq!((decision.allowed, decision.ignored.as_slice()), (true, ["context.surprise".to_owned()].as_slice()));
    q.undeclared = Undeclared::Refuse;
    let refused = b.decide(&set, &q, now()).unwrap_err();
    assert_eq!((refused.code(), refused.field()), ("undeclared", Some("context.surprise")));
}

/// An id outside an enumerated entity type's ids is reported against the
/// request field that holds it, the resource's as well as the subject's.
#[test]
fn an_id_outside_an_enumerated_type_names_its_field() {
    let schema = r#"namespace E {
    entity User;
    entity Stage enum ["draft", "live"];
    action view appliesTo { principal: User, resource: Stage };
    action act appliesTo { principal: Stage, resource: User };
}
"#;
    let b = Bundle::load(source(&[("e.cedarschema", schema), ("p.cedar", "permit (principal, action, resource);")]))
        .unwrap();
    let set = b.entity_set(Vec::new()).unwrap();
    let field = |action: &str, (p_type, p_id): (&str, &str), (r_type, r_id): (&str, &str)| {
        let q = Query {
            principal: EntityRef { type_name: p_type.into(), id: p_id.into(), properties: None },
            action: action.into(),
            resource: EntityRef { type_name: r_type.into(), id: r_id.into(), properties: None },
            ..Query::default()
        };
        match b.decide(&set, &q, now()) {
            Err(RequestError::InvalidEntity { field, .. }) => field,
            other => panic!("expected an invalid entity, got {other:?}"),
        }
    };
    // A request of the same shape with a listed id is decided first: its
    // acceptance must not carry over to an id outside the list.
    let listed = Query {
        principal: EntityRef { type_name: "User".into(), id: "ann".into(), properties: None },
        action: "view".into(),
        resource: EntityRef { type_name: "Stage".into(), id: "draft".into(), properties: None },
        ..Query::default()
    };
    assert!(b.decide(&set, &listed, now()).unwrap().allowed);
    assert_eq!(field("view", ("User", "ann"), ("Stage", "gone")), "resource.id");
    assert_eq!(field("act", ("Stage", "gone"), ("User", "ann")), "subject.id");
}

#[test]
fn a_forbid_that_errors_fails_closed() {
    let policies = r#"@id("all") permit (principal, action, resource);
@id("deep") @reason("too_low")
forbid (principal, action, resource) when { resource.owner.level < 2 };
"#;
    let b = Bundle::load(source(&[("s.cedarschema", SCHEMA), ("p.cedar", policies)])).unwrap();
    // The owner entity is missing, so the forbid cannot be evaluated.
    let set = b
        .entity_set(vec![json!({"uid": {"type": "Docs::Doc", "id": "d"}, "attrs": {"owner": {"__entity": {"type": "Docs::User", "id": "ghost"}}, "locked": false}})])
        .unwrap();
    let d = b.decide(&set, &query("ann", "read", "d"), now()).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reasons, vec!["policy_error:deep"]);
    assert_eq!(d.errors.len(), 1);
}

#[test]
fn the_schema_vocabulary_can_be_asked_about() {
    let b = bundle();
    assert!(b.has_entity_type("User") && b.has_entity_type("Docs::Doc"));
    assert!(!b.has_entity_type("Token") && !b.has_entity_type("Other::User"));
    assert!(b.has_action("read") && b.has_action(r#"Docs::Action::"write""#));
    assert!(!b.has_action("delete"));
    assert!(b.action_applies_to("read", "User", "Docs::Doc"));
    assert!(!b.action_applies_to("read", "Doc", "User"), "principal and resource are not interchangeable");
    assert!(!b.action_applies_to("delete", "User", "Doc"));
    // Through the common type, required or optional; datetime or not.
    assert!(b.context_has_key("read", "now") && b.context_has_key("write", "purpose"));
    assert!(!b.context_has_key("read", "surface") && !b.context_has_key("delete", "now"));
    assert!(b.context_has_datetime("read", "now") && !b.context_has_datetime("read", "purpose"));
}

fn diagnostics(err: BundleError) -> Vec<String> {
    err.diagnostics().iter().map(ToString::to_string).collect()
}

#[test]
fn a_syntax_error_points_at_file_line_and_column() {
    let broken = "@id(\"ok\")\npermit (principal, action, resource);\n\n@id(\"bad\")\npermit (principal, action, resource) when { resource.locked ==  };\n";
    let err = Bundle::load(source(&[("s.cedarschema", SCHEMA), ("broken.cedar", broken)])).unwrap_err();
    let d = err.diagnostics();
    assert_eq!(d[0].file, "broken.cedar");
    assert_eq!(d[0].line, Some(5), "{:?}", diagnostics(err));
    assert!(d[0].column.is_some());
}

#[test]
fn a_type_error_points_at_the_policy_in_its_file() {
    let bad = "@id(\"a\")\npermit (principal, action, resource);\n@id(\"typo\")\npermit (principal, action, resource)\nwhen { resource.lockd };\n";
    let err = Bundle::load(source(&[("s.cedarschema", SCHEMA), ("p.cedar", bad)])).unwrap_err();
    let d = err.diagnostics();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].file, "p.cedar");
    assert_eq!(d[0].line, Some(5));
    assert!(d[0].message.contains("typo"), "{}", d[0].message);
}

#[test]
fn schema_errors_and_missing_schema_are_reported() {
    let err = Bundle::load(source(&[("p.cedar", POLICIES)])).unwrap_err();
    assert!(diagnostics(err)[0].contains("no schema"));
    let err = Bundle::load(source(&[("s.cedarschema", "namespace X { entity A = { a: Strin }; }"), ("p.cedar", "")]))
        .unwrap_err();
    assert_eq!(err.diagnostics()[0].file, "s.cedarschema");
    let err =
        Bundle::load(source(&[("s.cedarschema", SCHEMA), ("p.cedar", POLICIES), ("q.cedar", POLICIES)])).unwrap_err();
    assert!(diagnostics(err).iter().any(|d| d.contains("used twice")));
}

#[test]
fn entities_are_checked_against_the_schema() {
    let b = bundle();
    let err =
        b.entity_set(vec![json!({"uid": {"type": "Docs::User", "id": "x"}, "attrs": {"level": "high"}})]).unwrap_err();
    assert!(err.to_string().contains("level"), "{err}");
    let dup = json!({"uid": {"type": "Docs::User", "id": "x"}, "attrs": {"level": 1}});
    assert!(b.entity_set(vec![dup.clone(), dup]).is_err());
}

#[test]
fn the_digest_names_the_files_and_ignores_tests() {
    let a = source(&[("s.cedarschema", SCHEMA), ("p.cedar", POLICIES)]);
    let b = source(&[("s.cedarschema", SCHEMA), ("p.cedar", POLICIES), ("tests/x.json", "{}")]);
    let c = source(&[("s.cedarschema", SCHEMA), ("p.cedar", &POLICIES.replace("doc_locked", "locked"))]);
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
    assert!(a.digest().starts_with("sha256:"));
    assert_eq!(a.digest().len(), "sha256:".len() + 64);
}

#[test]
fn policies_scoped_to_an_action_group_still_apply_to_its_members() {
    let schema = r#"namespace G {
        entity U;
        action readers;
        action read in [readers] appliesTo { principal: U, resource: U };
        action write appliesTo { principal: U, resource: U };
    }"#;
    let policies = r#"@id("group") permit (principal, action in G::Action::"readers", resource);
@id("any") @reason("never_on_self") forbid (principal, action, resource) when { principal == resource };
@id("write") permit (principal, action == G::Action::"write", resource);
"#;
    let b = Bundle::load(source(&[("g.cedarschema", schema), ("p.cedar", policies)])).unwrap();
    let set = b.entity_set(Vec::new()).unwrap();
    let q = |action: &str, p: &str, r: &str| Query {
        principal: EntityRef { type_name: "U".into(), id: p.into(), properties: None },
        action: action.into(),
        resource: EntityRef { type_name: "U".into(), id: r.into(), properties: None },
        ..Query::default()
    };
    let read = b.decide(&set, &q("read", "a", "b"), now()).unwrap();
    assert_eq!(read.policies, vec!["group"]);
    let write = b.decide(&set, &q("write", "a", "b"), now()).unwrap();
    assert_eq!(write.policies, vec!["write"]);
    let own = b.decide(&set, &q("read", "a", "a"), now()).unwrap();
    assert_eq!(own.reasons, vec!["never_on_self"], "unscoped forbids reach every action");
}

const TEMPLATE: &str = r#"@id("reader")
@reason("granted_reader")
permit (principal == ?principal, action == Docs::Action::"read", resource == ?resource)
unless { resource.locked };

@id("writer_ban")
@reason("banned_writer")
forbid (principal == ?principal, action == Docs::Action::"write", resource);
"#;

#[test]
fn templates_decide_through_their_links() {
    let links = r#"[
        {"id": "bob-reads-open", "template": "reader",
         "values": {"?principal": {"type": "Docs::User", "id": "bob"}, "?resource": {"type": "Docs::Doc", "id": "open"}}},
        {"id": "ann-banned", "template": "writer_ban", "values": {"?principal": {"type": "Docs::User", "id": "ann"}}}
    ]"#;
    let b = Bundle::load(source(&[
        ("docs.cedarschema", SCHEMA),
        ("read.cedar", POLICIES),
        ("templates.cedar", TEMPLATE),
        ("links.json", links),
    ]))
    .unwrap();
    assert_eq!(b.policy_count(), 5, "three static policies and two links; templates alone decide nothing");
    let mut docs = entities();
    docs.push(json!({"uid": {"type": "Docs::User", "id": "bob"}, "attrs": {"level": 1}, "parents": []}));
    let store = b.entity_set(docs).unwrap();
    let read = b.decide(&store, &query("bob", "read", "open"), now()).unwrap();
    assert!(read.allowed);
    assert_eq!(read.policies, ["bob-reads-open"]);
    // The link only covers `open`; the template's condition still applies.
    assert!(!b.decide(&store, &query("bob", "read", "old"), now()).unwrap().allowed);
    let write = b.decide(&store, &query("ann", "write", "open"), now()).unwrap();
    assert!(!write.allowed);
    assert_eq!(write.reasons, ["banned_writer"], "a link carries its template's @reason");
    // Links are part of what the digest names.
    let other = Bundle::load(source(&[
        ("docs.cedarschema", SCHEMA),
        ("read.cedar", POLICIES),
        ("templates.cedar", TEMPLATE),
        ("links.json", "[]"),
    ]))
    .unwrap();
    assert_ne!(b.digest(), other.digest());
}

#[test]
fn bad_links_are_reported_in_links_json() {
    let load = |links: &str| {
        let err =
            Bundle::load(source(&[("docs.cedarschema", SCHEMA), ("templates.cedar", TEMPLATE), ("links.json", links)]))
                .unwrap_err();
        let d = err.diagnostics();
        assert!(d.iter().all(|d| d.file == "links.json"), "{d:?}");
        diagnostics(err).join("\n")
    };
    let ann = r#"{"type": "Docs::User", "id": "ann"}"#;
    assert!(load("{").contains("expected a JSON array of template links"));
    let missing = load(&format!(r#"[{{"id": "x", "template": "nope", "values": {{"?principal": {ann}}}}}]"#));
    assert!(missing.contains("no template has `@id(\"nope\")`"), "{missing}");
    let slot = load(&format!(r#"[{{"id": "x", "template": "writer_ban", "values": {{"?owner": {ann}}}}}]"#));
    assert!(slot.contains("unknown slot `?owner`"), "{slot}");
    let unfilled =
        load(r#"[{"id": "x", "template": "reader", "values": {"?principal": {"type": "Docs::User", "id": "a"}}}]"#);
    assert!(unfilled.contains("link 0 (`x`)"), "{unfilled}");
    let twice = load(&format!(
        r#"[{{"id": "x", "template": "writer_ban", "values": {{"?principal": {ann}}}}},
            {{"id": "x", "template": "writer_ban", "values": {{"?principal": {ann}}}}}]"#
    ));
    assert!(twice.contains("link 1 (`x`)"), "{twice}");
    let extra = load(r#"[{"id": "x", "template": "writer_ban", "values": {}, "note": "?"}]"#);
    assert!(extra.contains("unknown field `note`"), "{extra}");
}

#[test]
fn a_link_to_an_undeclared_type_fails_validation() {
    let links = r#"[{"id": "doc-reads", "template": "writer_ban",
                     "values": {"?principal": {"type": "Docs::Robot", "id": "r2"}}}]"#;
    let err =
        Bundle::load(source(&[("docs.cedarschema", SCHEMA), ("templates.cedar", TEMPLATE), ("links.json", links)]))
            .unwrap_err();
    assert!(diagnostics(err).iter().any(|d| d.contains("doc-reads")), "a link's validation error names the link");
}
