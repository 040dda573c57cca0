//! Health endpoints, the `check`/`test` subcommands, start-up failures and
//! graceful shutdown.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::server::{Server, copy_dir, pack_dir, warrant_command};

const BROKEN: &str =
    "// a broken policy\n@id(\"broken.one\")\npermit (principal, action, resource)\nwhen { principal.nope == };\n";

fn warrant(args: &[&str], dir: &Path) -> Output {
    let config = tempfile::tempdir().unwrap();
    warrant_command(config.path()).args(args).arg(dir).output().expect("run warrant")
}

/// A temporary copy of the pack with `broken.cedar` added.
fn broken_pack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&pack_dir(), dir.path());
    std::fs::write(dir.path().join("broken.cedar"), BROKEN).unwrap();
    dir
}

#[tokio::test]
async fn healthz_and_readyz() {
    let server = Server::start();
    let health = server.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json["status"], "ok");
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json["status"], "ready");
    assert_eq!(ready.json["policy_digest"], server.digest().await.as_str());
}

#[test]
fn check_reports_file_line_and_column_and_fails() {
    let dir = broken_pack();
    let out = warrant(&["check"], dir.path());
    assert!(!out.status.success(), "check must fail on a broken bundle");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let located = format!("{}/broken.cedar:4:26:", dir.path().display());
    assert!(stderr.contains(&located), "want `{located}` in:\n{stderr}");
}

#[test]
fn check_and_test_pass_on_the_pack() {
    let out = warrant(&["check"], &pack_dir());
    assert!(out.status.success(), "check: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));

    let out = warrant(&["test"], &pack_dir());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "test: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Every case of every policy test file ran and passed.
    let mut cases = 0;
    for entry in std::fs::read_dir(pack_dir().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            // A Cedar CLI suite is an array of cases; warrant's files hold `cases`.
            cases += file.as_array().or_else(|| file["cases"].as_array()).unwrap().len();
        }
    }
    assert!(cases > 0);
    let summary = stdout.lines().last().unwrap_or_default();
    assert_eq!(summary, format!("{cases} passed, 0 failed"));
}

#[test]
fn test_fails_when_a_case_fails() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&pack_dir(), dir.path());
    // Flip one expectation.
    let path = dir.path().join("tests/notebook.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let first = &mut file["cases"][0];
    let name = first["name"].as_str().unwrap().to_owned();
    first["expect"] = if first["expect"] == "allow" { "deny".into() } else { "allow".into() };
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let out = warrant(&["test"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains(&format!("FAIL  {name}")), "{stdout}");
    assert!(stdout.trim_end().ends_with(", 1 failed"), "{stdout}");
}

#[test]
fn serve_with_a_broken_bundle_exits_with_a_diagnostic() {
    let dir = broken_pack();
    let db = tempfile::tempdir().unwrap();
    let mut child = warrant_command(&db.path().join("config"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.path().join("w.db").display()))
        .arg("--policies")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("warrant serve kept running with a broken bundle");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("broken.cedar:4:26"), "{stderr}");
    assert!(!stderr.contains("\"listening\""), "{stderr}");
}

#[tokio::test]
async fn sigterm_exits_zero_promptly() {
    let mut server = Server::start();
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // The log reader may still be draining the pipe.
    server.wait_for_log(Duration::from_secs(5), |log| log.contains("\"stopped\"")).await;
}

/// `GET /metrics` (issue 19, row 11) is an OpenMetrics exposition Prometheus
/// can scrape: requests by route template and status, decisions by
/// outcome, refusals by reason, audit commits, open connections. A made-up
/// path adds no series of its own.
#[tokio::test]
async fn metrics_count_requests_decisions_and_refusals_by_bounded_labels() {
    let server = Server::start();
    let eval = crate::server::eval(("User", "olivia"), "view_notebook", ("Project", "p_single"));
    for _ in 0..3 {
        assert!(!server.decide(&eval).await);
    }
    let garbage = reqwest::Client::new().post(server.url("/v1/authorize")).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(garbage.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(server.get("/no/such/path/made-up-123").await.status, reqwest::StatusCode::NOT_FOUND);
    let r = reqwest::Client::new().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "public, like /healthz");
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().split(' ').next()))
            .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
            .parse()
            .unwrap()
    };
    let evaluation = r#"warrant_http_requests_total{route="/access/v1/evaluation",method="POST",status="200"}"#;
    assert_eq!(value(evaluation), 3.0);
    assert!(value(r#"warrant_decisions_total{outcome="deny"}"#) >= 3.0);
    assert_eq!(value(r#"warrant_refusals_total{kind="api_key.rejected",reason="malformed_key"}"#), 1.0);
    assert_eq!(value(r#"warrant_http_requests_total{route="unmatched",method="GET",status="404"}"#), 1.0);
    assert!(!text.contains("made-up-123"), "a made-up path became a label");
    assert!(value(r#"warrant_http_request_duration_seconds_count{route="/access/v1/evaluation"}"#) >= 3.0);
    assert!(value("warrant_audit_batch_records_count") >= 1.0, "decisions are audited in group commits");
    assert!(value("warrant_http_connections") >= 1.0);
}

/// What `warrant serve` writes to stderr (here a pipe, as when redirected to
/// a file) from its start until it listens, in `format`, on a fresh database
/// with no API keys.
fn start_up_log(format: &str) -> String {
    use std::io::{BufRead as _, BufReader};
    let db = tempfile::tempdir().unwrap();
    let mut child = warrant_command(&db.path().join("config"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", format])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.path().join("w.db").display()))
        .arg("--policies")
        .arg(pack_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(log.contains("listening"), "serve did not start:\n{log}");
    log
}

#[test]
fn the_no_keys_hint_is_said_once_and_a_redirected_text_log_has_no_colour() {
    for format in ["json", "text"] {
        let log = start_up_log(format);
        assert_eq!(log.matches("no API keys yet").count(), 1, "--log-format {format}:\n{log}");
        assert!(log.contains("warrant keys create --scope decide"), "the hint says what to run:\n{log}");
        assert!(!log.contains('\u{1b}'), "--log-format {format} wrote escape codes into a pipe:\n{log:?}");
    }
}

#[test]
fn the_demo_never_writes_into_a_database_it_was_given() {
    let db = tempfile::tempdir().unwrap();
    let out = warrant_command(&db.path().join("config"))
        .current_dir(db.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", db.path().join("real.db").display()))
        .arg("--policies")
        .arg(pack_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("`--demo` keeps its own database in `warrant-demo/`"), "{stderr}");
    assert!(!db.path().join("real.db").exists(), "the given database was created");
    assert!(!db.path().join("warrant-demo").exists(), "nothing of the demo was made");
}
