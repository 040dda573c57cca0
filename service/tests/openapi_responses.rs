//! The OpenAPI document describes the answers the service really gives: every
//! operation it lists is called in-process with a valid request (and a few
//! invalid ones), and each response must have a documented status, the
//! documented content type, and a body valid against the schema the document
//! declares for that status, `$ref`s resolved against its `components`.
//!
//! Objects are checked closed (`additionalProperties: false` added where the
//! document leaves it open), so a field a handler adds without documenting it
//! fails here as surely as a documented field it stops sending.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use warrant_service::AppState;
use warrant_service::audit::DecisionAudit;
use warrant_service::auth::{Scope, mint};
use warrant_service::checkpoints;
use warrant_service::http::HttpConfig;
use warrant_service::keys::AuditKeys;
use warrant_service::log_keys::LogKeys;
use warrant_service::rules::RuleHost;
use warrant_service::store::Store;
use warrant_service::vault::Vault;
use warrant_service::vault::config::VaultConfig;
use warrant_service::vault::kek::VaultKeys;
use warrant_service::webhooks::{WebhookConfig, Webhooks};

#[path = "../../tests/oidc/idp.rs"]
mod idp;

const KEY: &str = "k1 5f2c9a01b7e34d6f8a1c2e3b4d5f60718293a4b5c6d7e8f90123456789abcdef";
const WEBHOOK_SECRET: &str = "a plain secret";
const FUTURE: &str = "2099-01-01T00:00:00Z";

/// The policy pack the service ships.
fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// olivia owns `p_nb` (shared in notebooks and apps) and holds an `ANALYST`
/// grant on `c_wh` through `g_data`; eddie edits it.
fn entities() -> Value {
    let user = |id: &str| {
        json!({"uid": {"type": "Analytics::User", "id": id},
               "attrs": {"email": format!("{id}@example.com"), "workspace_role": "editor",
                         "is_support": false, "warehouse_roles": ["ANALYST"]},
               "parents": [{"type": "Analytics::Group", "id": "g_data"}]})
    };
    json!([
        {"uid": {"type": "Analytics::Group", "id": "g_data"}, "attrs": {}, "parents": []},
        user("olivia"),
        user("eddie"),
        {"uid": {"type": "Analytics::Connection", "id": "c_wh"},
         "attrs": {"warehouse": "snowflake", "auth_type": "oauth",
                   "grantees": [{"type": "Analytics::Group", "id": "g_data"}]},
         "parents": []},
        {"uid": {"type": "Analytics::Project", "id": "p_nb"},
         "attrs": {"owner": {"type": "Analytics::User", "id": "olivia"},
                   "editors": [{"type": "Analytics::User", "id": "eddie"}], "viewers": [],
                   "credential_sharing": "notebook_and_app", "app_includes_owner_credentials": true,
                   "shared_with_support": false, "uses_oauth": true},
         "parents": []},
    ])
}

/// The document, with each object schema closed and every schema reachable
/// from the components at `#/components/…`.
struct Document {
    doc: Value,
    /// Operations answered with a success, as `(METHOD, path)`.
    covered: BTreeSet<(String, String)>,
}

impl Document {
    fn new(doc: Value) -> Self {
        let mut doc = doc;
        close_objects(&mut doc["components"]);
        close_objects(&mut doc["paths"]);
        Self { doc, covered: BTreeSet::new() }
    }

    /// Every operation the document lists, as `(METHOD, path)`.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() {
                    out.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.doc.pointer(reference.strip_prefix('#').unwrap()).unwrap(),
            None => value,
        }
    }

    /// Checks one answer of `method template` against the document.
    fn check(&mut self, method: &Method, template: &str, reply: &Reply) {
        let what = format!("{method} {template} → {}", reply.status);
        let operation = &self.doc["paths"][template][method.as_str().to_ascii_lowercase()];
        assert!(operation.is_object(), "{what}: the operation is not documented");
        let status = reply.status.as_str();
        let documented = operation["responses"]
            .get(status)
            .unwrap_or_else(|| panic!("{what}: status not documented; body: {}", reply.text()));
        let response = self.resolve(documented);
        let content = response.get("content").and_then(Value::as_object);
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            assert!(reply.body.is_empty(), "{what}: documented without a body, answered {}", reply.text());
            return;
        };
        let content_type = reply.content_type.split(';').next().unwrap_or_default().trim().to_owned();
        let media = content
            .get(&content_type)
            .unwrap_or_else(|| panic!("{what}: content type `{content_type}` not documented ({:?})", content.keys()));
        let schema = &media["schema"];
        if content_type == "application/x-ndjson" {
            // One `AuditRecord` per line (as the operation's description says).
            self.validate(&what, schema, &Value::String(reply.text()));
            for line in reply.text().lines() {
                let record: Value = serde_json::from_str(line).unwrap();
                self.validate(&what, &json!({"$ref": "#/components/schemas/AuditRecord"}), &record);
            }
        } else if content_type == "application/octet-stream" {
            assert!(!reply.body.is_empty(), "{what}: an empty body");
        } else if ["text/plain", "text/html", "text/css", "text/javascript"].contains(&content_type.as_str()) {
            self.validate(&what, schema, &Value::String(reply.text()));
        } else if content_type == "application/openmetrics-text" {
            self.validate(&what, schema, &Value::String(reply.text()));
            assert!(reply.text().ends_with("# EOF\n"), "{what}: not an OpenMetrics exposition");
        } else {
            let body: Value = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", reply.text()));
            self.validate(&what, schema, &body);
        }
        if reply.status.is_success() {
            self.covered.insert((method.as_str().to_owned(), template.to_owned()));
        }
    }

    fn validate(&self, what: &str, schema: &Value, instance: &Value) {
        // The schema at the root of a document that also holds the
        // components, so `#/components/schemas/…` resolves.
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::draft202012::new(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{what}: the documented schema does not compile: {e}"));
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("  at `{}`: {e}", e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the documented schema {schema}:\n{}\nbody: {instance:#}",
            errors.join("\n")
        );
    }
}

/// Adds `additionalProperties: false` to every object schema with
/// `properties` that says nothing about other properties and is not part of
/// a composition that lists properties elsewhere (`allOf`).
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let composed = map.contains_key("allOf");
            if map.contains_key("properties") && !map.contains_key("additionalProperties") && !composed {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, child) in map.iter_mut() {
                // Inside `allOf`, each part sees only its own properties.
                if key != "allOf" && key != "example" && key != "examples" {
                    close_objects(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Client {
    app: Router,
}

impl Client {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
        Reply { status, content_type, body }
    }
}

fn request(method: &Method, uri: &str, key: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

fn signed_webhook(source: &str, payload: &Value, secret: &str) -> Request<Body> {
    let body = serde_json::to_vec(payload).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/webhooks/{source}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-signature-256", signature)
        .body(Body::from(body))
        .unwrap()
}

async fn service(dir: &Path, idp: &idp::Idp) -> (Router, String, String) {
    let store = Store::open(&format!("sqlite://{}", dir.join("warrant.db").display())).await.unwrap();
    let every = mint(
        &[Scope::Decide, Scope::EventsWrite, Scope::AuditRead, Scope::PolicyAdmin, Scope::CredentialsReveal],
        chrono::TimeDelta::days(1),
        "every scope",
        warrant_engine::Timestamp::now(),
    )
    .unwrap();
    store.insert_api_key(&every.stored).await.unwrap();
    let decide_only =
        mint(&[Scope::Decide], chrono::TimeDelta::days(1), "decide only", warrant_engine::Timestamp::now()).unwrap();
    store.insert_api_key(&decide_only.stored).await.unwrap();
    let keys = AuditKeys::parse(KEY).unwrap();
    let rules = RuleHost::new(None, 1, None);
    let state = AppState::start(store, keys, policies(), DecisionAudit::All, rules).await.unwrap();
    // The log's first checkpoint, as `serve` publishes it at start.
    let signer = warrant_engine::audit::NoteSigner::from_seed("example.com/openapi", [3; 32]).unwrap();
    let log_keys = LogKeys::parse(&signer.to_skey(), "test").unwrap();
    checkpoints::publish(state.store(), state.audit(), &log_keys).await.unwrap();
    let config_path = dir.join("webhooks.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec(&json!({"sources": {"legacy": {"scheme": "sha256", "secrets": [WEBHOOK_SECRET]}}})).unwrap(),
    )
    .unwrap();
    let webhooks = Webhooks::new(WebhookConfig::load(&config_path).unwrap());
    let app = warrant_service::app(state.with_webhooks(webhooks).with_vault(vault(idp).await), HttpConfig::default());
    (app, every.key, decide_only.key)
}

/// warrant's callback as the provider is told it (the in-process service
/// has no port; the browser's walk stops there).
const CALLBACK: &str = "http://127.0.0.1:9/v1/grants/callback";

/// A vault serving `c_wh` from the test authorization server.
async fn vault(idp: &idp::Idp) -> Arc<Vault> {
    let file = json!({
        "providers": {"idp": {"issuer": idp.issuer, "client_id": idp::CLIENT_ID, "client_secret_env": "IDP_SECRET",
                              "scopes": ["openid", "offline_access"]}},
        "connections": {"c_wh": {"provider": "idp", "role": "ANALYST"}},
    });
    let env = |var: &str| (var == "IDP_SECRET").then(|| idp::CLIENT_SECRET.to_owned());
    let config = VaultConfig::parse(&file.to_string(), "vault.json", &env).unwrap();
    let keys = VaultKeys::parse(&format!("k1 {}", "ab".repeat(32))).unwrap();
    Arc::new(Vault::open(config, keys, CALLBACK).await.unwrap())
}

/// The shipped bundle with a permit for everything: a change that newly
/// permits requests over any store.
fn widened_files() -> Value {
    let mut files = bundle_files();
    files["everyone.cedar"] = json!("permit (principal, action, resource);\n");
    files
}

/// Every file of the shipped bundle, as `PUT /v1/policies` takes it.
fn bundle_files() -> Value {
    let mut files = serde_json::Map::new();
    for entry in std::fs::read_dir(policies()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".cedar") || name.ends_with(".cedarschema") {
            files.insert(name, Value::String(std::fs::read_to_string(&path).unwrap()));
        }
    }
    Value::Object(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp::start(&[]);
    let (app, key, decide_only) = service(dir.path(), &idp).await;
    let client = Client { app };
    let document = client.send(request(&Method::GET, "/openapi.json", None, None)).await;
    assert_eq!(document.status, StatusCode::OK);
    let mut doc = Document::new(document.json());
    doc.check(&Method::GET, "/openapi.json", &document);

    let key = Some(key.as_str());
    let (get, put, post) = (Method::GET, Method::PUT, Method::POST);
    // (method, documented path, the path sent, body)
    let user = |id: &str| json!({"type": "Analytics::User", "id": id});
    let project = json!({"type": "Analytics::Project", "id": "p_nb"});
    let calls: Vec<(&Method, &str, String, Option<Value>)> = vec![
        (&get, "/healthz", "/healthz".into(), None),
        (&get, "/metrics", "/metrics".into(), None),
        (&get, "/console/", "/console/".into(), None),
        (&get, "/console/{file}", "/console/console.js".into(), None),
        (&get, "/console/{file}", "/console/console.css".into(), None),
        (&get, "/console/{file}", "/console/nothing.js".into(), None),
        (&get, "/log/checkpoint", "/log/checkpoint".into(), None),
        (&get, "/log/tile/{path}", "/log/tile/0/000.p/1".into(), None),
        (&get, "/log/tile/{path}", "/log/tile/0/0".into(), None),
        (&get, "/log/tile/entries/{path}", "/log/tile/entries/000.p/1".into(), None),
        (&get, "/log/tile/entries/{path}", "/log/tile/entries/x001/000".into(), None),
        (&get, "/readyz", "/readyz".into(), None),
        (&get, "/.well-known/authzen-configuration", "/.well-known/authzen-configuration".into(), None),
        (&put, "/v1/entities", "/v1/entities".into(), Some(entities())),
        (&get, "/v1/entities", "/v1/entities".into(), None),
        (&put, "/v1/entities", "/v1/entities".into(), Some(json!([{"uid": {"type": "Analytics::Nope", "id": "x"}}]))),
        (&get, "/v1/policies", "/v1/policies".into(), None),
        (&get, "/v1/policies", "/v1/policies?content=true".into(), None),
        (&get, "/v1/policies", "/v1/policies?content=maybe".into(), None),
        (&put, "/v1/policies", "/v1/policies".into(), Some(json!({"files": bundle_files()}))),
        (&put, "/v1/policies", "/v1/policies?dry_run=true".into(), Some(json!({"files": widened_files()}))),
        (&put, "/v1/policies", "/v1/policies?max_new_permits=0".into(), Some(json!({"files": widened_files()}))),
        (&put, "/v1/policies", "/v1/policies?dry_run=maybe".into(), Some(json!({"files": bundle_files()}))),
        (&put, "/v1/policies", "/v1/policies?dry_run=true&replay=10".into(), Some(json!({"files": widened_files()}))),
        (&put, "/v1/policies", "/v1/policies?replay=10".into(), Some(json!({"files": widened_files()}))),
        (
            &put,
            "/v1/policies",
            "/v1/policies".into(),
            Some(json!({"files": {"a.cedarschema": "namespace {", "b.cedar": "permit("}})),
        ),
        (
            &post,
            "/access/v1/evaluation",
            "/access/v1/evaluation".into(),
            Some(json!({"subject": user("eddie"), "action": {"name": "view_notebook"}, "resource": project})),
        ),
        (
            &post,
            "/access/v1/evaluation",
            "/access/v1/evaluation".into(),
            Some(json!({"subject": user("eddie"), "action": {"name": "view_notebook"}, "resource": project,
                        "options": {"explain": true}})),
        ),
        (&post, "/access/v1/evaluation", "/access/v1/evaluation".into(), Some(json!({"subject": user("eddie")}))),
        (
            &post,
            "/access/v1/evaluations",
            "/access/v1/evaluations".into(),
            Some(json!({"subject": user("eddie"), "action": {"name": "view_notebook"}, "resource": project})),
        ),
        (
            &post,
            "/access/v1/evaluations",
            "/access/v1/evaluations".into(),
            Some(json!({"subject": user("eddie"), "resource": project, "options": {"explain": true},
                        "evaluations": [{"action": {"name": "view_notebook"}}, {},
                                        {"action": {"name": "view_notebook"}, "subject": {"type": "Nope", "id": "x"}}]})),
        ),
        (
            &post,
            "/access/v1/search/resource",
            "/access/v1/search/resource".into(),
            Some(json!({"subject": user("eddie"), "action": {"name": "view_notebook"},
                        "resource": {"type": "Analytics::Project"}, "page": {"limit": 1}})),
        ),
        (
            &post,
            "/access/v1/search/subject",
            "/access/v1/search/subject".into(),
            Some(json!({"subject": {"type": "Analytics::User"}, "action": {"name": "view_notebook"},
                        "resource": {"type": "Analytics::Project", "id": "p_gone"}})),
        ),
        (
            &post,
            "/access/v1/search/action",
            "/access/v1/search/action".into(),
            Some(json!({"subject": user("eddie"), "resource": project})),
        ),
        (
            &post,
            "/v1/authorize",
            "/v1/authorize".into(),
            Some(json!({"principal": user("eddie"), "action": "view_notebook", "resource": project})),
        ),
        (
            &post,
            "/v1/authorize/batch",
            "/v1/authorize/batch".into(),
            Some(json!({"requests": [
                {"principal": user("eddie"), "action": "view_notebook", "resource": project},
                {"principal": {"type": "Nope", "id": "x"}, "action": "view_notebook", "resource": project}]})),
        ),
        (
            &post,
            "/v1/tokens/events",
            "/v1/tokens/events".into(),
            Some(json!({"kind": "token.issued", "token_id": "t_olivia", "owner": "olivia", "connection": "c_wh",
                        "role": "ANALYST", "expires_at": FUTURE})),
        ),
        (
            &post,
            "/v1/credentials/resolve",
            "/v1/credentials/resolve".into(),
            Some(json!({"principal": user("eddie"), "project": "p_nb", "connection": "c_wh", "surface": "notebook"})),
        ),
        (
            &post,
            "/v1/credentials/resolve",
            "/v1/credentials/resolve".into(),
            Some(json!({"principal": user("eddie"), "project": "p_gone", "connection": "c_wh", "surface": "app"})),
        ),
        (
            &post,
            "/v1/tokens/events",
            "/v1/tokens/events".into(),
            Some(json!({"kind": "token.revoked", "token_id": "t_gone", "owner": "eddie", "connection": "c_wh"})),
        ),
        (
            &post,
            "/v1/tokens/events",
            "/v1/tokens/events".into(),
            Some(json!({"kind": "token.refreshed", "token_id": "t_gone", "owner": "eddie", "connection": "c_wh",
                        "expires_at": FUTURE})),
        ),
        (&get, "/v1/audit/events", "/v1/audit/events?limit=3".into(), None),
        (&get, "/v1/audit/events", "/v1/audit/events?limit=0".into(), None),
        (&get, "/v1/audit/export", "/v1/audit/export?from=1&to=5".into(), None),
        (&get, "/v1/audit/export", "/v1/audit/export".into(), None),
        (&get, "/v1/audit/verify", "/v1/audit/verify".into(), None),
        (&get, "/v1/audit/checkpoint", "/v1/audit/checkpoint".into(), None),
        (&get, "/v1/audit/proofs/inclusion", "/v1/audit/proofs/inclusion?seq=2".into(), None),
        (&get, "/v1/audit/proofs/inclusion", "/v1/audit/proofs/inclusion?seq=999999".into(), None),
        (&get, "/v1/audit/proofs/consistency", "/v1/audit/proofs/consistency?from=1".into(), None),
        (&get, "/v1/audit/proofs/consistency", "/v1/audit/proofs/consistency?from=0".into(), None),
        (&post, "/v1/audit/digest", "/v1/audit/digest".into(), Some(json!({"value": "t_olivia"}))),
        (&get, "/v1/audit/overview", "/v1/audit/overview".into(), None),
        (&get, "/v1/audit/overview", "/v1/audit/overview?since=2020-01-01T00:00:00Z".into(), None),
    ];
    let mut statuses = Vec::new();
    for (method, template, uri, body) in &calls {
        let reply = client.send(request(method, uri, key, body.as_ref())).await;
        statuses.push(format!("{method} {uri} → {}", reply.status));
        doc.check(method, template, &reply);
    }
    // The vault: a grant made through the provider, imported, read,
    // revealed and disconnected; a used `state`, a missing grant.
    let started = client.send(request(&post, "/v1/grants/c_wh/start", key, Some(&json!({"owner": "olivia"})))).await;
    doc.check(&post, "/v1/grants/{connection}/start", &started);
    let url = started.json()["authorization_url"].as_str().unwrap().to_owned();
    let callback = idp.browse(&url).await;
    let back = format!("{}?{}", callback.path(), callback.query().unwrap());
    for _ in 0..2 {
        let reply = client.send(request(&get, &back, None, None)).await;
        statuses.push(format!("GET /v1/grants/callback → {}", reply.status));
        doc.check(&get, "/v1/grants/callback", &reply);
    }
    let import = json!({"connection": "c_wh", "owner": "olivia", "access_token": "imported-access",
                        "refresh_token": "imported-refresh", "expires_at": "2099-06-01T00:00:00Z"});
    let imported = client.send(request(&post, "/v1/grants/import", key, Some(&import))).await;
    doc.check(&post, "/v1/grants/import", &imported);
    let grant = imported.json()["grant_id"].as_str().unwrap().to_owned();
    let delete = Method::DELETE;
    let reveal = json!({"principal": user("olivia"), "project": "p_nb", "connection": "c_wh",
                        "surface": "notebook", "reveal": true});
    for (method, template, uri, body) in [
        (&get, "/v1/grants/{id}", format!("/v1/grants/{grant}"), None),
        (&get, "/v1/grants/{id}", "/v1/grants/grant_none".to_owned(), None),
        (&post, "/v1/credentials/resolve", "/v1/credentials/resolve".to_owned(), Some(reveal)),
        (&delete, "/v1/grants/{id}", format!("/v1/grants/{grant}"), None),
        (&post, "/v1/grants/{connection}/start", "/v1/grants/c_none/start".to_owned(), Some(json!({"owner": "o"}))),
    ] {
        let reply = client.send(request(method, &uri, key, body.as_ref())).await;
        statuses.push(format!("{method} {uri} → {}", reply.status));
        doc.check(method, template, &reply);
    }

    let expected_errors = [
        "GET /console/nothing.js → 404",
        "GET /v1/grants/callback → 200",
        "GET /v1/grants/callback → 400",
        "GET /v1/grants/grant_none → 404",
        "POST /v1/grants/c_none/start → 404",
        "PUT /v1/entities → 400",
        "GET /v1/policies?content=maybe → 400",
        "PUT /v1/policies → 400",
        "POST /access/v1/evaluation → 400",
        "POST /v1/tokens/events → 409",
        "GET /v1/audit/events?limit=0 → 400",
        "GET /v1/audit/overview?since=2020-01-01T00:00:00Z → 400",
        "GET /v1/audit/proofs/inclusion?seq=999999 → 404",
        "GET /v1/audit/proofs/consistency?from=0 → 400",
    ];
    for expected in expected_errors {
        assert!(statuses.iter().any(|s| s.starts_with(expected)), "no `{expected}` in {statuses:#?}");
    }

    // Webhooks: accepted, unknown source, bad signature, replayed.
    let revoke =
        json!({"type": "token.revoked", "data": {"token_id": "t_olivia", "owner": "olivia", "connection": "c_wh"}});
    let template = "/v1/webhooks/{source}";
    for (request, status) in [
        (signed_webhook("legacy", &revoke, WEBHOOK_SECRET), StatusCode::OK),
        (signed_webhook("legacy", &revoke, WEBHOOK_SECRET), StatusCode::CONFLICT),
        (signed_webhook("nowhere", &revoke, WEBHOOK_SECRET), StatusCode::NOT_FOUND),
        (signed_webhook("legacy", &json!({"type": "token.revoked"}), "another secret"), StatusCode::UNAUTHORIZED),
    ] {
        let reply = client.send(request).await;
        assert_eq!(reply.status, status, "{}", reply.text());
        doc.check(&Method::POST, template, &reply);
    }

    // The guard's answers: 401 without a key, 403 with a key lacking the scope.
    for (method, path) in doc.operations() {
        let operation = &doc.doc["paths"][&path][method.to_ascii_lowercase()];
        let Some(scope) = operation["x-required-scope"].as_str().map(str::to_owned) else { continue };
        let body = operation.get("requestBody").map(|_| json!({}));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = client.send(request(&method, &path, None, body.as_ref())).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        doc.check(&method, &path, &reply);
        if scope != "decide" {
            let reply = client.send(request(&method, &path, Some(&decide_only), body.as_ref())).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
            doc.check(&method, &path, &reply);
        }
    }

    let missing: Vec<_> = doc.operations().difference(&doc.covered).cloned().collect();
    assert!(missing.is_empty(), "documented operations never answered with a success here: {missing:?}");
}
