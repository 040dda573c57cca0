//! Contexts reach Cedar two ways: built directly from JSON scalars (the fast
//! path) or through Cedar's schema-directed JSON parser (everything else, and
//! any failure). Both must give the answers and errors plain Cedar gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::collections::BTreeMap;

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request, Schema};
use serde_json::json;
use warrant_engine::Timestamp;
use warrant_engine::{Bundle, BundleSource, EntityRef, Query, Undeclared};

const SCHEMA: &str = r#"namespace C {
    entity User;
    entity Doc;
    type Ctx = { now: datetime, label?: String, level?: Long, flag?: Bool, ip?: ipaddr, tags?: Set<String>, who?: User };
    action read appliesTo { principal: User, resource: Doc, context: Ctx };
}"#;
const POLICIES: &str = r#"
@id("p") permit (principal, action, resource) when {
  context.now > datetime("2026-01-01") &&
  (if context has label then context.label == "ok" else true) &&
  (if context has level then context.level > 2 else true) &&
  (if context has flag then context.flag else true) &&
  (if context has ip then context.ip.isLoopback() else true) &&
  (if context has tags then context.tags.contains("a") else true) &&
  (if context has who then context.who == principal else true)
};
"#;

#[test]
fn fast_and_json_context_paths_agree_with_cedar() {
    let files =
        BTreeMap::from([("c.cedarschema".to_owned(), SCHEMA.to_owned()), ("p.cedar".to_owned(), POLICIES.to_owned())]);
    let bundle = Bundle::load(BundleSource::from_files(files).unwrap()).unwrap();
    let store = bundle.entity_set(Vec::new()).unwrap();
    let schema = Schema::from_cedarschema_str(SCHEMA).unwrap().0;
    let policies: PolicySet = POLICIES.parse().unwrap();
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let user = json!({"__entity": {"type": "C::User", "id": "u"}});
    let contexts = [
        // Scalars only: the fast path.
        json!({"now": "2026-06-01T00:00:00.000Z"}),
        json!({"now": "2026-06-01T00:00:00.000Z", "label": "ok", "level": 3, "flag": true}),
        json!({"now": "2026-06-01T00:00:00.000Z", "label": "no"}),
        // The shape of the one before (kept as accepted), another answer.
        json!({"now": "2026-06-01T00:00:00.000Z", "label": "ok"}),
        json!({"now": "2025-06-01T00:00:00.000Z", "flag": true}),
        json!({"now": "2026-06-01T00:00:00.000Z", "level": 1}),
        // An extension value as a plain string, a set, an entity: the JSON path.
        json!({"now": "2026-06-01T00:00:00.000Z", "ip": "127.0.0.1"}),
        json!({"now": "2026-06-01T00:00:00.000Z", "ip": "10.0.0.1"}),
        json!({"now": "2026-06-01T00:00:00.000Z", "tags": ["a", "b"]}),
        json!({"now": "2026-06-01T00:00:00.000Z", "who": user}),
        // Wrong types, unknown keys, bad datetimes: errors, as Cedar says.
        json!({"now": "2026-06-01T00:00:00.000Z", "level": "3"}),
        json!({"now": "2026-06-01T00:00:00.000Z", "label": 3}),
        json!({"now": "2026-06-01T00:00:00.000Z", "extra": true}),
        json!({"now": "yesterday"}),
        json!({"now": "2026-06-01T00:00:00.000Z", "level": 2.5}),
    ];
    let action: EntityUid = r#"C::Action::"read""#.parse().unwrap();
    let (mut allowed, mut errors) = (0, 0);
    for context in contexts {
        let query = Query {
            principal: EntityRef { type_name: "User".into(), id: "u".into(), properties: None },
            action: "read".into(),
            resource: EntityRef { type_name: "Doc".into(), id: "d".into(), properties: None },
            context: context.as_object().unwrap().clone(),
            entities: Vec::new(),
            // Compared with Cedar, which refuses undeclared keys too.
            undeclared: Undeclared::Refuse,
            ..Query::default()
        };
        let ours = bundle.decide(&store, &query, now);
        let reference = Context::from_json_value(context.clone(), Some((&schema, &action))).ok().and_then(|c| {
            let p: EntityUid = r#"C::User::"u""#.parse().unwrap();
            let r: EntityUid = r#"C::Doc::"d""#.parse().unwrap();
            Request::new(p, action.clone(), r, c, Some(&schema)).ok()
        });
        match (ours, reference) {
            (Ok(d), Some(request)) => {
                let want = Authorizer::new().is_authorized(&request, &policies, &Entities::empty()).decision();
                assert_eq!(d.allowed, want == Decision::Allow, "{context}");
                allowed += usize::from(d.allowed);
            }
            (Err(e), None) => {
                assert!(matches!(e.code(), "invalid_context" | "undeclared"), "{context}: {e}");
                errors += 1;
            }
            (ours, reference) => panic!("{context}: ours {ours:?}, Cedar accepts the context: {}", reference.is_some()),
        }
    }
    assert!(allowed >= 4 && errors >= 4, "allowed {allowed}, errors {errors}");
}
