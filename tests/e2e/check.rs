//! What `warrant check` and `PUT /v1/policies` say about mistakes that
//! strict validation lets through: forbids that can never apply (errors),
//! permits that can never apply (warnings), a rule configuration the rule
//! rejects, and syntax errors (once, with what was expected).

use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::server::{Server, bundle_files, copy_dir, pack_dir, warrant_command};

const SCHEMA: &str = r#"entity User = { admin?: Bool };
entity Team;
entity Doc = { owner: User, public?: Bool };
action read appliesTo { principal: User, resource: Doc };
action manage appliesTo { principal: User, resource: Team };
"#;

/// The three forbids that look like protections and never fire: lines 4,
/// 7 and 10, each with its column.
const NEVER_FIRING: &str = r#"@id("owners-read") permit (principal, action == Action::"read", resource) when { resource.owner == principal };

@id("owner-only") forbid (principal, action == Action::"read", resource)
when { resource has ownr && resource.ownr != principal };

@id("no-teams")
forbid (principal, action == Action::"read", resource is Team);

@id("off") forbid (principal, action, resource)
when { false };
"#;

/// A bundle that loads with two warnings: a dead branch of a permit
/// (line 4, column 8) and a permit no action applies to (line 6).
const WARNINGS_ONLY: &str = r#"@id("owners-read") permit (principal, action == Action::"read", resource) when { resource.owner == principal };

@id("public") permit (principal, action == Action::"read", resource)
when { resource has publc || resource.owner == principal };

@id("teams") permit (principal, action == Action::"read", resource is Team);
"#;

/// A typo that makes Cedar's parser report a second error on the correct
/// line after it (line 4, `}`); the first is at line 3, column 13.
const TYPO: &str = "@id(\"a\")\npermit (principal, action, resource)\nwhen { true context{debug: true}\n};\n";

fn bundle(policies: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("p.cedar"), policies).unwrap();
    dir
}

fn check(dir: &Path) -> (Output, String) {
    let home = tempfile::tempdir().unwrap();
    let out = warrant_command(home.path()).arg("check").arg(dir).output().expect("run warrant check");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// The lines of `stderr` that are diagnostics of `severity`.
fn lines_of<'a>(stderr: &'a str, severity: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(&format!(": {severity}: ")) && !l.starts_with(severity)).collect()
}

#[test]
fn each_forbid_that_can_never_apply_is_an_error_at_its_location() {
    let dir = bundle(NEVER_FIRING);
    let (out, stderr) = check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let d = dir.path().display();
    for (at, id) in [("p.cedar:4:8", "owner-only"), ("p.cedar:6:1", "no-teams"), ("p.cedar:10:8", "off")] {
        let want = format!("{d}/{at}: error: forbid `{id}` can never apply");
        assert!(stderr.contains(&want), "want `{want}` in:\n{stderr}");
    }
    assert_eq!(lines_of(&stderr, "error").len(), 3, "{stderr}");
    assert!(stderr.contains("`resource has ownr` is always false"), "{stderr}");
}

#[test]
fn a_bundle_with_only_warnings_passes_and_prints_them() {
    let dir = bundle(WARNINGS_ONLY);
    let (out, stderr) = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 3 policies"), "{out:?}");
    let d = dir.path().display();
    let warnings = lines_of(&stderr, "warning");
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(warnings[0].starts_with(&format!("{d}/p.cedar:4:8: warning: in permit `public`")), "{stderr}");
    assert!(warnings[1].starts_with(&format!("{d}/p.cedar:6:1: warning: permit `teams` can never apply")), "{stderr}");

    // CI that wants a clean bundle denies warnings.
    let config = tempfile::tempdir().unwrap();
    let denied = warrant_command(config.path()).args(["check", "--deny-warnings"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(1), "{stderr}");
    assert_eq!(lines_of(&stderr, "warning").len(), 2, "{stderr}");
    assert!(stderr.contains("2 warning(s)") && stderr.contains("warnings are denied"), "{stderr}");
    assert!(denied.stdout.is_empty(), "no `ok:` when warnings are denied");
}

/// The example bundle with rules, `token-max-age` given a key its
/// configuration (`deny_unknown_fields`) rejects.
fn bundle_with_a_misconfigured_rule() -> tempfile::TempDir {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-guests/dist/bundle");
    assert!(dist.join("rules/token-max-age.wasm").is_file(), "run wasm-guests/build.sh (tests/run does)");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&dist, dir.path());
    let manifest = dir.path().join("rules/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("\"max_age_days\": 90"), "{text}");
    std::fs::write(&manifest, text.replace("\"max_age_days\": 90", "\"max_age_dayz\": 90")).unwrap();
    dir
}

/// The files of `dir` as `PUT /v1/policies` takes them, rules included.
fn upload_files(dir: &Path) -> Map<String, Value> {
    let mut files = bundle_files(dir);
    for entry in std::fs::read_dir(dir.join("rules")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("rules/{}", path.file_name().unwrap().to_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let text = if name.ends_with(".wasm") { BASE64.encode(&bytes) } else { String::from_utf8(bytes).unwrap() };
        files.insert(name, json!(text));
    }
    files
}

#[tokio::test]
async fn a_rule_configuration_the_rule_rejects_is_refused_by_check_and_upload() {
    let dir = bundle_with_a_misconfigured_rule();
    let (out, stderr) = check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!("{}/rules/manifest.json:", dir.path().display());
    assert!(stderr.contains(&want), "located in the manifest: {stderr}");
    assert!(stderr.contains("error: rule `token-max-age` rejects its `config`"), "{stderr}");
    assert!(stderr.contains("max_age_dayz"), "the rule's own explanation: {stderr}");

    let server = Server::start();
    let before = server.digest().await;
    let r = server.put("/v1/policies", &json!({"files": upload_files(dir.path())})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "invalid_bundle");
    let first = &r.json["error"]["diagnostics"][0];
    assert_eq!(first["file"], "rules/manifest.json", "{first}");
    assert!(first["message"].as_str().unwrap().contains("rule `token-max-age` rejects its `config`"), "{first}");
    assert_eq!(server.digest().await, before, "the old bundle stays");
}

#[tokio::test]
async fn a_syntax_error_lists_what_was_expected_once() {
    let dir = bundle(TYPO);
    let (out, stderr) = check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors = lines_of(&stderr, "error");
    assert_eq!(errors.len(), 1, "one diagnostic, not the follow-on one:\n{stderr}");
    assert!(
        errors[0].starts_with(&format!("{}/p.cedar:3:13: error: unexpected token", dir.path().display())),
        "{stderr}"
    );
    assert!(errors[0].contains(": expected `!=`, `&&`"), "the expected tokens: {stderr}");

    let server = Server::start();
    let mut files = bundle_files(&pack_dir());
    files.insert("typo.cedar".into(), json!(TYPO));
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let diagnostics = r.json["error"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{}", r.text);
    assert_eq!((&diagnostics[0]["file"], &diagnostics[0]["line"]), (&json!("typo.cedar"), &json!(3)));
    assert!(diagnostics[0]["message"].as_str().unwrap().contains("expected `!=`"), "{}", r.text);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("typo.cedar:3:13"), "the summary leads with it");
}

/// Warnings do not refuse an upload: the bundle is swapped in and its
/// warnings come back, each with a severity.
#[tokio::test]
async fn an_upload_with_warnings_is_swapped_in_and_answers_them() {
    let server = Server::start();
    let before = server.digest().await;
    let mut files = bundle_files(&pack_dir());
    let dead = "@id(\"T.dead\") permit (principal, action == Analytics::Action::\"view_notebook\", resource)\n\
                when { resource has ownr && resource.ownr == principal };\n";
    files.insert("dead.cedar".into(), json!(dead));
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_ne!(r.json["digest"], before.as_str());
    let diagnostics = r.json["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{}", r.text);
    let w = &diagnostics[0];
    assert_eq!(w["severity"], "warning", "{w}");
    assert_eq!((&w["file"], &w["line"], &w["column"]), (&json!("dead.cedar"), &json!(2), &json!(8)), "{w}");
    assert!(w["message"].as_str().unwrap().starts_with("permit `T.dead` can never apply"), "{w}");

    // The pack itself has none.
    let r = server.put("/v1/policies", &json!({"files": bundle_files(&pack_dir())})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["diagnostics"], json!([]), "{}", r.text);
}
