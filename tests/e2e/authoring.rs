//! Policy authoring round trips: what `GET /v1/policies?content=true`
//! returns `PUT` takes back unchanged; `warrant policies pull|push` against
//! a served instance; `warrant eval` deciding one request offline, with why;
//! `warrant test --filter`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::policies::BLOCK_VERA;
use crate::server::{Server, copy_dir, pack_dir, warrant_command};

/// The pack with the example rules and their components, built by
/// `wasm-guests/build.sh`.
fn rules_bundle() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-guests/dist/bundle");
    assert!(
        dir.join("rules/manifest.json").is_file(),
        "no built rules bundle in {}: run wasm-guests/build.sh (tests/run does)",
        dir.display()
    );
    dir
}

/// `warrant ARGS…` with a fresh configuration home and, when given, the API
/// key in `WARRANT_API_KEY`.
fn warrant(args: &[&str], key: Option<&str>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut command = warrant_command(home.path());
    command.args(args);
    if let Some(key) = key {
        command.env("WARRANT_API_KEY", key);
    }
    command.output().expect("run warrant")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn both(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), stdout(out), stderr(out))
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

// ---- one file shape for GET and PUT ----

#[tokio::test]
async fn what_get_with_content_returns_puts_back_unchanged() {
    for bundle in [pack_dir(), rules_bundle()] {
        let server = Server::start_with(&bundle);
        let shown = server.get("/v1/policies?content=true").await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
        let digest = shown.json["digest"].as_str().unwrap().to_owned();
        let r = server.put("/v1/policies", &shown.json).await;
        assert_eq!(r.status, StatusCode::OK, "{} → {}", bundle.display(), r.text);
        assert_eq!(r.json["digest"], digest.as_str(), "{}", r.text);
        assert_eq!(r.json["changed"], false, "{}", r.text);
        assert_eq!(server.digest().await, digest);
    }
}

#[tokio::test]
async fn a_bundle_with_rule_components_moves_between_services_as_get_shows_it() {
    let source = Server::start_with(&rules_bundle());
    let shown = source.get("/v1/policies?content=true").await.json;
    assert!(
        shown["files"].as_array().unwrap().iter().any(|f| f["encoding"] == "base64"),
        "the rules bundle has base64 components: {shown}"
    );
    let target = Server::start();
    let r = target.put("/v1/policies", &json!({"files": shown["files"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["changed"], true);
    assert_eq!(r.json["digest"], shown["digest"], "byte for byte: the same digest");
    // And the map form still works (what clients already send).
    let r = target.put("/v1/policies", &json!({"files": crate::server::bundle_files(&pack_dir())})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_listed_upload_of_the_wrong_shape_is_a_400_naming_the_problem() {
    let server = Server::start();
    let before = server.digest().await;
    let mut files = server.get("/v1/policies?content=true").await.json["files"].clone();
    let first = files[0].clone();
    let path = first["path"].as_str().unwrap().to_owned();

    let mut duplicate = files.clone();
    duplicate.as_array_mut().unwrap().push(first.clone());
    let mut no_content = files.clone();
    no_content[0].as_object_mut().unwrap().remove("content");
    let mut hex = files.clone();
    hex[0]["encoding"] = json!("hex");
    let mut not_base64 = files.clone();
    not_base64[0]["encoding"] = json!("base64");
    not_base64[0]["content"] = json!("not base64!");
    files[0]["path"] = json!(42);
    for (body, field, needle) in [
        (duplicate, "files", format!("`{path}` is listed twice")),
        (no_content, "files[0].content", "missing field `content`".to_owned()),
        (hex, "files[0].encoding", "unknown variant `hex`".to_owned()),
        (not_base64, "files", format!("`{path}`")),
        (files, "files[0].path", "expected a string".to_owned()),
    ] {
        let r = server.put("/v1/policies", &json!({ "files": body })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let error = &r.json["error"];
        assert_eq!(error["code"], "invalid_body", "{error}");
        assert_eq!(error["field"], field, "{error}");
        assert!(error["message"].as_str().unwrap().contains(&needle), "want {needle:?} in {error}");
    }
    assert_eq!(server.digest().await, before);
}

// ---- warrant policies pull | push ----

#[tokio::test]
async fn pull_edit_push_changes_the_active_bundle() {
    let server = Server::start_with(&rules_bundle());
    let before = server.digest().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("bundle");

    let out = warrant(&["policies", "pull", path_arg(&dir), "--url", &server.base], Some(&server.api_key));
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains(&before), "pull prints the digest: {}", both(&out));
    assert!(!stdout(&out).contains(&server.api_key) && !stderr(&out).contains(&server.api_key));
    // Components are written as the bytes they are.
    for entry in std::fs::read_dir(rules_bundle().join("rules")).unwrap() {
        let entry = entry.unwrap();
        let pulled = std::fs::read(dir.join("rules").join(entry.file_name())).unwrap();
        assert_eq!(pulled, std::fs::read(entry.path()).unwrap(), "{:?}", entry.file_name());
    }
    let checked = warrant(&["check", path_arg(&dir)], None);
    assert!(stdout(&checked).contains(&before), "the pulled directory is the bundle: {}", both(&checked));

    // A second pull into the same directory is refused, and allowed with --force.
    let again = warrant(&["policies", "pull", path_arg(&dir), "--url", &server.base], Some(&server.api_key));
    assert_eq!(again.status.code(), Some(2), "{}", both(&again));
    assert!(stderr(&again).contains("--force"), "{}", both(&again));

    std::fs::write(dir.join("block.cedar"), BLOCK_VERA).unwrap();
    // The key from a file this time.
    let key_file = work.path().join("key");
    std::fs::write(&key_file, format!("{}\n", server.api_key)).unwrap();
    let out = warrant(
        &["policies", "push", path_arg(&dir), "--url", &server.base, "--api-key-file", path_arg(&key_file)],
        None,
    );
    assert!(out.status.success(), "{}", both(&out));
    let after = server.digest().await;
    assert_ne!(after, before);
    assert!(stdout(&out).contains(&after), "push prints the new digest: {}", both(&out));
    let shown = server.get("/v1/policies").await.json;
    assert!(shown["files"].as_array().unwrap().iter().any(|f| f["path"] == "block.cedar"), "{shown}");

    // Pulling with --force brings the directory back to the active bundle.
    std::fs::remove_file(dir.join("block.cedar")).unwrap();
    std::fs::write(dir.join("stale.cedar"), "// not in the bundle\n").unwrap();
    let out = warrant(&["policies", "pull", path_arg(&dir), "--force", "--url", &server.base], Some(&server.api_key));
    assert!(out.status.success(), "{}", both(&out));
    assert!(dir.join("block.cedar").is_file() && !dir.join("stale.cedar").exists(), "{}", both(&out));
}

#[tokio::test]
async fn a_pushed_bad_bundle_prints_located_diagnostics_and_exits_1() {
    let server = Server::start();
    let before = server.digest().await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&pack_dir(), dir.path());
    std::fs::write(
        dir.path().join("broken.cedar"),
        "// a broken policy\n@id(\"broken.one\")\npermit (principal, action, resource)\nwhen { principal.nope == };\n",
    )
    .unwrap();
    let out = warrant(&["policies", "push", path_arg(dir.path()), "--url", &server.base], Some(&server.api_key));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(stderr(&out).contains("broken.cedar:4:26: "), "{}", both(&out));
    assert_eq!(server.digest().await, before);
}

#[tokio::test]
async fn push_without_a_key_or_with_a_bad_one_or_to_nobody_exits_2_saying_which() {
    let server = Server::start();
    let dir = pack_dir();
    let out = warrant(&["policies", "push", path_arg(&dir), "--url", &server.base], None);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("WARRANT_API_KEY"), "{}", both(&out));

    let out = warrant(&["policies", "push", path_arg(&dir), "--url", &server.base], Some("wrnt_nope_nope"));
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("401"), "{}", both(&out));
    assert!(!stderr(&out).contains("wrnt_nope_nope"), "the key is never printed: {}", both(&out));

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = warrant(&["policies", "pull", "/nonexistent/never-written", "--url", &url], Some(&server.api_key));
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("cannot reach"), "{}", both(&out));
}

// ---- warrant eval ----

/// The entities of the pack's notebook tests, in a file of their own.
fn notebook_entities(dir: &Path) -> PathBuf {
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(pack_dir().join("tests/notebook.json")).unwrap()).unwrap();
    let path = dir.join("entities.json");
    std::fs::write(&path, serde_json::to_string(&file["entities"]).unwrap()).unwrap();
    path
}

#[test]
fn eval_says_a_principal_is_missing_from_the_entities() {
    let policies = pack_dir();
    let out = warrant(
        &[
            "eval",
            "--policies",
            path_arg(&policies),
            "--principal",
            "User::\"alice\"",
            "--action",
            "view_notebook",
            "--resource",
            "Project::p1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "a deny: {}", both(&out));
    let text = stdout(&out);
    assert!(text.starts_with("DENY"), "{text}");
    assert!(text.contains("no_permit"), "{text}");
    assert!(text.contains(r#"Analytics::User::"alice""#) && text.contains("not in the entities"), "{text}");
}

#[test]
fn eval_exits_0_on_allow_and_1_on_deny_and_2_when_it_cannot_decide() {
    let work = tempfile::tempdir().unwrap();
    let entities = notebook_entities(work.path());
    let policies = pack_dir();
    let ask = |principal: &str, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--policies",
            path_arg(&policies),
            "--entities",
            path_arg(&entities),
            "--principal",
            principal,
            "--action",
            "view_notebook",
            "--resource",
            "Analytics::Project::\"p_multi\"",
            "--context",
            r#"{"now": "2026-06-01T12:00:00Z"}"#,
        ];
        args.extend_from_slice(extra);
        warrant(&args, None)
    };
    let allowed = ask("User::eddie", &[]);
    assert_eq!(allowed.status.code(), Some(0), "{}", both(&allowed));
    assert!(stdout(&allowed).starts_with("ALLOW"), "{}", both(&allowed));

    let denied = ask("User::oscar", &["--json"]);
    assert_eq!(denied.status.code(), Some(1), "{}", both(&denied));
    let answer: Value = serde_json::from_str(&stdout(&denied)).unwrap();
    assert_eq!(answer["decision"], "deny", "{answer}");
    assert_eq!(answer["reasons"], json!(["no_permit"]), "{answer}");
    assert!(answer["policy_digest"].as_str().unwrap().starts_with("sha256:"), "{answer}");

    let unknown = warrant(
        &[
            "eval",
            "--policies",
            path_arg(&policies),
            "--principal",
            "User::a",
            "--action",
            "fly",
            "--resource",
            "Project::p",
        ],
        None,
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", both(&unknown));
    assert!(stderr(&unknown).contains("unknown action `fly`"), "{}", both(&unknown));
}

#[test]
fn eval_reads_a_native_request_from_standard_input() {
    let work = tempfile::tempdir().unwrap();
    let entities = notebook_entities(work.path());
    let home = tempfile::tempdir().unwrap();
    let request = json!({
        "principal": {"type": "User", "id": "vera"}, "action": "view_notebook",
        "resource": {"type": "Project", "id": "p_multi"}, "context": {"now": "2026-06-01T12:00:00Z"}
    });
    let mut child: std::process::Child = warrant_command(home.path())
        .args(["eval", "--policies", path_arg(&pack_dir()), "--entities", path_arg(&entities), "--request", "-"])
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert!(!answer["policies"].as_array().unwrap().is_empty(), "{answer}");
}

// ---- warrant test --filter ----

#[test]
fn test_filter_runs_the_matching_cases_and_a_filter_matching_nothing_fails() {
    let dir = pack_dir();
    let out = warrant(&["test", path_arg(&dir), "--filter", "non-member cannot view"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", both(&out));
    assert!(text.contains("ok    R1: non-member cannot view the notebook"), "{text}");
    assert!(!text.contains("R1: owner views the notebook"), "{text}");
    assert!(text.contains("filtered out"), "{text}");

    let by_file = warrant(&["test", path_arg(&dir), "--filter", "tokens.json"], None);
    assert!(by_file.status.success(), "{}", both(&by_file));
    assert!(
        stdout(&by_file).contains("tokens.json") && !stdout(&by_file).contains("notebook.json"),
        "{}",
        both(&by_file)
    );

    let none = warrant(&["test", path_arg(&dir), "--filter", "no case is named like this"], None);
    assert_eq!(none.status.code(), Some(1), "{}", both(&none));
    assert!(stderr(&none).contains("no case matches"), "{}", both(&none));
}
