//! Malformed input across endpoints: always a 4xx (never a 5xx) with a JSON
//! body `{"error": {"code", "message", "field"?}}` naming the field at fault.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Server, send_raw};

const JSON: Option<&str> = Some("application/json");

/// A valid AuthZEN evaluation against the pack, to break one piece at a time.
fn valid() -> Value {
    json!({
        "subject": {"type": "User", "id": "vera"},
        "action": {"name": "view_notebook"},
        "resource": {"type": "Project", "id": "p_multi"},
        "context": {"surface": "notebook"}
    })
}

/// `valid()` with `edit` applied.
fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = valid();
    edit(&mut body);
    serde_json::to_vec(&body).unwrap()
}

/// `{"a": {"a": … 1}}` nested `levels` deep.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "a": value });
    }
    value
}

/// `[[[… 1 …]]]` nested `levels` deep (past serde_json's recursion limit at 128).
fn deep_array(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!([value]);
    }
    value
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    /// The `error.field` expected; `None`: not checked.
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    field: Option<&'static str>,
) -> Case {
    Case { name, method: Method::POST, path, content_type: JSON, body, status, field }
}

const EVAL: &str = "/access/v1/evaluation";
const EVALS: &str = "/access/v1/evaluations";
const BAD: StatusCode = StatusCode::BAD_REQUEST;

fn cases() -> Vec<Case> {
    let big_context = json!({"sql": "x".repeat(2 * 1024 * 1024)});
    let mut invalid_utf8 = br#"{"subject": {"type": "User", "id": "ve"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(
        br#"ra"}, "action": {"name": "view_notebook"}, "resource": {"type": "Project", "id": "p_multi"}}"#,
    );
    let mut trailing = serde_json::to_vec(&valid()).unwrap();
    trailing.extend_from_slice(b" {\"extra\": true}");
    vec![
        case("malformed JSON", EVAL, br#"{"subject": {"type": "User","#.to_vec(), BAD, None),
        case("empty body", EVAL, Vec::new(), BAD, None),
        case("trailing garbage", EVAL, trailing, BAD, None),
        case("JSON array instead of object (empty)", EVAL, b"[]".to_vec(), BAD, None),
        case(
            "JSON array instead of object (positional fields)",
            EVAL,
            serde_json::to_vec(&json!([valid()["subject"], valid()["action"], valid()["resource"]])).unwrap(),
            BAD,
            None,
        ),
        case("JSON string instead of object", EVAL, br#""subject""#.to_vec(), BAD, None),
        Case {
            name: "wrong content type",
            content_type: Some("text/plain"),
            ..case("", EVAL, serde_json::to_vec(&valid()).unwrap(), BAD, None)
        },
        // AuthZEN certification scenario §2.4.3: anything but JSON is a 400.
        Case {
            name: "no content type",
            content_type: None,
            ..case("", EVAL, serde_json::to_vec(&valid()).unwrap(), BAD, None)
        },
        case(
            "missing subject",
            EVAL,
            with(|b| drop(b.as_object_mut().unwrap().remove("subject"))),
            BAD,
            Some("subject"),
        ),
        case(
            "missing subject.id",
            EVAL,
            with(|b| drop(b["subject"].as_object_mut().unwrap().remove("id"))),
            BAD,
            Some("subject.id"),
        ),
        case("subject.id a number", EVAL, with(|b| b["subject"]["id"] = json!(42)), BAD, Some("subject.id")),
        case("empty subject.id", EVAL, with(|b| b["subject"]["id"] = json!("")), BAD, Some("subject.id")),
        case("empty resource.type", EVAL, with(|b| b["resource"]["type"] = json!("")), BAD, Some("resource.type")),
        case("missing action.name", EVAL, with(|b| b["action"] = json!({})), BAD, Some("action.name")),
        case(
            "unknown entity type",
            EVAL,
            with(|b| b["resource"]["type"] = json!("Spaceship")),
            BAD,
            Some("resource.type"),
        ),
        case("unknown action", EVAL, with(|b| b["action"]["name"] = json!("launch")), BAD, Some("action")),
        case("context not an object", EVAL, with(|b| b["context"] = json!([1, 2])), BAD, Some("context")),
        case("context key of the wrong type", EVAL, with(|b| b["context"]["surface"] = json!(7)), BAD, Some("context")),
        case(
            "properties not an object",
            EVAL,
            with(|b| b["subject"]["properties"] = json!("admin")),
            BAD,
            Some("subject.properties"),
        ),
        case(
            "property of the wrong type",
            EVAL,
            with(|b| b["subject"]["properties"] = json!({"is_support": "yes"})),
            BAD,
            Some("subject.properties"),
        ),
        case(
            "evaluations not an array",
            EVALS,
            with(|b| b["evaluations"] = json!({"0": {}})),
            BAD,
            Some("evaluations"),
        ),
        case(
            "bad evaluations_semantic",
            EVALS,
            with(|b| b["options"] = json!({"evaluations_semantic": "deny_on_first_permit"})),
            BAD,
            Some("options.evaluations_semantic"),
        ),
        case(
            "empty evaluations without defaults",
            EVALS,
            serde_json::to_vec(&json!({"evaluations": []})).unwrap(),
            BAD,
            Some("subject"),
        ),
        case("oversized body (2 MiB)", EVAL, with(|b| b["context"] = big_context), StatusCode::PAYLOAD_TOO_LARGE, None),
        case(
            "context nested 40 levels",
            EVAL,
            with(|b| b["context"] = json!({"sql": nested(40)})),
            BAD,
            Some("context"),
        ),
        case(
            "properties nested 40 levels",
            EVAL,
            with(|b| b["subject"]["properties"] = json!({"email": nested(40)})),
            BAD,
            Some("subject.properties"),
        ),
        case("JSON nested 300 levels", EVAL, with(|b| b["context"] = json!({"sql": deep_array(300)})), BAD, None),
        case("invalid UTF-8 bytes", EVAL, invalid_utf8, BAD, None),
        case(
            "subject as an array instead of an object",
            EVAL,
            with(|b| b["subject"] = json!(["User", "vera"])),
            BAD,
            Some("subject"),
        ),
        case(
            "more than 1000 evaluations",
            EVALS,
            with(|b| b["evaluations"] = Value::Array(vec![json!({}); 1001])),
            BAD,
            Some("evaluations"),
        ),
        case(
            "native: missing principal",
            "/v1/authorize",
            serde_json::to_vec(&json!({"action": "view_notebook", "resource": {"type": "Project", "id": "p"}}))
                .unwrap(),
            BAD,
            Some("principal"),
        ),
        case(
            "native: empty batch",
            "/v1/authorize/batch",
            serde_json::to_vec(&json!({"requests": []})).unwrap(),
            BAD,
            Some("requests"),
        ),
        Case {
            method: Method::PUT,
            ..case("PUT /v1/entities with a non-array", "/v1/entities", br#"{"uid": "x"}"#.to_vec(), BAD, None)
        },
        Case {
            method: Method::PUT,
            ..case(
                "PUT /v1/policies with no schema",
                "/v1/policies",
                serde_json::to_vec(&json!({"files": {"a.cedar": "permit (principal, action, resource);"}})).unwrap(),
                BAD,
                None,
            )
        },
        Case {
            method: Method::PUT,
            ..case(
                "PUT /v1/policies with a path outside the bundle",
                "/v1/policies",
                serde_json::to_vec(&json!({"files": {"../a.cedar": "permit (principal, action, resource);"}})).unwrap(),
                BAD,
                None,
            )
        },
        Case {
            method: Method::GET,
            content_type: None,
            ..case("unknown route", "/v1/nothing-here", Vec::new(), StatusCode::NOT_FOUND, None)
        },
        Case {
            method: Method::GET,
            content_type: None,
            ..case("wrong method", EVAL, Vec::new(), StatusCode::METHOD_NOT_ALLOWED, None)
        },
        Case {
            method: Method::DELETE,
            content_type: None,
            ..case("wrong method on a bulk route", "/v1/policies", Vec::new(), StatusCode::METHOD_NOT_ALLOWED, None)
        },
    ]
}

#[tokio::test]
async fn malformed_inputs_are_4xx_json_errors_naming_the_field() {
    let server = Server::start();
    server.put_entities(&crate::server::pack_entities("notebook")).await;
    // The base request is valid: each case breaks exactly one thing.
    assert!(server.decide(&valid()).await);

    // A new connection per case: a refused body may leave its connection
    // unusable (see `an_oversized_body_closes_its_connection_openly`).
    let fresh = crate::server::authorized_client(&server.api_key, reqwest::Client::builder().pool_max_idle_per_host(0));
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let r = match send_raw(&fresh, c.method.clone(), &server.url(c.path), c.content_type, c.body.clone()).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no response: {e:?}", c.name));
                continue;
            }
        };
        let error = &r.json["error"];
        let mut problems = Vec::new();
        if r.status != c.status {
            problems.push(format!("status {} (want {})", r.status, c.status));
        }
        if !r.status.is_client_error() {
            problems.push("not a 4xx".to_owned());
        }
        if error["code"].as_str().is_none_or(str::is_empty) {
            problems.push("no error.code".to_owned());
        }
        if error["message"].as_str().is_none_or(str::is_empty) {
            problems.push("no error.message".to_owned());
        }
        if let Some(field) = c.field
            && error["field"] != field
        {
            problems.push(format!("field {} (want `{field}`)", error["field"]));
        }
        let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_type.starts_with("application/json") {
            problems.push(format!("content-type `{content_type}`"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {} — body: {}", c.name, problems.join(", "), r.text));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // The server is still healthy and nothing was logged as internal.
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    assert!(!server.logs().contains("internal error"), "{}", server.logs());
}

#[tokio::test]
async fn an_oversized_body_closes_its_connection_openly() {
    let server = Server::start();
    let mut body = valid();
    body["context"] = json!({"sql": "x".repeat(2 * 1024 * 1024)});
    let r = server.raw(Method::POST, EVAL, JSON, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "payload_too_large");
    // The server does not read the rest of the body, so it cannot keep the
    // connection: it must say so, or a pooling client sends its next
    // request on a dead connection.
    let connection = r.headers.get("connection").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(connection.eq_ignore_ascii_case("close"), "413 without `Connection: close` (got `{connection}`)");
    // The same client's next requests succeed.
    for _ in 0..3 {
        let r = server.post(EVAL, &valid()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

/// Ids are printable characters only (issue 19, row 11): NUL, escapes,
/// line breaks and bidirectional controls (`admin\u{202E}nimda` prints as
/// `adminadmin` in a log or the console) are refused with a 400 naming the
/// field, wherever an id arrives.
#[tokio::test]
async fn ids_with_control_or_bidi_characters_are_refused_naming_the_field() {
    let server = Server::start();
    for bad in ["a\u{0}b", "line\nbreak", "\u{1b}[31mred", "admin\u{202E}nimda", "x\u{2066}y"] {
        let mut body = valid();
        body["subject"]["id"] = json!(bad);
        let r = server.post("/access/v1/evaluation", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
        assert_eq!(r.json["error"]["field"], "subject.id", "{}", r.text);
        assert!(r.json["error"]["message"].as_str().unwrap().contains("printable"), "{}", r.text);

        let event = json!({"kind": "token.revoked", "token_id": bad, "owner": "ann", "connection": "snow"});
        let r = server.post("/v1/tokens/events", &event).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
        assert_eq!(r.json["error"]["field"], "token_id", "{}", r.text);
    }
    // Printable ids in any script still work.
    let mut body = valid();
    body["subject"]["id"] = json!("Анна");
    assert_eq!(server.post("/access/v1/evaluation", &body).await.status, StatusCode::OK);
    assert!(server.audit_events("kind=token.revoked").await.is_empty(), "nothing refused was recorded");
}

/// The database and its directory are private to the service's user
/// (issue 19, row 11): 0600 and 0700, not the umask's 0644.
#[tokio::test]
async fn the_database_is_created_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh-data");
    let db = data.join("warrant.db");
    let server = Server::start_on(&format!("sqlite://{}", db.display()), None);
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let wal = data.join("warrant.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
}
