//! `GET /openapi.json`: public, OpenAPI 3.x, and in step with the router:
//! every route the service serves is documented (and nothing else), guarded
//! ones with the `bearer` scheme and the scope the live server really asks
//! for, public ones with no security; error responses use the error schema.
//! `tests/openapi/run` fuzzes a live server against the same document.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Reply, Server, authorized_client, send_raw, warrant_command};

const SCOPES: [&str; 4] = ["decide", "events:write", "audit:read", "policy:admin"];

/// Every route of `service/src/http/*.rs`, with the scope its router group
/// is guarded by in `http/mod.rs` (`None`: public).
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    // health.rs
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    // console.rs
    ("GET", "/console/", None),
    ("GET", "/console/{file}", None),
    // log.rs
    ("GET", "/log/checkpoint", None),
    ("GET", "/log/tile/{path}", None),
    ("GET", "/log/tile/entries/{path}", Some("audit:read")),
    // authzen.rs
    ("GET", "/.well-known/authzen-configuration", None),
    ("POST", "/access/v1/evaluation", Some("decide")),
    ("POST", "/access/v1/evaluations", Some("decide")),
    // search.rs
    ("POST", "/access/v1/search/resource", Some("decide")),
    ("POST", "/access/v1/search/subject", Some("decide")),
    ("POST", "/access/v1/search/action", Some("decide")),
    // authorize.rs
    ("POST", "/v1/authorize", Some("decide")),
    ("POST", "/v1/authorize/batch", Some("decide")),
    // credentials.rs
    ("POST", "/v1/credentials/resolve", Some("decide")),
    // tokens.rs
    ("POST", "/v1/tokens/events", Some("events:write")),
    // grants.rs (the vault): the provider's callback carries its own credential
    ("POST", "/v1/grants/{connection}/start", Some("events:write")),
    ("GET", "/v1/grants/callback", None),
    ("POST", "/v1/grants/import", Some("events:write")),
    ("GET", "/v1/grants/{id}", Some("events:write")),
    ("DELETE", "/v1/grants/{id}", Some("events:write")),
    // webhooks.rs: signed by the source, no API key
    ("POST", "/v1/webhooks/{source}", None),
    // audit.rs
    ("GET", "/v1/audit/events", Some("audit:read")),
    ("GET", "/v1/audit/export", Some("audit:read")),
    ("GET", "/v1/audit/verify", Some("audit:read")),
    ("GET", "/v1/audit/checkpoint", Some("audit:read")),
    ("GET", "/v1/audit/proofs/inclusion", Some("audit:read")),
    ("GET", "/v1/audit/proofs/consistency", Some("audit:read")),
    ("POST", "/v1/audit/digest", Some("audit:read")),
    // overview.rs
    ("GET", "/v1/audit/overview", Some("audit:read")),
    // entities.rs
    ("GET", "/v1/entities", Some("policy:admin")),
    ("PUT", "/v1/entities", Some("policy:admin")),
    // policies.rs
    ("GET", "/v1/policies", Some("policy:admin")),
    ("PUT", "/v1/policies", Some("policy:admin")),
    // openapi.rs
    ("GET", "/openapi.json", None),
];

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The document, fetched without an API key.
async fn document(server: &Server) -> Value {
    let plain = reqwest::Client::new();
    let r = plain.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    r.json().await.unwrap()
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

/// Follows a local `$ref` (`#/components/…`), or returns the value itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
            doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        None => value,
    }
}

fn every_ref(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| every_ref(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| every_ref(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_documents_every_route_with_its_scope_and_errors() {
    let server = Server::start();
    let doc = document(&server).await;

    let version = doc["openapi"].as_str().expect("`openapi` version");
    assert!(version.starts_with("3."), "not OpenAPI 3.x: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string(), "{}", doc["info"]);
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    assert!(scheme["bearerFormat"].as_str().unwrap().starts_with("wrnt_"), "{scheme}");
    assert!(doc.get("security").is_none_or(|s| s.as_array().is_some_and(Vec::is_empty)), "no global security");

    // The router and the document list the same operations.
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(documented, routed, "documented operations differ from the routes");

    let mut operation_ids = BTreeSet::new();
    for (method, path, scope) in ROUTES {
        let op = operation(&doc, method, path);
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(operation_ids.insert(id.to_owned()), "{method} {path}: duplicate operationId `{id}`");
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success response in {:?}",
            responses.keys()
        );
        match scope {
            Some(scope) => {
                assert_eq!(op["security"], json!([{ "bearer": [scope] }]), "{method} {path}");
                assert_eq!(op["x-required-scope"], *scope, "{method} {path}");
                let description = op["description"].as_str().unwrap_or_default();
                assert!(description.contains(&format!("`{scope}`")), "{method} {path}: {description}");
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{method} {path}: no {status}");
                }
            }
            None => {
                assert!(
                    op.get("security").is_none_or(|s| s.as_array().is_some_and(Vec::is_empty)),
                    "{method} {path} is public but documents {}",
                    op["security"]
                );
                assert!(op.get("x-required-scope").is_none(), "{method} {path}");
                assert!(!responses.contains_key("403"), "{method} {path}: public, yet 403");
            }
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413"] {
                assert!(responses.contains_key(status), "{method} {path}: a body, yet no {status}");
            }
            let body = resolve(&doc, &op["requestBody"]);
            assert!(body["content"]["application/json"]["schema"].is_object(), "{method} {path}: {body}");
        }
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(response["description"].is_string(), "{method} {path} {status}: no description");
            // (The one 5xx documented, `/readyz`'s 503, has a body of its own.)
            if status.starts_with('4') {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(schema["$ref"], "#/components/schemas/Error", "{method} {path} {status}: {response}");
            }
        }
    }

    // Every reference resolves.
    let mut refs = Vec::new();
    every_ref(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        resolve(&doc, &json!({ "$ref": reference }));
    }
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]), "{error}");
}

/// Mints a key in `server`'s database with exactly `scopes`.
pub(crate) fn mint(server: &Server, scopes: &[&str]) -> String {
    let mut command = warrant_command(server.config_home());
    command.args(["keys", "create", "--database-url", server.database_url(), "--description", "openapi"]);
    for scope in scopes {
        command.args(["--scope", scope]);
    }
    let out = command.output().expect("warrant keys create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sends `{}` as the body when the operation takes one.
async fn call(client: &reqwest::Client, method: &Method, url: &str, json_body: bool) -> Reply {
    let (content_type, body) = if json_body { (Some("application/json"), b"{}".to_vec()) } else { (None, Vec::new()) };
    send_raw(client, method.clone(), url, content_type, body).await.unwrap()
}

/// The scope each operation documents is the one the live server asks for:
/// a key with only that scope gets past the guard, a key with every other
/// scope is refused with 403, and public operations need no key at all.
#[tokio::test]
async fn documented_scopes_are_the_enforced_ones() {
    let server = Server::start();
    let doc = document(&server).await;
    let plain = reqwest::Client::new();
    let client = |scopes: &[&str]| authorized_client(&mint(&server, scopes), reqwest::Client::builder());
    // Per scope: a client with only it, and one with every other scope.
    let keys: BTreeMap<&str, (reqwest::Client, reqwest::Client)> = SCOPES
        .into_iter()
        .map(|scope| {
            let others: Vec<&str> = SCOPES.into_iter().filter(|s| *s != scope).collect();
            (scope, (client(&[scope]), client(&others)))
        })
        .collect();
    for (method, path, _) in ROUTES {
        let op = operation(&doc, method, path);
        let url = server.url(&path.replace("{source}", "nowhere"));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let json_body = op.get("requestBody").is_some();
        match op["x-required-scope"].as_str() {
            None => {
                let r = call(&plain, &method, &url, json_body).await;
                assert!(r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN, "{method} {path}");
            }
            Some(scope) => {
                let (only, without) =
                    keys.get(scope).unwrap_or_else(|| panic!("{method} {path}: unknown scope `{scope}`"));
                let r = call(only, &method, &url, json_body).await;
                assert!(
                    r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                    "{method} {path} with only `{scope}`: {} {}",
                    r.status,
                    r.text
                );
                let r = call(without, &method, &url, json_body).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path} without `{scope}`: {}", r.text);
                let r = call(&plain, &method, &url, json_body).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} without a key: {}", r.text);
            }
        }
    }
}
