//! Custom Wasm rules through the real service: the three Rust rules and the
//! JavaScript rule (built by `wasm-guests/build.sh` into `wasm-guests/dist`)
//! change decisions exactly as their configurations say; hostile guests
//! (`tests/fixtures/rules/*.wat`) fail closed while the service keeps serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Server, copy_dir, pack_dir, pack_entities, warrant_command};

/// The built guests; `tests/run` builds them before the tests.
fn dist() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-guests/dist");
    assert!(
        dir.join("sql-guard.wasm").is_file() && dir.join("js-rule.wasm").is_file(),
        "no built guests in {}: run wasm-guests/build.sh (tests/run does)",
        dir.display()
    );
    dir
}

fn hostile(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules").join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The policy pack with `rules/`: `components` are (file name, bytes).
fn bundle(manifest: &Value, components: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&pack_dir(), dir.path());
    std::fs::remove_dir_all(dir.path().join("tests")).unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/manifest.json"), serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    for (file, bytes) in components {
        std::fs::write(dir.path().join("rules").join(file), bytes).unwrap();
    }
    dir
}

fn guest(file: &str) -> (&str, Vec<u8>) {
    (file, std::fs::read(dist().join(file)).unwrap())
}

/// All four real rules, enforcing.
fn real_manifest(max_age_days: u32) -> Value {
    json!({"version": 1, "rules": [
        {"name": "sql-guard", "file": "sql-guard.wasm", "actions": ["run_query"], "mode": "enforce",
         "config": {"pii": {"tables": ["hr.salaries"], "columns": ["ssn"]}, "allowed_purposes": ["fraud_review"]},
         "limits": {"fuel": 200_000_000, "memory_bytes": 16_777_216, "timeout_ms": 200}},
        {"name": "token-max-age", "file": "token-max-age.wasm", "actions": ["use_token"], "mode": "enforce",
         "config": {"max_age_days": max_age_days}},
        {"name": "change-window", "file": "change-window.wasm", "actions": ["revoke_token"], "mode": "enforce",
         "isolation": "fresh",
         "config": {"time_zone": "Europe/Berlin", "admin_roles": ["admin"],
                    "windows": [{"days": ["tue", "thu"], "start": "09:00", "end": "17:00"}]}},
        {"name": "purpose-required", "file": "js-rule.wasm", "actions": ["run_query"], "mode": "enforce",
         "config": {"actions": ["run_query"], "allowed_purposes": ["fraud_review", "reporting"]},
         "limits": {"fuel": 100_000_000, "memory_bytes": 33_554_432, "timeout_ms": 200}}
    ]})
}

fn real_components() -> Vec<(&'static str, Vec<u8>)> {
    ["sql-guard.wasm", "token-max-age.wasm", "change-window.wasm", "js-rule.wasm"].into_iter().map(guest).collect()
}

async fn pack_entities_for_rules(server: &Server) {
    let mut docs = pack_entities("tokens");
    // connections.json's connections and grants win over tokens.json's copies.
    let connections = pack_entities("connections");
    docs.retain(|d| !connections.iter().any(|c| c["uid"] == d["uid"]));
    docs.extend(connections);
    server.put_entities(&docs).await;
}

const MONDAY: &str = "2026-06-01T00:00:00Z";

async fn authorize(server: &Server, user: &str, action: &str, resource: (&str, &str), context: Value) -> Value {
    let body = json!({"principal": {"type": "User", "id": user}, "action": action,
                      "resource": {"type": resource.0, "id": resource.1}, "context": context});
    let r = server.post("/v1/authorize", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{body} → {}", r.text);
    r.json
}

fn verdict_of<'a>(answer: &'a Value, rule: &str) -> &'a Value {
    answer["rules"].as_array().and_then(|v| v.iter().find(|r| r["rule"] == rule)).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn the_real_rules_change_decisions_as_their_configurations_say() {
    let dir = bundle(&real_manifest(90), &real_components());
    let server = Server::start_with(dir.path());
    pack_entities_for_rules(&server).await;
    let conn = ("Connection", "c_open");
    let token = ("Token", "t_active");

    // sql-guard (Rust, sqlparser) and purpose-required (JavaScript) on run_query.
    let pii = authorize(
        &server,
        "eddie",
        "run_query",
        conn,
        json!({"now": MONDAY, "sql": "SELECT * FROM hr.salaries", "purpose": "reporting"}),
    )
    .await;
    assert_eq!(pii["decision"], "deny", "{pii}");
    assert_eq!(pii["reasons"], json!(["pii_table:hr.salaries"]));
    assert_eq!(verdict_of(&pii, "sql-guard")["verdict"], "deny");
    assert_eq!(verdict_of(&pii, "purpose-required")["verdict"], "allow", "every rule for the action is asked");
    let fraud = authorize(
        &server,
        "eddie",
        "run_query",
        conn,
        json!({"now": MONDAY, "sql": "SELECT ssn FROM people", "purpose": "fraud_review"}),
    )
    .await;
    assert_eq!(fraud["decision"], "allow", "{fraud}");
    let no_purpose = authorize(&server, "eddie", "run_query", conn, json!({"now": MONDAY, "sql": "SELECT 1"})).await;
    assert_eq!(no_purpose["decision"], "deny");
    assert_eq!(no_purpose["reasons"], json!(["purpose_missing"]), "the JavaScript rule denies: {no_purpose}");
    let odd_purpose =
        authorize(&server, "eddie", "run_query", conn, json!({"now": MONDAY, "purpose": "curiosity"})).await;
    assert_eq!(odd_purpose["reasons"], json!(["purpose_not_allowed:curiosity"]));
    assert_eq!(verdict_of(&odd_purpose, "sql-guard")["verdict"], "abstain", "no SQL: sql-guard abstains");

    // token-max-age: 90 days.
    let old = authorize(
        &server,
        "eddie",
        "use_token",
        token,
        json!({"now": MONDAY, "token_issued_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(old["decision"], "deny");
    assert_eq!(old["reasons"], json!(["token_too_old"]));
    let recent = authorize(
        &server,
        "eddie",
        "use_token",
        token,
        json!({"now": MONDAY, "token_issued_at": "2026-05-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(recent["decision"], "allow", "{recent}");

    // change-window: Tuesday and Thursday 09:00–17:00 Berlin; admins exempt.
    let monday = authorize(&server, "eddie", "revoke_token", token, json!({"now": MONDAY})).await;
    assert_eq!(monday["reasons"], json!(["outside_change_window"]), "{monday}");
    let tuesday = authorize(&server, "eddie", "revoke_token", token, json!({"now": "2026-06-02T10:00:00+02:00"})).await;
    assert_eq!(tuesday["decision"], "allow", "{tuesday}");
    let late = authorize(&server, "eddie", "revoke_token", token, json!({"now": "2026-06-02T17:00:00+02:00"})).await;
    assert_eq!(late["reasons"], json!(["outside_change_window"]), "the window's end is exclusive");
    let admin =
        authorize(&server, "adam", "revoke_token", token, json!({"now": MONDAY, "principal_role": "admin"})).await;
    assert_eq!(admin["decision"], "allow", "{admin}");

    // Cedar's deny stands and no rule is asked.
    let revoked = authorize(
        &server,
        "eddie",
        "use_token",
        ("Token", "t_revoked"),
        json!({"now": MONDAY, "token_issued_at": "2026-05-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(revoked["decision"], "deny");
    assert_eq!(revoked["rules"], json!([]));

    // AuthZEN: verdicts only in an explained answer.
    let mut body = json!({"subject": {"type": "User", "id": "eddie"}, "action": {"name": "use_token"},
                          "resource": {"type": "Token", "id": "t_active"},
                          "context": {"now": MONDAY, "token_issued_at": "2026-01-01T00:00:00Z"}});
    let plain = server.evaluation(&body).await;
    assert_eq!(plain, json!({"decision": false}));
    body["options"] = json!({"explain": true});
    let explained = server.evaluation(&body).await;
    assert_eq!(explained["context"]["reasons"], json!(["token_too_old"]));
    assert_eq!(explained["context"]["rules"][0]["rule"], "token-max-age");
    assert_eq!(explained["context"]["rules"][0]["mode"], "enforce");

    // The audit record carries the verdicts.
    let records = server.audit_events("kind=decision").await;
    let recorded = records.iter().find(|r| r["reasons"] == json!(["token_too_old"])).expect("a token_too_old record");
    assert_eq!(recorded["details"]["rules"][0]["verdict"], "deny", "{recorded}");
    assert_eq!(recorded["details"]["rules"][0]["reason"], "token_too_old");

    // A new configuration, uploaded with its components (base64), changes
    // the decision: 200 days allows the 151-day-old token.
    let mut files = serde_json::Map::new();
    for (path, text) in crate::server::bundle_files(dir.path()) {
        files.insert(path, text);
    }
    files.insert("rules/manifest.json".into(), json!(serde_json::to_string(&real_manifest(200)).unwrap()));
    for (file, bytes) in real_components() {
        files.insert(format!("rules/{file}"), json!(base64_encode(&bytes)));
    }
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let now_ok = authorize(
        &server,
        "eddie",
        "use_token",
        token,
        json!({"now": MONDAY, "token_issued_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(now_ok["decision"], "allow", "{now_ok}");
    let shown = server.get("/v1/policies").await;
    let listed: Vec<&str> = shown.json["files"].as_array().unwrap().iter().filter_map(|f| f["path"].as_str()).collect();
    assert!(listed.contains(&"rules/js-rule.wasm") && listed.contains(&"rules/manifest.json"), "{listed:?}");
}

/// Standard base64, as `PUT /v1/policies` takes components.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hostile_manifest(rule: &str, fixture: &str, limits: Value) -> Value {
    json!({"version": 1, "rules": [{"name": rule, "file": format!("{fixture}.wasm"), "actions": ["run_query"],
                                    "mode": "enforce", "limits": limits}]})
}

#[tokio::test]
async fn an_endless_loop_denies_while_health_and_other_decisions_keep_answering() {
    let manifest = hostile_manifest("spin", "endless-loop", json!({"fuel": 50_000_000, "timeout_ms": 50}));
    let dir = bundle(&manifest, &[("endless-loop.wasm", hostile("endless-loop"))]);
    let server = Server::start_with(dir.path());
    pack_entities_for_rules(&server).await;
    let run_query = json!({"principal": {"type": "User", "id": "eddie"}, "action": "run_query",
                           "resource": {"type": "Connection", "id": "c_open"}, "context": {"now": MONDAY}});
    let use_token = json!({"principal": {"type": "User", "id": "eddie"}, "action": "use_token",
                           "resource": {"type": "Token", "id": "t_active"}, "context": {"now": MONDAY}});

    // 16 clients keep the loop rule busy for two seconds...
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut load = Vec::new();
    for _ in 0..16 {
        let (client, url, body) = (reqwest::Client::new(), server.url("/v1/authorize"), run_query.clone());
        let key = server.api_key.clone();
        load.push(tokio::spawn(async move {
            let mut denied = 0u32;
            while Instant::now() < deadline {
                let r = client.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let answer: Value = r.json().await.unwrap();
                assert_eq!(answer["decision"], "deny", "{answer}");
                assert_eq!(answer["reasons"], json!(["rule_error:spin"]), "{answer}");
                denied += 1;
            }
            denied
        }));
    }
    // ...while health checks and Cedar-only decisions are answered throughout.
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    while Instant::now() < deadline {
        let started = Instant::now();
        assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
        let token = server.post("/v1/authorize", &use_token).await;
        assert_eq!(token.json["decision"], "allow", "{}", token.text);
        slowest = slowest.max(started.elapsed());
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut denied = 0;
    for task in load {
        denied += task.await.unwrap();
    }
    eprintln!("loop decisions denied: {denied}; health+decision pairs answered: {answered}, slowest {slowest:?}");
    assert!(denied >= 16, "every client got answers: {denied}");
    assert!(answered >= 10, "health checks and other decisions kept being answered: {answered}");
    assert!(slowest < Duration::from_secs(2), "a health check waited {slowest:?} behind the loop");
}

#[tokio::test]
async fn hostile_guests_each_deny_with_their_failure() {
    for (rule, fixture, limits, code) in [
        ("hog", "memory-hog", json!({"memory_bytes": 1_048_576}), "memory_limit"),
        ("boom", "trap", json!({}), "trap"),
        ("spin", "endless-loop", json!({"fuel": 1_000_000}), "out_of_fuel"),
    ] {
        let dir = bundle(&hostile_manifest(rule, fixture, limits), &[(&format!("{fixture}.wasm"), hostile(fixture))]);
        let server = Server::start_with(dir.path());
        pack_entities_for_rules(&server).await;
        for _ in 0..2 {
            let answer =
                authorize(&server, "eddie", "run_query", ("Connection", "c_open"), json!({"now": MONDAY})).await;
            assert_eq!(answer["decision"], "deny", "{answer}");
            assert_eq!(answer["reasons"], json!([format!("rule_error:{rule}")]));
            assert_eq!(verdict_of(&answer, rule)["verdict"], "error");
            assert_eq!(verdict_of(&answer, rule)["reason"], code, "{answer}");
        }
        assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    }
}

/// A rule's log line reaches the service's log redacted with the audit
/// log's digest key: a token it logs shows as the digest an auditor gets
/// from `/v1/audit/digest`, never in clear.
#[tokio::test]
async fn a_rules_log_line_reaches_the_service_log_redacted() {
    let manifest = json!({"version": 1, "rules": [{"name": "chatty", "file": "log-context.wasm",
                                                   "actions": ["run_query"], "mode": "observe"}]});
    let dir = bundle(&manifest, &[("log-context.wasm", hostile("log-context"))]);
    let server = Server::start_with(dir.path());
    pack_entities_for_rules(&server).await;
    let context = json!({"now": MONDAY, "sql": "select 1 -- as Bearer s3cr3t-token-abc"});
    let answer = authorize(&server, "eddie", "run_query", ("Connection", "c_open"), context).await;
    assert_eq!(verdict_of(&answer, "chatty")["verdict"], "abstain", "{answer}");

    let digest = server.post("/v1/audit/digest", &json!({"value": "s3cr3t-token-abc"})).await;
    let digest = digest.json["digest"].as_str().expect("a digest").to_owned();
    server
        .wait_for_log(Duration::from_secs(5), |log| log.contains("select 1 -- as Bearer") && log.contains(&digest))
        .await;
    assert!(!server.logs().contains("s3cr3t"), "the token in clear in the log:\n{}", server.logs());
}

#[tokio::test]
async fn check_and_upload_refuse_a_forbidden_import() {
    let manifest = hostile_manifest("clock", "wall-clock", json!({}));
    let dir = bundle(&manifest, &[("wall-clock.wasm", hostile("wall-clock"))]);
    let home = tempfile::tempdir().unwrap();
    let out = warrant_command(home.path()).arg("check").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rules/wall-clock.wasm") && stderr.contains("`wasi:clocks/wall-clock@0.2.0`"), "{stderr}");

    // Uploading it is refused too, and the active bundle stays.
    let server = Server::start();
    let before = server.digest().await;
    let mut files = crate::server::bundle_files(&pack_dir());
    files.insert("rules/manifest.json".into(), json!(serde_json::to_string(&manifest).unwrap()));
    files.insert("rules/wall-clock.wasm".into(), json!(base64_encode(&hostile("wall-clock"))));
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("wasi:clocks/wall-clock@0.2.0"), "{}", r.text);
    assert_eq!(server.digest().await, before);
}

#[test]
fn check_and_test_cover_the_example_bundle() {
    let bundle = dist().join("bundle");
    let home = tempfile::tempdir().unwrap();
    let out = warrant_command(home.path()).arg("check").arg(&bundle).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("rules: 4 (sql-guard, token-max-age, change-window, purpose-required)"), "{stdout}");
    let out = warrant_command(home.path()).arg("test").arg(&bundle).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("rules.json") && stdout.contains(" 0 failed"), "{stdout}");

    // A case expecting the wrong verdict fails, naming the rule.
    let broken = tempfile::tempdir().unwrap();
    copy_dir(&bundle, broken.path());
    let cases = broken.path().join("tests/rules.json");
    let text = std::fs::read_to_string(&cases).unwrap().replacen(
        "\"token-max-age\": \"deny\"",
        "\"token-max-age\": \"allow\"",
        1,
    );
    std::fs::write(&cases, text).unwrap();
    let out = warrant_command(home.path()).arg("test").arg(broken.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("expected rule `token-max-age` to say Allow, got Deny"), "{stdout}");
}

/// Credential resolution asks `use_token` with the token's issue time, so a
/// 90-day rotation rule applies where tokens are actually handed out.
#[tokio::test]
async fn token_max_age_applies_to_credential_resolution() {
    let manifest = json!({"version": 1, "rules": [
        {"name": "token-max-age", "file": "token-max-age.wasm", "actions": ["use_token"], "mode": "enforce",
         "config": {"max_age_days": 90}}]});
    let dir = bundle(&manifest, &[guest("token-max-age.wasm")]);
    let server = Server::start_with(dir.path());
    server.put_entities(&crate::credentials::entities()).await;
    let issue = |issued_at: String| {
        json!({"kind": "token.issued", "token_id": "tok-eddie", "owner": "eddie", "connection": "c_wh",
               "role": "ANALYST", "expires_at": "2099-01-01T00:00:00Z", "issued_at": issued_at})
    };
    // Normalised as the service stores times: UTC, milliseconds.
    let days_ago = |days: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let yesterday = days_ago(1);

    let r = server.post("/v1/tokens/events", &issue(days_ago(200))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.json["token"]["issued_at"].is_string(), "{}", r.text);
    let old = crate::credentials::resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await;
    assert_eq!(old, json!({"decision": "deny", "reasons": ["token_too_old"]}), "{old}");

    // Re-authenticating issues the token anew: its age restarts.
    let r = server.post("/v1/tokens/events", &issue(yesterday.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let fresh = crate::credentials::resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await;
    assert_eq!(fresh["decision"], "allow", "{fresh}");
    assert_eq!(fresh["credential"]["token_id"], "tok-eddie");

    // A refresh keeps the issue time (it continues the same grant).
    let refresh = json!({"kind": "token.refreshed", "token_id": "tok-eddie", "owner": "eddie",
                         "connection": "c_wh", "expires_at": "2099-06-01T00:00:00Z"});
    let r = server.post("/v1/tokens/events", &refresh).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["token"]["issued_at"], json!(yesterday));

    let bad = server.post("/v1/tokens/events", &issue("last tuesday".into())).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(bad.json["error"]["field"], "issued_at");
}

/// A search lists only what a decision would allow: an enforcing rule that
/// denies `browse_schema` empties the listing; the same rule observing
/// changes nothing, and other actions' searches are untouched.
#[tokio::test]
async fn searches_list_only_what_the_rules_allow() {
    let docs = pack_entities("data_browser");
    let search = |action: &str| json!({"subject": {"type": "User", "id": "vera"}, "action": {"name": action}, "resource": {"type": "Schema"}});
    let mut listings = Vec::new();
    for mode in ["enforce", "observe"] {
        let manifest = json!({"version": 1, "rules": [
            {"name": "no-browsing", "file": "deny.wasm", "actions": ["browse_schema"], "mode": mode}]});
        let dir = bundle(&manifest, &[("deny.wasm", hostile("deny"))]);
        let server = Server::start_with(dir.path());
        server.put_entities(&docs).await;
        let r = server.post("/access/v1/search/resource", &search("browse_schema")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        listings.push(r.json["results"].clone());
        // The single decision agrees with the listing.
        let d = authorize(&server, "vera", "browse_schema", ("Schema", "s_public"), json!({})).await;
        assert_eq!(d["decision"], if mode == "enforce" { "deny" } else { "allow" }, "{d}");
    }
    assert_eq!(listings[0], json!([]), "an enforcing deny rule must empty the listing");
    assert_eq!(listings[1], json!([{"type": "Schema", "id": "s_public"}]), "an observing rule changes nothing");
}

/// A rule's reason is bounded (issue 19, row 10): a 1 MiB reason reaches
/// neither the answer nor the audit record whole.
#[tokio::test]
async fn a_huge_reason_is_cut_before_the_answer_and_the_log() {
    let manifest = hostile_manifest("verbose", "long-reason", json!({}));
    let dir = bundle(&manifest, &[("long-reason.wasm", hostile("long-reason"))]);
    let server = Server::start_with(dir.path());
    pack_entities_for_rules(&server).await;
    let answer = authorize(&server, "eddie", "run_query", ("Connection", "c_open"), json!({"now": MONDAY})).await;
    assert_eq!(answer["decision"], "deny", "{answer}");
    let reason = verdict_of(&answer, "verbose")["reason"].as_str().unwrap().to_owned();
    assert!(reason.len() <= 256 && reason.starts_with("AAAA") && reason.ends_with('…'), "{} bytes", reason.len());
    let records = server.get("/v1/audit/export").await.text;
    assert!(records.len() < 64 * 1024, "the log holds {} bytes after one decision", records.len());
}

/// Waiting for a rule slot has a deadline (issue 19, row 10): with one slot
/// held by a slow rule, callers are refused with 503 `rules_busy` and
/// `Retry-After` after the configured wait instead of queueing for seconds.
#[tokio::test]
async fn callers_waiting_for_a_busy_rule_slot_are_refused_after_the_deadline() {
    let manifest = hostile_manifest("spin", "endless-loop", json!({"fuel": 10_000_000_000u64, "timeout_ms": 300}));
    let dir = bundle(&manifest, &[("endless-loop.wasm", hostile("endless-loop"))]);
    let server = Server::start_with_args_in(dir.path(), &["--rule-workers", "1", "--rule-slot-wait-ms", "100"]);
    pack_entities_for_rules(&server).await;
    let run_query = json!({"principal": {"type": "User", "id": "eddie"}, "action": "run_query",
                           "resource": {"type": "Connection", "id": "c_open"}, "context": {"now": MONDAY}});
    let mut calls = Vec::new();
    for _ in 0..8 {
        let (client, url, body, key) =
            (reqwest::Client::new(), server.url("/v1/authorize"), run_query.clone(), server.api_key.clone());
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = client.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let status = r.status();
            let answer: Value = r.json().await.unwrap();
            (status, retry_after, answer, started.elapsed())
        }));
    }
    let mut busy = 0;
    for call in calls {
        let (status, retry_after, answer, took) = call.await.unwrap();
        match status {
            StatusCode::OK => assert_eq!(answer["reasons"], json!(["rule_error:spin"]), "{answer}"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer["error"]["code"], "rules_busy", "{answer}");
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert!(took < Duration::from_secs(2), "refused only after {took:?}");
                busy += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert!(busy >= 4, "8 callers, one 300 ms slot, a 100 ms wait: only {busy} refused");
}

/// The compiled-rule cache is trusted only as far as it must be (issue 19,
/// row 9): a cache directory others can write to is refused (rules compile
/// in memory, decisions unchanged), and in a private one, artifacts swapped
/// between two rules are compiled again rather than run as each other.
#[tokio::test]
async fn the_rule_cache_refuses_open_directories_and_swapped_artifacts() {
    use std::os::unix::fs::PermissionsExt as _;
    let manifest = json!({"version": 1, "rules": [
        {"name": "says-no", "file": "deny.wasm", "actions": ["run_query"], "mode": "enforce"},
        {"name": "lets-through", "file": "allow.wasm", "actions": ["use_token"], "mode": "enforce"}
    ]});
    let dir = bundle(&manifest, &[("deny.wasm", hostile("deny")), ("allow.wasm", hostile("allow"))]);

    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = open.path().display().to_string();
    let server = Server::start_with_args_in(dir.path(), &["--rule-cache", &cache]);
    pack_entities_for_rules(&server).await;
    assert_eq!(ask(&server).await["reasons"], json!(["fixture_says_no"]));
    assert!(server.logs().contains("writable by others (mode 777)"), "{}", server.logs());
    assert_eq!(std::fs::read_dir(open.path()).unwrap().count(), 0, "nothing written to an open directory");
    drop(server);

    let private = tempfile::tempdir().unwrap();
    let cache = private.path().display().to_string();
    let mut server = Server::start_with_args_in(dir.path(), &["--rule-cache", &cache]);
    pack_entities_for_rules(&server).await;
    assert_eq!(ask(&server).await["reasons"], json!(["fixture_says_no"]));
    server.stop();
    let artifacts: Vec<_> = std::fs::read_dir(private.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");
    let (a, b) = (std::fs::read(&artifacts[0]).unwrap(), std::fs::read(&artifacts[1]).unwrap());
    std::fs::write(&artifacts[0], &b).unwrap();
    std::fs::write(&artifacts[1], &a).unwrap();
    server.start_again();
    assert_eq!(ask(&server).await["reasons"], json!(["fixture_says_no"]), "the deny rule still denies");
    assert!(server.logs().contains("\"compiled\":2") || server.logs().contains("compiled=2"), "{}", server.logs());
}

async fn ask(server: &Server) -> Value {
    authorize(server, "eddie", "run_query", ("Connection", "c_open"), json!({"now": MONDAY})).await
}
