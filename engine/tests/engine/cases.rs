//! Policy tests (`tests/*.json` of a bundle), run as `warrant test` runs them.

use warrant_engine::{Bundle, Timestamp, cases};

const SCHEMA: &str = r#"namespace Docs {
    entity User = { level: Long };
    entity Doc = { owner: User };
    action read appliesTo { principal: User, resource: Doc };
}
"#;

const POLICIES: &str = r#"@id("read.owner")
permit (principal, action == Docs::Action::"read", resource)
when { resource.owner == principal };
"#;

/// A bundle directory holding the schema, the policy and one test file.
fn bundle_dir(tests: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docs.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("read.cedar"), POLICIES).unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("tests/read.json"), tests).unwrap();
    dir
}

fn run(tests: &str) -> cases::Report {
    let dir = bundle_dir(tests);
    let bundle = Bundle::load_dir(dir.path()).unwrap();
    cases::run(&bundle, dir.path(), Timestamp::now())
}

const ENTITIES: &str = r#"[
    {"uid": {"type": "Docs::User", "id": "ann"}, "attrs": {"level": 1}, "parents": []},
    {"uid": {"type": "Docs::Doc", "id": "d1"}, "attrs": {"owner": {"__entity": {"type": "Docs::User", "id": "ann"}}}, "parents": []}
]"#;

#[test]
fn a_failing_case_naming_an_entity_its_file_lacks_says_which_first() {
    // `bob` is a typo for `ann`; Cedar would deny (an unknown principal owns
    // nothing) or fail on the missing owner, which points nowhere near it.
    let report = run(&format!(
        r#"{{"entities": {ENTITIES}, "cases": [
            {{"name": "owner reads", "principal": {{"type": "User", "id": "ann"}}, "action": "read",
              "resource": {{"type": "Doc", "id": "d1"}}, "expect": "allow"}},
            {{"name": "typo in the principal", "principal": {{"type": "User", "id": "bob"}}, "action": "read",
              "resource": {{"type": "Doc", "id": "d1"}}, "expect": "allow"}},
            {{"name": "typo in the resource", "principal": {{"type": "User", "id": "ann"}}, "action": "read",
              "resource": {{"type": "Docs::Doc", "id": "d2"}}, "expect": "allow"}},
            {{"name": "an unknown user is denied", "principal": {{"type": "User", "id": "mallory"}}, "action": "read",
              "resource": {{"type": "Doc", "id": "d1"}}, "expect": "deny"}}
        ]}}"#
    ));
    let outcome: Vec<(&str, Option<&str>)> =
        report.results.iter().map(|r| (r.name.as_str(), r.failure.as_deref())).collect();
    assert_eq!(outcome[0], ("owner reads", None));
    let principal = outcome[1].1.expect("a missing principal fails the case");
    assert!(principal.starts_with("entity not found: `Docs::User::\"bob\"`"), "{principal}");
    let resource = outcome[2].1.expect("a missing resource fails the case");
    assert!(resource.starts_with("entity not found: `Docs::Doc::\"d2\"`"), "{resource}");
    assert!(resource.contains("expected Allow, got Deny"), "the decision is still reported: {resource}");
    // Naming an entity that exists nowhere on purpose is a fair test.
    assert_eq!(outcome[3], ("an unknown user is denied", None));
}

/// Copies `from` (files, `tests/` and `tests/cedar/`) into a new temporary directory.
fn copy_bundle(from: &std::path::Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for sub in ["", "tests", "tests/cedar"] {
        std::fs::create_dir_all(to.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.path().join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    to
}

/// The pack's cases decide at noon UTC on a weekday (policies/README.md):
/// a policy about the hour of the day, such as this one forbidding
/// everything between 00:00 and 06:00 UTC, must not change what cases about
/// something else expect. When they decided at midnight, this policy
/// failed all 172 of them.
#[test]
fn the_pack_s_cases_do_not_depend_on_the_hour_of_the_night() {
    let pack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let dir = copy_bundle(&pack);
    std::fs::write(
        dir.path().join("night.cedar"),
        r#"@id("night.freeze")
@reason("night_freeze")
forbid (principal, action, resource)
when { context has now && context.now.toTime() < duration("6h") };
"#,
    )
    .unwrap();
    let bundle = Bundle::load_dir(dir.path()).unwrap();
    let report = cases::run(&bundle, dir.path(), Timestamp::now());
    let failed: Vec<_> = report.results.iter().filter(|r| r.failure.is_some()).map(|r| &r.name).collect();
    assert!(report.passed() > 100, "the pack's cases ran: {}", report.passed());
    assert!(failed.is_empty(), "cases that depend on the hour: {failed:?}");
}

/// A suite in the Cedar CLI's `cedar run-tests` format: passing cases,
/// and each way a case can fail worded as Cedar words it.
#[test]
fn a_cedar_cli_run_tests_suite_runs_unchanged() {
    let case = |name: Option<&str>, principal: &str, decision: &str, reason: &str, errors: usize| {
        let name = name.map(|n| format!(r#""name": "{n}","#)).unwrap_or_default();
        format!(
            r#"{{ {name} "request": {{"principal": "Docs::User::\"{principal}\"", "action": "Docs::Action::\"read\"",
                  "resource": "Docs::Doc::\"d1\"", "context": {{}}}},
                 "entities": {ENTITIES}, "decision": "{decision}", "reason": [{reason}], "num_errors": {errors} }}"#
        )
    };
    let suite = format!(
        "[{}]",
        [
            case(Some("owner reads"), "ann", "allow", r#""read.owner""#, 0),
            case(None, "bob", "deny", "", 0),
            // Cedar's default id for the first policy of its one file.
            case(Some("by cedar's default id"), "ann", "allow", r#""policy0""#, 0),
            case(Some("wrong decision"), "bob", "allow", "", 0),
            case(Some("wrong reason"), "ann", "allow", r#""read.other""#, 0),
            case(Some("wrong error count"), "ann", "allow", "", 1),
            r#"{"name": "malformed", "request": {}}"#.to_owned(),
        ]
        .join(",")
    );
    let report = run(&suite);
    let outcome: Vec<(&str, Option<&str>)> =
        report.results.iter().map(|r| (r.name.as_str(), r.failure.as_deref())).collect();
    assert_eq!(outcome[0], ("owner reads", None));
    assert_eq!(outcome[1], ("(unnamed 2)", None));
    // `policy0` is `read.owner` only under its default id; here the
    // policy's `@id` renamed it in both tools, so Cedar reports it missing too.
    assert!(outcome[2].1.unwrap().contains("missing reason(s): `policy0`"), "{outcome:?}");
    assert!(outcome[3].1.unwrap().starts_with("expected Allow, got Deny"), "{outcome:?}");
    assert_eq!(outcome[4].1, Some("missing reason(s): `read.other`"));
    assert_eq!(outcome[5].1, Some("expected 1 error(s), but got 0 runtime error(s)"));
    assert!(outcome[6].1.unwrap().starts_with("malformed case:"), "{outcome:?}");
    assert_eq!((report.passed(), report.failed()), (2, 5));
}

/// Cedar's default ids (`policyN`) name the policies of the bundle's one
/// file, and an entities file given by path must stay in the tests folder.
#[test]
fn cedar_default_ids_and_entities_files_resolve_as_the_cedar_cli_resolves_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docs.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("read.cedar"), POLICIES.replace("@id(\"read.owner\")\n", "")).unwrap();
    std::fs::create_dir_all(dir.path().join("tests/data")).unwrap();
    std::fs::write(dir.path().join("tests/data/entities.json"), ENTITIES).unwrap();
    std::fs::write(dir.path().join("outside.json"), ENTITIES).unwrap();
    let suite = r#"[
        {"name": "by path", "request": {"principal": "Docs::User::\"ann\"", "action": "Docs::Action::\"read\"",
          "resource": "Docs::Doc::\"d1\"", "context": {}}, "entities": "data/entities.json",
          "decision": "allow", "reason": ["policy0"], "num_errors": 0},
        {"name": "escapes", "request": {"principal": "Docs::User::\"ann\"", "action": "Docs::Action::\"read\"",
          "resource": "Docs::Doc::\"d1\"", "context": {}}, "entities": "../outside.json",
          "decision": "allow", "reason": [], "num_errors": 0}
    ]"#;
    std::fs::write(dir.path().join("tests/suite.json"), suite).unwrap();
    let bundle = Bundle::load_dir(dir.path()).unwrap();
    let report = cases::run(&bundle, dir.path(), Timestamp::now());
    assert_eq!(report.results[0].failure, None, "{:?}", report.results);
    assert!(report.results[1].failure.as_deref().unwrap().contains("outside the test file's directory"));
}
