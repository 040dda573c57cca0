//! Webhooks (docs/audit.md#webhooks), through the real binary with a
//! `--webhooks` file.
//!
//! Inbound deliveries are signed here by an independent Standard Webhooks
//! signer (HMAC-SHA256 over `id.timestamp.body`, base64 written out below);
//! the published test vectors, whose 2021 timestamps are outside the
//! 5-minute tolerance, are checked by the service's `webhooks::verify` unit
//! tests with an injected clock. Outbound deliveries go to a loopback
//! subscriber written here that is down, then failing, then accepting.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit as _, Mac as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::credentials::{FUTURE, entities, event, resolve};
use crate::server::{Reply, Server, warrant_command};
use crate::tls::TestCa;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A value that must never be stored or sent in clear.
const PLANTED: &str = "ya29.PLANTED-webhook-secret-value";

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `v1,<base64>` over `id.timestamp.body`.
fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", base64(&hmac(key, &[id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body])))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A distinct 24-byte secret and its `whsec_` form.
pub(crate) fn secret(seed: u8) -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0..24u8).map(|i| i.wrapping_mul(37).wrapping_add(seed)).collect();
    let text = format!("whsec_{}", base64(&bytes));
    (bytes, text)
}

/// GitHub-style source secret.
const LEGACY_SECRET: &str = "It's a Secret to Everybody";

/// Writes the webhooks file and starts a server with it and the
/// credentials suite's entities.
pub(crate) async fn start(config: &Value) -> (Server, TempDir) {
    start_in(tempfile::tempdir().unwrap(), config).await
}

/// [`start`], with the webhooks file written into `dir` (beside files a
/// test put there first).
async fn start_in(dir: TempDir, config: &Value) -> (Server, TempDir) {
    let path: PathBuf = dir.path().join("webhooks.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let args =
        [std::ffi::OsStr::new("--webhooks"), path.as_os_str(), SUMMARY_EVERY[0].as_ref(), SUMMARY_EVERY[1].as_ref()];
    let server = Server::start_with_args(&args);
    server.put_entities(&entities()).await;
    (server, dir)
}

/// Refusal summaries every 200 ms, so tests need not wait a minute.
pub(crate) const SUMMARY_EVERY: [&str; 2] = ["--rejection-summary-interval-ms", "200"];

/// The `(actor, reason)` → count of the summary records of `kind`, once
/// they add up to `total` (summaries are written on a timer).
pub(crate) async fn summaries(server: &Server, kind: &str, total: u64) -> BTreeMap<(String, String), u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut counts = BTreeMap::new();
        for r in server.audit_events(&format!("kind={kind}")).await {
            if r["details"]["summary"] == true {
                let key =
                    (r["actor"].as_str().unwrap().to_owned(), r["details"]["reason"].as_str().unwrap().to_owned());
                *counts.entry(key).or_default() += r["details"]["count"].as_u64().unwrap();
            }
        }
        if counts.values().sum::<u64>() >= total || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Okta signs with either of two secrets (rotation); `legacy` uses `sha256=`.
async fn inbound_server() -> (Server, TempDir) {
    start(&json!({"sources": {
        "okta": {"scheme": "standard", "secrets": [secret(1).1, secret(2).1]},
        "legacy": {"scheme": "sha256", "secrets": [LEGACY_SECRET]},
    }}))
    .await
}

/// A Standard Webhooks delivery.
pub(crate) struct Delivery {
    source: &'static str,
    id: String,
    timestamp: i64,
    signature: Option<String>,
    body: Vec<u8>,
}

impl Delivery {
    pub(crate) fn signed(key: &[u8], id: &str, body: &Value) -> Self {
        let body = body.to_string().into_bytes();
        let timestamp = now();
        Self { source: "okta", id: id.into(), timestamp, signature: Some(sign(key, id, timestamp, &body)), body }
    }

    pub(crate) async fn send(&self, server: &Server) -> Reply {
        let mut request = server
            .client
            .post(server.url(&format!("/v1/webhooks/{}", self.source)))
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.timestamp.to_string());
        if let Some(s) = &self.signature {
            request = request.header("webhook-signature", s);
        }
        reply(request.body(self.body.clone()).send().await.unwrap()).await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, json, text }
}

fn revoke(token: &str, owner: &str) -> Value {
    json!({"type": "token.revoked", "timestamp": "2026-01-01T00:00:00Z",
           "data": {"token_id": token, "owner": owner, "connection": "c_wh", "access_token": PLANTED}})
}

async fn issue(server: &Server, token: &str, owner: &str, conn: &str) {
    event(server, "token.issued", token, owner, conn, "ANALYST", FUTURE).await;
}

async fn own_token_allowed(server: &Server, who: &str, conn: &str) -> bool {
    let answer = resolve(server, who, "p_disabled", conn, "notebook").await;
    answer["decision"] == "allow"
}

#[tokio::test]
async fn signed_events_apply_with_either_rotated_secret_and_are_audited() {
    let (server, _dir) = inbound_server().await;
    issue(&server, "tok-eddie", "eddie", "c_wh").await;
    assert!(own_token_allowed(&server, "eddie", "c_wh").await);

    // Signed with the newer secret, among a signature that does not match
    // and one of an unknown version.
    let mut d = Delivery::signed(&secret(2).0, "msg_revoke_1", &revoke("tok-eddie", "eddie"));
    let good = d.signature.clone().unwrap();
    d.signature = Some(format!("v2,abc v1,{} {good}", base64(&[7; 32])));
    let r = d.send(&server).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["applied"], 1, "{}", r.text);
    let seq = r.json["seq"].as_u64().unwrap();
    let answer = resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await;
    assert_eq!(answer["decision"], "deny", "a revoked token no longer resolves: {answer}");

    // The older secret still verifies: a refresh registers erin's token.
    assert!(!own_token_allowed(&server, "erin", "c_wh").await);
    let refresh = json!({"type": "token.refreshed", "data": {"token_id": "tok-erin", "owner": "erin",
                         "connection": "c_wh", "expires_at": FUTURE, "role": "ANALYST"}});
    let r = Delivery::signed(&secret(1).0, "msg_refresh_1", &refresh).send(&server).await;
    assert_eq!((r.status, r.json["applied"].clone()), (StatusCode::OK, json!(1)), "{}", r.text);
    assert!(own_token_allowed(&server, "erin", "c_wh").await);

    let received = server.audit_events("kind=webhook.received").await;
    assert_eq!(received.len(), 2, "{received:?}");
    let first = &received[0];
    assert_eq!(first["seq"], seq);
    assert_eq!(first["actor"], "webhook:okta");
    assert_eq!(first["details"]["source"], "okta");
    assert_eq!(first["details"]["webhook_id"], "msg_revoke_1");
    assert_eq!(first["details"]["type"], "token.revoked");
    assert_eq!(first["details"]["applied"], 1);
    assert_eq!(first["token_id"], server.audit_digest("tok-eddie").await.as_str(), "token ids are digested");
    assert_eq!(first["token_owner"], "eddie");
    assert_eq!(received[1]["details"]["type"], "token.refreshed");
    assert!(!serde_json::to_string(&received).unwrap().contains(PLANTED));
}

#[tokio::test]
async fn user_deprovisioned_revokes_every_token_of_the_user() {
    let (server, _dir) = inbound_server().await;
    issue(&server, "tok-eddie-wh", "eddie", "c_wh").await;
    issue(&server, "tok-eddie-fixed", "eddie", "c_fixed").await;
    issue(&server, "tok-erin", "erin", "c_wh").await;
    assert!(own_token_allowed(&server, "eddie", "c_wh").await && own_token_allowed(&server, "eddie", "c_fixed").await);

    let body = json!({"type": "user.deprovisioned", "data": {"owner": "eddie"}});
    let r = Delivery::signed(&secret(1).0, "msg_deprov_1", &body).send(&server).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["applied"], 2, "{}", r.text);
    assert!(!own_token_allowed(&server, "eddie", "c_wh").await);
    assert!(!own_token_allowed(&server, "eddie", "c_fixed").await);
    assert!(own_token_allowed(&server, "erin", "c_wh").await, "another user's token is untouched");

    // Again (a new delivery): nothing left to revoke.
    let r = Delivery::signed(&secret(1).0, "msg_deprov_2", &body).send(&server).await;
    assert_eq!((r.status, r.json["applied"].clone()), (StatusCode::OK, json!(0)), "{}", r.text);
    let received = server.audit_events("kind=webhook.received").await;
    assert_eq!(received.len(), 2);
    let tokens = received[0]["details"]["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for t in ["tok-eddie-fixed", "tok-eddie-wh"] {
        assert!(tokens.contains(&json!(server.audit_digest(t).await)), "{tokens:?}");
    }
}

/// Every refusal: status and code; none of them changes the token store.
/// What anyone could have sent (up to the replay check) is counted into
/// summaries (issue 19, row 1); a signed delivery's refusal is recorded on
/// its own, by the body's size and digest, never the body.
#[tokio::test]
async fn refused_deliveries_are_audited_redacted_and_never_applied() {
    let (server, _dir) = inbound_server().await;
    issue(&server, "tok-eddie", "eddie", "c_wh").await;
    issue(&server, "tok-erin", "erin", "c_wh").await;
    let key = secret(1).0;
    let body = revoke("tok-eddie", "eddie");

    // (delivery, status, code, audited webhook_id)
    let mut cases: Vec<(Delivery, StatusCode, &str)> = Vec::new();
    let mut tampered = Delivery::signed(&key, "msg_tampered", &body);
    tampered.body = revoke("tok-erin", "erin").to_string().into_bytes();
    cases.push((tampered, StatusCode::UNAUTHORIZED, "invalid_signature"));
    cases.push((
        Delivery::signed(&secret(3).0, "msg_wrong_secret", &body),
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
    ));
    // The exact boundary (±300 s) is verify.rs's unit test. Here the cases
    // are built first and sent later, and a future timestamp drifts back
    // into the window while earlier cases are sent (CI once took over a
    // second), so both sit a minute outside it.
    for (id, shift, code) in [("msg_old", -360, "timestamp_too_old"), ("msg_future", 360, "timestamp_in_future")] {
        let mut d = Delivery::signed(&key, id, &body);
        d.timestamp += shift;
        d.signature = Some(sign(&key, id, d.timestamp, &d.body));
        cases.push((d, StatusCode::UNAUTHORIZED, code));
    }
    let mut empty = Delivery::signed(&key, "msg_empty_sig", &body);
    empty.signature = Some("v1,".into());
    cases.push((empty, StatusCode::UNAUTHORIZED, "invalid_signature"));
    let mut truncated = Delivery::signed(&key, "msg_truncated", &body);
    let full = truncated.signature.clone().unwrap();
    truncated.signature = Some(full[..full.len() - 5].to_owned());
    cases.push((truncated, StatusCode::UNAUTHORIZED, "invalid_signature"));
    let mut unsigned = Delivery::signed(&key, "msg_no_signature", &body);
    unsigned.signature = None;
    cases.push((unsigned, StatusCode::BAD_REQUEST, "missing_header"));
    let mut unknown = Delivery::signed(&key, "msg_unknown_source", &body);
    unknown.source = "nobody";
    cases.push((unknown, StatusCode::NOT_FOUND, "unknown_source"));
    let unsupported = json!({"type": "user.created", "data": {"owner": "eddie", "password": PLANTED}});
    cases.push((Delivery::signed(&key, "msg_unsupported", &unsupported), StatusCode::BAD_REQUEST, "unsupported_event"));
    // Not JSON at all, a bearer token in the text.
    let mut text = Delivery::signed(&key, "msg_text", &json!(null));
    text.body = format!("revoke please, Authorization: Bearer {PLANTED}").into_bytes();
    text.signature = Some(sign(&key, &text.id, text.timestamp, &text.body));
    cases.push((text, StatusCode::BAD_REQUEST, "malformed_json"));

    for (d, status, code) in &cases {
        let r = d.send(&server).await;
        assert_eq!(r.status, *status, "{}: {}", d.id, r.text);
        assert_eq!(r.json["error"]["code"], *code, "{}: {}", d.id, r.text);
    }
    // A replay of an accepted delivery (about erin, so eddie's token stays).
    let accepted = Delivery::signed(&key, "msg_replayed", &revoke("tok-erin", "erin"));
    assert_eq!(accepted.send(&server).await.status, StatusCode::OK);
    let r = accepted.send(&server).await;
    assert_eq!((r.status, r.json["error"]["code"].clone()), (StatusCode::CONFLICT, json!("replayed")), "{}", r.text);
    // Missing id: the headers are checked before anything else.
    let mut no_id = Delivery::signed(&key, "", &body);
    no_id.id = String::new();
    let r = no_id.send(&server).await;
    assert_eq!((r.status, r.json["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("malformed_header")));
    // Over the body limit (1 MiB): refused before it is read whole.
    let mut big = Delivery::signed(&key, "msg_too_large", &body);
    big.body = json!({"type": "token.revoked", "pad": "x".repeat(2 << 20)}).to_string().into_bytes();
    let r = big.send(&server).await;
    assert_eq!(
        (r.status, r.json["error"]["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("payload_too_large"))
    );

    assert!(own_token_allowed(&server, "eddie", "c_wh").await, "no refused delivery was applied");
    // Signed deliveries whose payload was refused: one record each, the
    // body only by size and SHA-256.
    let rejected = server.audit_events("kind=webhook.rejected").await;
    let (signed, summarised): (Vec<&Value>, Vec<&Value>) =
        rejected.iter().partition(|r| r["details"]["summary"] != true);
    let got: Vec<(&str, &str)> = signed
        .iter()
        .map(|r| (r["details"]["webhook_id"].as_str().unwrap(), r["details"]["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("msg_unsupported", "unsupported_event"), ("msg_text", "malformed_json")]);
    for record in &signed {
        assert_eq!((&record["actor"], &record["details"]["source"]), (&json!("webhook:okta"), &json!("okta")));
        assert_eq!(record["details"]["body"], Value::Null, "never the body: {record}");
        let sha = record["details"]["body_sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && record["details"]["body_bytes"].as_u64().unwrap() > 0, "{record}");
    }
    // The rest in summaries: per source (unknown ones share `webhook:*`)
    // and reason, with counts.
    let unsigned = cases.len() - 2 + 3;
    let counts = summaries(&server, "webhook.rejected", unsigned as u64).await;
    let okta = |reason: &str| (("webhook:okta".to_owned(), reason.to_owned()), 1);
    let want = BTreeMap::from([
        (("webhook:okta".to_owned(), "invalid_signature".to_owned()), 4),
        okta("timestamp_too_old"),
        okta("timestamp_in_future"),
        okta("missing_header"),
        okta("malformed_header"),
        okta("replayed"),
        okta("payload_too_large"),
        (("webhook:*".to_owned(), "unknown_source".to_owned()), 1),
    ]);
    assert_eq!(counts, want);
    assert!(summarised.iter().all(|r| r["details"]["webhook_id"].is_null()), "ids an outsider picks are not kept");
    let everything = server.get("/v1/audit/export").await.text;
    assert!(
        !everything.contains(PLANTED) && !everything.contains("msg_tampered"),
        "no body, no claimed id of an unsigned delivery"
    );
    assert!(!server.logs().contains(PLANTED), "nor in the service's log");
}

#[tokio::test]
async fn sha256_sources_verify_the_body_and_refuse_replays() {
    let (server, _dir) = inbound_server().await;
    issue(&server, "tok-eddie", "eddie", "c_wh").await;
    let body = revoke("tok-eddie", "eddie").to_string();
    let send = |signature: String, body: String| {
        let request = server
            .client
            .post(server.url("/v1/webhooks/legacy"))
            .header("x-signature-256", signature)
            .header("content-type", "application/json")
            .body(body);
        async move { reply(request.send().await.unwrap()).await }
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The field notes' GitHub-style vector, by this test's own HMAC.
    assert_eq!(
        hex(&hmac(LEGACY_SECRET.as_bytes(), &[b"Hello, World!"])),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let good = format!("sha256={}", hex(&hmac(LEGACY_SECRET.as_bytes(), &[body.as_bytes()])));
    for (signature, sent, status) in [
        ("sha256=".to_owned(), body.clone(), StatusCode::UNAUTHORIZED),
        (good[..good.len() - 2].to_owned(), body.clone(), StatusCode::UNAUTHORIZED),
        (good.clone(), body.replace("eddie", "erin"), StatusCode::UNAUTHORIZED),
    ] {
        let r = send(signature, sent).await;
        assert_eq!((r.status, r.json["error"]["code"].clone()), (status, json!("invalid_signature")), "{}", r.text);
    }
    assert!(own_token_allowed(&server, "eddie", "c_wh").await);
    let r = send(good.clone(), body.clone()).await;
    assert_eq!((r.status, r.json["applied"].clone()), (StatusCode::OK, json!(1)), "{}", r.text);
    assert!(!own_token_allowed(&server, "eddie", "c_wh").await);
    let r = send(good, body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the same signed body again is a replay: {}", r.text);
    let counts = summaries(&server, "webhook.rejected", 4).await;
    let legacy = |reason: &str, n| (("webhook:legacy".to_owned(), reason.to_owned()), n);
    assert_eq!(counts, BTreeMap::from([legacy("invalid_signature", 3), legacy("replayed", 1)]));
}

/// A request a subscriber received: path, headers (lowercase names), body.
type Seen = (String, HashMap<String, String>, Vec<u8>);

/// Outbound `https` (issue 19, row 5): deliveries to a subscriber whose
/// certificate comes from its own CA go through when the subscription names
/// that CA in `ca_file` (relative to the webhooks file), and never when it
/// does not: the system's roots do not vouch for it, and the records wait.
#[tokio::test]
async fn https_subscribers_are_verified_against_the_system_roots_and_the_ca_file() {
    let ca = TestCa::new("warrant test subscriber CA");
    let acceptor = ca.leaf("subscriber").acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // (request path, headers, body) of every request that got past the handshake.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let handshake_failures = Arc::new(Mutex::new(0usize));
    let (log, failures) = (Arc::clone(&seen), Arc::clone(&handshake_failures));
    let receiving = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (acceptor, log, failures) = (acceptor.clone(), Arc::clone(&log), Arc::clone(&failures));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    *failures.lock().unwrap() += 1;
                    return;
                };
                let mut first = [0u8; 64];
                let n = tls.read(&mut first).await.unwrap();
                let line = String::from_utf8_lossy(&first[..n]).into_owned();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                let mut rest = std::io::Cursor::new(first[..n].to_vec()).chain(&mut tls);
                let (headers, body) = read_request(&mut rest).await;
                log.lock().unwrap().push((path, headers, body));
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), "subscriber-ca.pem");
    let (key, whsec) = secret(12);
    let subscription = |name: &str, path: &str| {
        json!({"name": name, "url": format!("https://localhost:{port}{path}"), "secret": whsec,
               "kinds": ["token.*"], "retry_initial_ms": 50, "retry_max_ms": 200, "timeout_ms": 2000})
    };
    let mut trusting = subscription("trusting", "/trusting");
    trusting["ca_file"] = json!("subscriber-ca.pem");
    let (server, _dir) = start_in(dir, &json!({"subscriptions": [trusting, subscription("system", "/system")]})).await;
    event(&server, "token.issued", "tok-tls", "eddie", "c_wh", "ANALYST", FUTURE).await;
    event(&server, "token.revoked", "tok-tls", "eddie", "c_wh", "ANALYST", "").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 2 || *handshake_failures.lock().unwrap() < 2 {
        assert!(Instant::now() < deadline, "{:?}\n{}", seen.lock().unwrap(), server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiving.abort();
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(p, ..)| p.as_str()).collect();
    assert_eq!(paths, ["/trusting", "/trusting"], "only the subscription that trusts the CA got through");
    let records = server.audit_events("kind=token.").await;
    for ((_, headers, body), record) in seen.iter().zip(&records) {
        let id = &headers["webhook-id"];
        assert_eq!(*id, format!("trusting_{}", record["seq"]));
        let ts = headers["webhook-timestamp"].parse().unwrap();
        assert_eq!(headers["webhook-signature"], sign(&key, id, ts, body));
    }
    let logs = server.logs();
    let refused = logs
        .lines()
        .filter(|l| l.contains("webhook delivery failed; will retry") && l.contains("\"system\""))
        .collect::<Vec<_>>();
    assert!(!refused.is_empty(), "{logs}");
    assert!(refused.iter().all(|l| l.contains("certificate")), "names the certificate problem: {refused:?}");
    assert!(server.audit_events("kind=webhook.undelivered").await.is_empty(), "untrusted is unavailable, not refusing");
}

/// `warrant serve` with the webhooks file `file`, in `dir`, expected to stop
/// at start: its exit status and standard error.
fn serve_with_webhooks(dir: &std::path::Path, file: &std::path::Path) -> (std::process::Output, String) {
    let out = warrant_command(&dir.join("config"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "text", "--webhooks"])
        .arg(file)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("w.db").display()))
        .arg("--policies")
        .arg(crate::server::pack_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn a_ca_file_that_is_not_a_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let file = dir.path().join("webhooks.json");
    let whsec = secret(13).1;
    let sub =
        json!({"name": "s", "url": "https://127.0.0.1:9/h", "secret": whsec, "kinds": ["*"], "ca_file": "ca.pem"});
    std::fs::write(&file, json!({"subscriptions": [sub]}).to_string()).unwrap();
    let (out, stderr) = serve_with_webhooks(dir.path(), &file);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`subscriptions[0]`: `ca_file`:") && stderr.contains("holds no `CERTIFICATE` block"),
        "{stderr}"
    );
}

#[test]
fn a_bad_webhooks_file_stops_the_start_without_echoing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.json");
    let secret = "whsec_NOTBASE64!!supersecret";
    std::fs::write(&file, json!({"sources": {"okta": {"scheme": "standard", "secrets": [secret]}}}).to_string())
        .unwrap();
    let (out, stderr) = serve_with_webhooks(dir.path(), &file);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("`sources.okta`: `secrets[0]`: the part after `whsec_` is not valid base64"), "{stderr}");
    assert!(!stderr.contains("supersecret"), "{stderr}");
}

/// What the loopback subscriber saw: every request, and its own
/// deduplicated view (by `webhook-id`).
#[derive(Default)]
pub(crate) struct Inbox {
    requests: usize,
    /// `(webhook-id, timestamp, signature, body)` of accepted deliveries, in arrival order.
    pub(crate) accepted: Vec<(String, i64, String, Vec<u8>)>,
    /// Deliveries whose id had been accepted before (dropped as duplicates).
    duplicates: usize,
}

/// One HTTP/1.1 request off `stream`: its headers (lowercase names) and body.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> (HashMap<String, String>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body) = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            break (head, buf[end + 4..end + 4 + length].to_vec());
        }
    };
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (headers, body)
}

/// Answers 503 to the first `failures` requests, then 500 to one it has
/// recorded (an acknowledgement lost on the way back), then 200.
pub(crate) async fn subscriber(listener: tokio::net::TcpListener, inbox: Arc<Mutex<Inbox>>, failures: usize) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { return };
        let inbox = Arc::clone(&inbox);
        tokio::spawn(async move {
            let (headers, body) = read_request(&mut stream).await;
            let status = {
                let mut inbox = inbox.lock().unwrap();
                inbox.requests += 1;
                let n = inbox.requests;
                if n <= failures {
                    503
                } else {
                    let id = headers["webhook-id"].clone();
                    if inbox.accepted.iter().any(|(seen, ..)| *seen == id) {
                        inbox.duplicates += 1;
                    } else {
                        let ts = headers["webhook-timestamp"].parse().unwrap();
                        inbox.accepted.push((id, ts, headers["webhook-signature"].clone(), body));
                    }
                    if n == failures + 1 { 500 } else { 200 }
                }
            };
            let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

async fn token_events(server: &Server, from: usize, to: usize) {
    for i in from..to {
        let kind = ["token.issued", "token.refreshed", "token.revoked"][i % 3];
        let body = json!({"kind": kind, "token_id": format!("tok-{i}"), "owner": "eddie", "connection": "c_wh",
                          "expires_at": FUTURE, "details": {"access_token": PLANTED, "note": format!("Bearer {PLANTED}")}});
        let r = server.post("/v1/tokens/events", &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        // Decisions are recorded too, and not subscribed to.
        let decision = json!({"principal": {"type": "User", "id": "eddie"}, "action": "view_notebook",
                              "resource": {"type": "Project", "id": "p_disabled"}});
        assert_eq!(server.post("/v1/authorize", &decision).await.status, StatusCode::OK);
    }
}

/// Waits until the subscriber holds every record `server` has of the
/// subscribed kinds, then checks order, signatures, bodies and redaction.
async fn assert_delivered(server: &Server, inbox: &Arc<Mutex<Inbox>>, key: &[u8]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let want: Vec<Value> = loop {
        let all = server.audit_events("").await;
        let want: Vec<Value> = all.into_iter().filter(|r| r["kind"].as_str().unwrap().starts_with("token.")).collect();
        if inbox.lock().unwrap().accepted.len() >= want.len() {
            break want;
        }
        assert!(Instant::now() < deadline, "not delivered in time; log:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let inbox = inbox.lock().unwrap();
    let ids: Vec<&str> = inbox.accepted.iter().map(|(id, ..)| id.as_str()).collect();
    let want_ids: Vec<String> = want.iter().map(|r| format!("siem_{}", r["seq"])).collect();
    assert_eq!(ids, want_ids, "every token record once, in seq order, nothing else");
    for ((id, ts, signature, body), record) in inbox.accepted.iter().zip(&want) {
        assert_eq!(*signature, sign(key, id, *ts, body), "{id}: signature");
        assert!((now() - ts).abs() < 120, "{id}: timestamp of the attempt, not of the record");
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(!text.contains(PLANTED), "{id}: a secret in clear: {text}");
        let payload: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(payload["type"], record["kind"]);
        assert_eq!(payload["timestamp"], record["ts"]);
        assert_eq!(payload["data"], *record, "{id}: the stored record, as the auditor API serves it");
    }
    assert!(want.len() >= 30);
    inbox.duplicates
}

#[tokio::test]
async fn outbound_subscribers_get_every_record_once_in_order_after_an_outage() {
    let (key, whsec) = secret(9);
    // The subscriber's port, not listening yet: the service starts while it is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (server, _dir) = start(&json!({"subscriptions": [{
        "name": "siem", "url": format!("http://127.0.0.1:{port}/hook"), "secret": whsec,
        "kinds": ["token.*"], "retry_initial_ms": 50, "retry_max_ms": 400, "timeout_ms": 2000,
    }]}))
    .await;
    token_events(&server, 0, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.logs().contains("webhook delivery failed; will retry"), "{}", server.logs());

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], port).into()).unwrap();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let listening = tokio::spawn(subscriber(socket.listen(64).unwrap(), Arc::clone(&inbox), 3));
    assert_eq!(assert_delivered(&server, &inbox, &key).await, 1, "only the lost acknowledgement was resent");

    // Live: new records arrive promptly; and the cursor survives a restart.
    token_events(&server, 30, 33).await;
    assert_delivered(&server, &inbox, &key).await;
    let mut server = server;
    server.restart();
    token_events(&server, 33, 35).await;
    assert_eq!(assert_delivered(&server, &inbox, &key).await, 1, "nothing resent after a restart");
    listening.abort();
}

/// A subscriber that refuses one record for good (413 for any delivery
/// naming `tok-poison`) does not hold back the ones after it (issue 19,
/// row 5): after `max_refusals` refusals the record is given up on,
/// recorded as `webhook.undelivered`, and the revocation sent after it
/// arrives. A subscriber that is merely unavailable (503) is waited for.
#[tokio::test]
async fn a_record_the_subscriber_keeps_refusing_is_given_up_on_and_the_stream_goes_on() {
    let whsec = secret(11).1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (server, _dir) = start(&json!({"subscriptions": [{
        "name": "siem", "url": format!("http://127.0.0.1:{port}/hook"), "secret": whsec,
        "kinds": ["token.*", "webhook.undelivered"], "retry_initial_ms": 20, "retry_max_ms": 40,
        "timeout_ms": 2000, "max_refusals": 3,
    }]}))
    .await;
    // Records name tokens by keyed digest: the subscriber looks for that.
    let poison_digest = server.audit_digest("tok-poison").await;
    // (webhook-id, status answered, body) of every request, in order.
    let seen: Arc<Mutex<Vec<(String, u16, Value)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let marker = poison_digest.clone();
    let receiving = tokio::spawn(async move {
        let mut unavailable = 3; // as many as `max_refusals`: counted, they would give tok-a up
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let (headers, body) = read_request(&mut stream).await;
            let status = if unavailable > 0 {
                unavailable -= 1;
                503
            } else if String::from_utf8_lossy(&body).contains(&marker) {
                413
            } else {
                200
            };
            let json: Value = serde_json::from_slice(&body).unwrap();
            log.lock().unwrap().push((headers["webhook-id"].clone(), status, json));
            let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    event(&server, "token.issued", "tok-a", "eddie", "c_wh", "ANALYST", FUTURE).await;
    event(&server, "token.issued", "tok-poison", "eddie", "c_wh", "ANALYST", FUTURE).await;
    event(&server, "token.revoked", "tok-a", "eddie", "c_wh", "ANALYST", "").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered =
        |kind: &str| seen.lock().unwrap().iter().any(|(_, status, body)| *status == 200 && body["type"] == kind);
    while !delivered("webhook.undelivered") {
        assert!(Instant::now() < deadline, "no webhook.undelivered delivered: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiving.abort();
    assert!(delivered("token.revoked"), "the revocation after the refused record arrived");
    let undelivered = server.audit_events("kind=webhook.undelivered").await;
    let issued = server.audit_events("kind=token.issued").await;
    let poison = issued.iter().find(|r| r["token_id"] == poison_digest.as_str()).unwrap();
    assert_eq!(undelivered.len(), 1, "{undelivered:?}");
    let d = &undelivered[0]["details"];
    assert_eq!(undelivered[0]["actor"], "subscriber:siem");
    assert_eq!((&d["subscription"], &d["seq"], &d["kind"]), (&json!("siem"), &poison["seq"], &json!("token.issued")));
    assert_eq!((&d["refusals"], &d["last_answer"]), (&json!(3), &json!("status 413")));
    let seen = seen.lock().unwrap();
    let poison_id = format!("siem_{}", poison["seq"]);
    let answers: Vec<u16> = seen.iter().filter(|(id, ..)| *id == poison_id).map(|(_, s, _)| *s).collect();
    assert_eq!(answers, [413, 413, 413], "refused three times, then given up on");
    let first = &seen.iter().find(|(_, s, _)| *s == 200).unwrap().2;
    assert_eq!(first["data"]["kind"], "token.issued", "the 503s were waited out, not counted: {first}");
}
