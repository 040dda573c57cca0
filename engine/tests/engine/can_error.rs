//! The lint for policies that can error at run time: each finding is
//! located where the expression is written, and is checked against Cedar's
//! own evaluator: a store and request exist under which the flagged policy
//! errors, and the same store leaves the unflagged (guarded) ones clean.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use warrant_engine::{Bundle, BundleSource, Diagnostic, EntityRef, Query, Timestamp};

const SCHEMA: &str = r#"entity Team = { lead: User, budget: Long } tags String;
entity User = { manager?: User, team: Team, quota: Long };
entity Doc = { owner: User, size: Long, locked?: Bool };
action read appliesTo {
  principal: User,
  resource: Doc,
  context: { addr: String, extra: Long, who?: User, at?: datetime, span?: duration }
};
"#;

fn bundle(policies: &str) -> Bundle {
    let files: BTreeMap<String, String> =
        [("s.cedarschema", SCHEMA), ("p.cedar", policies)].iter().map(|(p, t)| ((*p).into(), (*t).into())).collect();
    Bundle::load(BundleSource::from_files(files).unwrap()).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics()))
}

/// The run-time findings, as (line, column, message).
fn findings(b: &Bundle) -> Vec<(usize, usize, String)> {
    b.warnings()
        .iter()
        .filter(|d| d.message.contains("can error at run time"))
        .map(|d: &Diagnostic| (d.line.unwrap_or(0), d.column.unwrap_or(0), d.message.clone()))
        .collect()
}

fn user(id: &str, team: &str, quota: i64) -> Value {
    json!({"uid": {"type": "User", "id": id}, "attrs": {"team": {"__entity": {"type": "Team", "id": team}}, "quota": quota}, "parents": []})
}

fn doc(id: &str, owner: &str, size: i64) -> Value {
    json!({"uid": {"type": "Doc", "id": id}, "attrs": {"owner": {"__entity": {"type": "User", "id": owner}}, "size": size}, "parents": []})
}

/// `ann` reads doc `d` with `context`, over a store holding `ann` (team
/// `eng`, which exists) and `d`, owned by `ghost`, who does not exist.
fn errors_for(b: &Bundle, size: i64, context: Value) -> Vec<String> {
    let team = json!({"uid": {"type": "Team", "id": "eng"}, "attrs": {"lead": {"__entity": {"type": "User", "id": "ann"}}, "budget": 1}, "parents": []});
    let set = b.entity_set(vec![user("ann", "eng", 5), team, doc("d", "ghost", size)]).unwrap();
    let query = Query {
        principal: EntityRef { type_name: "User".into(), id: "ann".into(), properties: None },
        action: "read".into(),
        resource: EntityRef { type_name: "Doc".into(), id: "d".into(), properties: None },
        context: context.as_object().unwrap().clone(),
        ..Query::default()
    };
    let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    b.decide(&set, &query, now).unwrap().errors
}

fn names(errors: &[String], id: &str) -> bool {
    errors.iter().any(|e| e.contains(&format!("`{id}`")))
}

#[test]
fn arithmetic_on_values_from_the_request_can_overflow_and_does() {
    let b = bundle(
        "@id(\"sum\")\npermit (principal, action, resource)\nwhen { context.addr == \"x\" || resource.size + context.extra < 100 };\n\
         @id(\"fits\")\npermit (principal, action, resource) when { 1 + 2 == 3 };\n",
    );
    let f = findings(&b);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].0, f[0].1), (3, 31), "at `resource.size + …`: {f:?}");
    assert!(
        f[0].2.starts_with("permit `sum` can error at run time: `resource.size + context.extra` can overflow"),
        "{f:?}"
    );
    assert!(names(&errors_for(&b, i64::MAX, json!({"addr": "y", "extra": 1})), "sum"));
    assert!(errors_for(&b, 1, json!({"addr": "y", "extra": 1})).is_empty());
}

#[test]
fn literal_arithmetic_that_overflows_is_reported_as_certain() {
    let b = bundle("@id(\"big\") permit (principal, action, resource) when { 9223372036854775807 + 1 > 0 };\n");
    let f = findings(&b);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].2.contains("always overflows"), "{f:?}");
    assert!(names(&errors_for(&b, 1, json!({"addr": "y", "extra": 1})), "big"));
}

/// Datetime arithmetic overflows at the ends of the range. (Extension
/// constructors of request values, `ip(context.addr)`, cannot fail: strict
/// validation refuses them.)
#[test]
fn datetime_arithmetic_on_request_values_can_overflow() {
    let b = bundle(
        "@id(\"late\") forbid (principal, action, resource)\n\
         when { context has at && context has span && context.at.offset(context.span) > datetime(\"2030-01-01\") };\n\
         @id(\"fixed\") forbid (principal, action, resource) when { datetime(\"2030-01-01\").offset(duration(\"1h\")) < datetime(\"2000-01-01\") };\n",
    );
    let f = findings(&b);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].0, f[0].1), (2, 46), "{f:?}");
    assert!(f[0].2.contains("`context.at.offset(context.span)` can overflow the datetime range"), "{f:?}");
    assert!(f[0].2.contains("the forbid then denies the request"), "{f:?}");
    let huge = json!({"addr": "y", "extra": 1, "at": "9999-12-31", "span": "9223372036854775807ms"});
    assert!(names(&errors_for(&b, 1, huge), "late"));
    let small = json!({"addr": "y", "extra": 1, "at": "2026-01-01", "span": "1h"});
    assert!(errors_for(&b, 1, small).is_empty());
}

/// A forbid reading through a reference errors when the reference dangles,
/// and warrant then denies; the `has` guard makes it false instead. A
/// permit reading through a reference is not reported (it just does not
/// apply), and the request's own principal and resource are not.
#[test]
fn a_forbid_reading_through_a_dangling_reference_errors_unless_guarded() {
    let b = bundle(
        "@id(\"owner-quota\")\nforbid (principal, action, resource)\nwhen { resource.owner.quota > 10 };\n\
         @id(\"guarded\")\nforbid (principal, action, resource)\nwhen { resource.owner has quota && resource.owner.quota > 10 };\n\
         @id(\"if-guarded\")\nforbid (principal, action, resource)\nwhen { if resource.owner has quota then resource.owner.quota > 10 else false };\n\
         @id(\"permit-through\")\npermit (principal, action, resource)\nwhen { resource.owner.quota > 0 && principal.quota > 0 };\n\
         @id(\"frozen\")\nforbid (principal, action, resource)\nwhen { resource.owner has team && resource.owner.team.hasTag(\"freeze\") && resource.owner.team.getTag(\"freeze\") == \"on\" };\n",
    );
    let f = findings(&b);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].0, f[0].1), (3, 8), "{f:?}");
    assert!(
        f[0].2.contains("`resource.owner.quota` reads `resource.owner`, an entity an attribute refers to"),
        "{f:?}"
    );
    assert!(f[0].2.contains("guard it with `resource.owner has quota &&`"), "{f:?}");
    let errors = errors_for(&b, 1, json!({"addr": "y", "extra": 1}));
    assert!(names(&errors, "owner-quota"), "{errors:?}");
    for clean in ["guarded", "if-guarded", "frozen"] {
        assert!(!names(&errors, clean), "{clean}: {errors:?}");
    }
    // The permit is not reported, though it errors too: it only does not apply.
    assert!(names(&errors, "permit-through"), "{errors:?}");
}

/// An entity the context or the policy names may be missing, in a permit
/// as in a forbid.
#[test]
fn entities_named_by_the_context_or_a_literal_may_be_missing() {
    let b = bundle(
        "@id(\"who\")\npermit (principal, action, resource)\nwhen { context has who && context.who.quota > 0 };\n\
         @id(\"boss\")\npermit (principal, action, resource)\nwhen { User::\"boss\".quota > 0 };\n",
    );
    let f = findings(&b);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f.iter().any(|(l, c, m)| (*l, *c) == (3, 27) && m.contains("an entity the request's context names")),
        "{f:#?}"
    );
    assert!(f.iter().any(|(l, c, m)| (*l, *c) == (6, 8) && m.contains("an entity the policy names")), "{f:#?}");
    let errors =
        errors_for(&b, 1, json!({"addr": "y", "extra": 1, "who": {"__entity": {"type": "User", "id": "nobody"}}}));
    assert!(names(&errors, "who") && names(&errors, "boss"), "{errors:?}");
}
