//! `warrant new rule` and `warrant new test` as a new security engineer uses
//! them: a rule scaffolded into a copy of the guest workspace builds, loads
//! and passes its starter cases as written; its one function, changed,
//! changes the verdicts the cases see; a starter policy test runs on a copy
//! of the pack.
//!
//! Builds the rule for `wasm32-wasip2` with cargo (release, in the guest
//! target directory `build.sh` uses, so its dependencies are usually built
//! already): without the target (`rustup target add wasm32-wasip2`) the test
//! fails, it is not skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::server::{copy_dir, pack_dir, warrant_command};

const RULE: &str = "eu-guard";

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-guests")
}

/// Copies the guest workspace without what is built or installed in it.
fn copy_guests(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if matches!(name.to_str(), Some("dist" | "target" | "node_modules")) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_guests(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn warrant(home: &Path, args: &[&str], path: &Path) -> Output {
    warrant_command(home).args(args).arg(path).output().unwrap()
}

/// `cargo build --locked --release --target wasm32-wasip2 -p <rule>` in
/// `guests`: `--locked`, as `build.sh` builds, so a lock file the scaffold
/// did not update fails here. Returns the component.
fn build_rule(guests: &Path) -> Vec<u8> {
    let target = match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/warrant/guests-target"),
        None => guests.join("target"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--locked", "--release", "--target", "wasm32-wasip2", "-p", RULE])
        .current_dir(guests)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the rule failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
        text(&out)
    );
    std::fs::read(target.join("wasm32-wasip2/release").join(format!("{}.wasm", RULE.replace('-', "_")))).unwrap()
}

/// The pack with `rules/` holding only the new rule (its entry from the
/// scaffolded example manifest) and `tests/` only `cases`.
fn bundle(guests: &Path, component: &[u8], cases: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&pack_dir(), dir.path());
    std::fs::remove_dir_all(dir.path().join("tests")).unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let text = std::fs::read_to_string(guests.join("example-rules/manifest.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["rules"].as_array_mut().unwrap().retain(|entry| entry["name"] == RULE);
    assert_eq!(manifest["rules"].as_array().unwrap().len(), 1, "{text}");
    std::fs::write(dir.path().join("rules/manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.path().join(format!("rules/{RULE}.wasm")), component).unwrap();
    std::fs::write(dir.path().join(format!("tests/{RULE}.json")), cases.to_string()).unwrap();
    dir
}

/// `context.purpose == "eu"` denies. (The pack's schema declares `purpose`
/// and no `region`: a rule sees only declared context keys.)
const EDITED_BODY: &str = r#"        if !req.action_in(&config.actions) {
            return Verdict::abstain();
        }
        if req.context_str("purpose") == Some("eu") { Verdict::deny("eu_purpose") } else { Verdict::allow() }
"#;

/// `lib.rs` with the body of `evaluate` replaced.
fn edit_evaluate(lib: &Path, body: &str) {
    let code = std::fs::read_to_string(lib).unwrap();
    let head = "    fn evaluate(config: &Config, req: &Request) -> Verdict {\n";
    let start = code.find(head).expect("`evaluate` as scaffolded") + head.len();
    let end = start + code[start..].find("\n    }\n}\n").expect("the end of `evaluate`") + 1;
    std::fs::write(lib, format!("{}{body}{}", &code[..start], &code[end..])).unwrap();
}

fn case(name: &str, purpose: &str, expect: &str, reasons: &[&str], verdict: &str) -> Value {
    json!({"name": name, "principal": {"type": "User", "id": "alice"}, "action": "run_query",
           "resource": {"type": "Connection", "id": "c_open"},
           "context": {"now": "2026-06-01T12:00:00Z", "purpose": purpose},
           "expect": expect, "reasons": reasons, "rules": {RULE: verdict}})
}

#[test]
fn a_new_rule_builds_loads_and_is_tested() {
    let home = tempfile::tempdir().unwrap();
    let guests = tempfile::tempdir().unwrap();
    copy_guests(&guests_dir(), guests.path());

    let out = warrant(home.path(), &["new", "rule", RULE, "--guests"], guests.path());
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for expected in ["src/lib.rs", "example-rules/manifest.json", "Cargo.lock", "build.sh", "warrant test"] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    assert!(!said.contains("warning"), "{said}");
    let lock = std::fs::read_to_string(guests.path().join("Cargo.lock")).unwrap();
    assert!(lock.contains(&format!("name = \"{RULE}\"")), "{lock}");

    // Taken and invalid names are refused, and nothing is written.
    for (name, why) in [(RULE, "already exists"), ("eu_guard", "builds the same file"), ("EU", "invalid name")] {
        let out = warrant(home.path(), &["new", "rule", name, "--guests"], guests.path());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(why), "{name}: {}", text(&out));
    }
    assert!(!guests.path().join("rules/eu_guard").exists());

    // As scaffolded: it builds, loads and passes its starter cases.
    let starter: Value = serde_json::from_str(
        &std::fs::read_to_string(guests.path().join(format!("example-rules/tests/{RULE}.json"))).unwrap(),
    )
    .unwrap();
    let dir = bundle(guests.path(), &build_rule(guests.path()), &starter);
    let out = warrant(home.path(), &["check"], dir.path());
    assert!(out.status.success() && text(&out).contains(&format!("rules: 1 ({RULE})")), "{}", text(&out));
    let out = warrant(home.path(), &["test"], dir.path());
    assert!(out.status.success() && text(&out).contains("2 passed, 0 failed"), "{}", text(&out));

    // Its one function changed: the verdicts follow.
    edit_evaluate(&guests.path().join(format!("rules/{RULE}/src/lib.rs")), EDITED_BODY);
    let cases = json!({
        "entities": starter["entities"],
        "cases": [
            case("eu is refused", "eu", "deny", &["eu_purpose"], "deny"),
            case("marketing now runs", "marketing", "allow", &[], "allow"),
        ],
    });
    let dir = bundle(guests.path(), &build_rule(guests.path()), &cases);
    let out = warrant(home.path(), &["check"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let out = warrant(home.path(), &["test"], dir.path());
    assert!(out.status.success() && text(&out).contains("2 passed, 0 failed"), "{}", text(&out));

    // A case expecting the wrong answer fails, saying what it got.
    let wrong = json!({"entities": starter["entities"], "cases": [case("eu runs", "eu", "allow", &[], "allow")]});
    std::fs::write(dir.path().join("tests/wrong.json"), wrong.to_string()).unwrap();
    let out = warrant(home.path(), &["test"], dir.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL  eu runs") && said.contains("expected Allow, got Deny"), "{said}");
    assert!(said.contains("2 passed, 1 failed"), "{said}");

    // A configuration the new rule rejects (its `Config` denies unknown
    // fields) is refused at check, naming the rule and the field, instead
    // of every decision denying with `invalid_config`.
    let manifest = dir.path().join("rules/manifest.json");
    let mut entries: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    entries["rules"][0]["config"]["actionz"] = json!(["run_query"]);
    std::fs::write(&manifest, entries.to_string()).unwrap();
    let out = warrant(home.path(), &["check"], dir.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("rule `{RULE}` rejects its `config`")), "{said}");
    assert!(said.contains("unknown field `actionz`"), "the rule's own reason: {said}");
}

#[test]
fn a_new_policy_test_runs_with_the_pack() {
    let home = tempfile::tempdir().unwrap();
    let pack = tempfile::tempdir().unwrap();
    copy_dir(&pack_dir(), pack.path());

    let out = warrant(home.path(), &["new", "test", "first", "--bundle"], pack.path());
    assert!(out.status.success(), "{}", text(&out));
    let path = pack.path().join("tests/first.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let case = &doc["cases"][0];
    assert!(case["principal"]["type"].is_string() && case["action"].is_string(), "{doc}");
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1, "{doc}");

    let out = warrant(home.path(), &["test"], pack.path());
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("first.json\n  ok    first: "), "{said}");

    // It is never overwritten.
    let out = warrant(home.path(), &["new", "test", "first", "--bundle"], pack.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    // Expecting the other answer fails, naming it.
    let flipped = if doc["cases"][0]["expect"] == "allow" { "deny" } else { "allow" };
    doc["cases"][0]["expect"] = json!(flipped);
    doc["cases"][0]["reasons"] = Value::Null;
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = warrant(home.path(), &["test"], pack.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL  first: "), "{}", text(&out));
}
