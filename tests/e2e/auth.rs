//! The API-key matrix: every endpoint × {no key, expired key, revoked key,
//! wrong scope, right scope} → 401 / 401 / 401 / 403 / 2xx; public
//! endpoints need no key; refusals of presented keys are audited.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Server, warrant_command};

const SCOPES: [&str; 4] = ["decide", "events:write", "audit:read", "policy:admin"];

/// Mints a key in `server`'s database with `scopes`, valid for `lifetime`.
fn mint(server: &Server, scopes: &[&str], lifetime: &str) -> String {
    let mut cmd = warrant_command(server.config_home());
    cmd.args(["keys", "create", "--database-url", server.database_url(), "--expires-in", lifetime]);
    for s in scopes {
        cmd.args(["--scope", s]);
    }
    let out = cmd.output().expect("keys create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn key_id(key: &str) -> &str {
    key.split('_').nth(1).expect("key id")
}

struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    scope: &'static str,
}

fn endpoints() -> Vec<Endpoint> {
    let eval = json!({"subject": {"type": "User", "id": "u"}, "action": {"name": "view_notebook"}, "resource": {"type": "Project", "id": "p"}});
    let native = json!({"principal": {"type": "User", "id": "u"}, "action": "view_notebook", "resource": {"type": "Project", "id": "p"}});
    let e = |method: Method, path: &'static str, body: Option<Value>, scope: &'static str| Endpoint {
        method,
        path,
        body,
        scope,
    };
    vec![
        e(Method::POST, "/access/v1/evaluation", Some(eval.clone()), "decide"),
        e(Method::POST, "/access/v1/evaluations", Some(json!({"evaluations": [eval.clone()]})), "decide"),
        e(
            Method::POST,
            "/access/v1/search/resource",
            Some(
                json!({"subject": {"type": "User", "id": "u"}, "action": {"name": "browse_schema"}, "resource": {"type": "Schema"}}),
            ),
            "decide",
        ),
        e(
            Method::POST,
            "/access/v1/search/subject",
            Some(
                json!({"subject": {"type": "User"}, "action": {"name": "browse_schema"}, "resource": {"type": "Schema", "id": "s"}}),
            ),
            "decide",
        ),
        e(
            Method::POST,
            "/access/v1/search/action",
            Some(json!({"subject": {"type": "User", "id": "u"}, "resource": {"type": "Schema", "id": "s"}})),
            "decide",
        ),
        e(Method::POST, "/v1/authorize", Some(native.clone()), "decide"),
        e(Method::POST, "/v1/authorize/batch", Some(json!({"requests": [native]})), "decide"),
        e(
            Method::POST,
            "/v1/credentials/resolve",
            Some(
                json!({"principal": {"type": "User", "id": "u"}, "project": "p", "connection": "c", "surface": "notebook"}),
            ),
            "decide",
        ),
        e(
            Method::POST,
            "/v1/tokens/events",
            Some(
                json!({"kind": "token.issued", "token_id": "t", "owner": "u", "connection": "c", "expires_at": "2030-01-01T00:00:00Z"}),
            ),
            "events:write",
        ),
        e(Method::GET, "/v1/audit/events", None, "audit:read"),
        e(Method::GET, "/v1/audit/export", None, "audit:read"),
        e(Method::GET, "/v1/audit/verify", None, "audit:read"),
        e(Method::GET, "/v1/audit/checkpoint", None, "audit:read"),
        e(Method::GET, "/v1/audit/proofs/inclusion?seq=1", None, "audit:read"),
        e(Method::GET, "/v1/audit/proofs/consistency?from=1", None, "audit:read"),
        e(Method::POST, "/v1/audit/digest", Some(json!({"value": "x"})), "audit:read"),
        e(Method::GET, "/v1/entities", None, "policy:admin"),
        e(Method::PUT, "/v1/entities", Some(json!([])), "policy:admin"),
        e(Method::GET, "/v1/policies", None, "policy:admin"),
    ]
}

async fn call(server: &Server, ep: &Endpoint, key: Option<&str>) -> StatusCode {
    let client = reqwest::Client::new();
    let mut req = client.request(ep.method.clone(), server.url(ep.path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(body) = &ep.body {
        req = req.json(body);
    }
    req.send().await.expect("request").status()
}

#[tokio::test]
async fn every_endpoint_refuses_missing_expired_revoked_and_wrong_scope_keys() {
    let server = Server::start();
    let expired = mint(&server, &SCOPES, "1s");
    let revoked = mint(&server, &SCOPES, "90d");
    let out = warrant_command(server.config_home())
        .args(["keys", "revoke", "--database-url", server.database_url(), key_id(&revoked)])
        .output()
        .expect("keys revoke");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let per_scope: Vec<(&str, String)> = SCOPES.iter().map(|s| (*s, mint(&server, &[s], "90d"))).collect();
    let others = |scope: &str| {
        let rest: Vec<&str> = SCOPES.iter().copied().filter(|s| *s != scope).collect();
        mint(&server, &rest, "90d")
    };
    // Let the 1-second key lapse.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut failures = Vec::new();
    let eps = endpoints();
    for ep in &eps {
        let right = &per_scope.iter().find(|(s, _)| *s == ep.scope).expect("scope").1;
        let wrong = others(ep.scope);
        let cases = [
            ("no key", None, StatusCode::UNAUTHORIZED),
            ("malformed key", Some("wrnt_nope"), StatusCode::UNAUTHORIZED),
            ("expired key", Some(expired.as_str()), StatusCode::UNAUTHORIZED),
            ("revoked key", Some(revoked.as_str()), StatusCode::UNAUTHORIZED),
            ("wrong scope", Some(wrong.as_str()), StatusCode::FORBIDDEN),
        ];
        for (name, key, want) in cases {
            let got = call(&server, ep, key).await;
            if got != want {
                failures.push(format!("{} {} with {name}: {got}, want {want}", ep.method, ep.path));
            }
        }
        let got = call(&server, ep, Some(right)).await;
        if !got.is_success() {
            failures.push(format!("{} {} with the right scope: {got}", ep.method, ep.path));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(eps.len() >= 19);

    // A tampered secret for a real id is refused like an unknown key.
    let forged = format!("wrnt_{}_{}", key_id(&per_scope[0].1), "0".repeat(64));
    assert_eq!(call(&server, &eps[0], Some(&forged)).await, StatusCode::UNAUTHORIZED);

    // Refusals of presented keys are on the record, naming the key, never its secret.
    let rejected = server.audit_events("kind=api_key.rejected").await;
    assert!(rejected.iter().any(|e| e["actor"] == format!("api_key:{}", key_id(&revoked))), "revoked key use audited");
    assert!(rejected.iter().any(|e| e["actor"] == format!("api_key:{}", key_id(&expired))));
    let everything = server.get("/v1/audit/export").await.text;
    for key in [&expired, &revoked] {
        let secret = key.rsplit('_').next().expect("secret");
        assert!(!everything.contains(secret), "a key secret reached the audit log");
    }
    assert!(everything.contains("api_key.created") && everything.contains("api_key.revoked"));
}

#[tokio::test]
async fn public_endpoints_need_no_key_and_401s_say_bearer() {
    let server = Server::start();
    let anonymous = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/.well-known/authzen-configuration"] {
        let r = anonymous.get(server.url(path)).send().await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = anonymous.get(server.url("/v1/policies")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn a_key_revoked_while_the_service_runs_stops_working_within_the_cache_window() {
    let server = Server::start();
    let key = mint(&server, &["decide"], "90d");
    let ep = &endpoints()[0];
    assert_eq!(call(&server, ep, Some(&key)).await, StatusCode::OK);
    let out = warrant_command(server.config_home())
        .args(["keys", "revoke", "--database-url", server.database_url(), key_id(&key)])
        .output()
        .expect("keys revoke");
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(call(&server, ep, Some(&key)).await, StatusCode::UNAUTHORIZED);
    // And `keys list` shows it revoked, without secrets.
    let out = warrant_command(server.config_home())
        .args(["keys", "list", "--database-url", server.database_url()])
        .output()
        .expect("keys list");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.lines().any(|l| l.starts_with(key_id(&key)) && l.contains("revoked")), "{listing}");
    assert!(!listing.contains(key.rsplit('_').next().expect("secret")));
}
