//! Redaction through the engine's public API: planted secrets never survive,
//! anything else is left as it was, and the caller's value is not touched.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use serde_json::{Value, json};
use warrant_engine::redact::{DEFAULT_DIGEST_KEYS, DEFAULT_DROP_KEYS, REDACTED, RedactError};
use warrant_engine::{RedactionConfig, Redactor};

const KEY: &[u8] = b"redaction-key-derived-from-the-audit-key";

const JWT: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc3MjM2NjQwMH0.c2lnbmF0dXJlLXNlY3JldC1wYXJ0";
const DAPI: &str = "dapi0123456789abcdef0123456789abcdef";
const PEM_BODY: &str = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw";

fn redactor() -> Redactor {
    Redactor::new(RedactionConfig::default(), KEY).unwrap()
}

fn pem() -> String {
    format!("-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\nq83jZ7hK2sEcReT==\n-----END RSA PRIVATE KEY-----")
}

/// An event with secrets planted at several depths and key spellings.
fn event() -> Value {
    json!({
        "kind": "token.refreshed",
        "actor": "alice",
        "Access_Token": "at-SECRET-0001",
        "details": {
            "REFRESH_TOKEN": "rt-SECRET-0002",
            "note": format!("user pasted {JWT} in chat"),
            "conn": "Server=x;UID=u;PWD=hunter2;",
            "headers": [
                {"name": "Accept", "value": "application/json"},
                {"name": "X-Forwarded", "value": "Bearer bt-SECRET-0003.xyz"},
                {"authorization": "Basic dXNlcjpzM2NyM3Q="}
            ],
            "runs": [[{"msg": format!("cluster started with {DAPI} ok")}]],
            "ssh": {"deploy": pem()},
            "client-secret": "cs-SECRET-0004",
            "query_results": [{"ssn": "123-45-6789"}],
            "Input_Params": {"limit": 10},
            "export_url": "https://bucket.example/export?sig=abc",
            "code": "authcode-SECRET-0005",
            "count": 3,
            "ok": true,
            "surface": "notebook",
            "empty": null
        }
    })
}

const SECRETS: &[&str] = &[
    "at-SECRET-0001",
    "rt-SECRET-0002",
    JWT,
    "c2lnbmF0dXJlLXNlY3JldC1wYXJ0",
    "hunter2",
    "bt-SECRET-0003",
    "dXNlcjpzM2NyM3Q",
    DAPI,
    PEM_BODY,
    "q83jZ7hK2sEcReT",
    "PRIVATE KEY",
    "cs-SECRET-0004",
    "123-45-6789",
    "authcode-SECRET-0005",
    "bucket.example",
];

fn assert_clean(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "`{secret}` survived in {text}");
    }
}

#[test]
fn the_digest_is_vaults_hmac_sha256() {
    let redactor = Redactor::new(RedactionConfig::default(), b"foo").unwrap();
    assert_eq!(redactor.digest("foo"), "hmac-sha256:08ba357e274f528065766c770a639abf6809b39ccfd37c2a3157c7f51954da0a");
}

#[test]
fn planted_secrets_do_not_survive_anywhere() {
    let redactor = redactor();
    let input = event();
    let before = input.clone();
    let out = redactor.redact_value(&input);
    assert_eq!(input, before, "the caller's value is untouched");
    assert_clean(&serde_json::to_string(&out).unwrap());
    assert_clean(&serde_json::to_string_pretty(&out).unwrap());

    // Keyed digests, whatever the key's case or dash.
    let d = &out["details"];
    assert_eq!(out["Access_Token"], redactor.digest("at-SECRET-0001"));
    assert_eq!(d["REFRESH_TOKEN"], redactor.digest("rt-SECRET-0002"));
    assert_eq!(d["client-secret"], redactor.digest("cs-SECRET-0004"));
    assert_eq!(d["code"], redactor.digest("authcode-SECRET-0005"));
    assert_eq!(d["headers"][2]["authorization"], redactor.digest("Basic dXNlcjpzM2NyM3Q="));
    // Dropped.
    assert_eq!(d["query_results"], REDACTED);
    assert_eq!(d["Input_Params"], REDACTED);
    assert_eq!(d["export_url"], REDACTED);
    // Free text: the secret alone is replaced.
    assert_eq!(d["note"], format!("user pasted {} in chat", redactor.digest(JWT)));
    assert_eq!(d["conn"], format!("Server=x;UID=u;PWD={};", redactor.digest("hunter2")));
    assert_eq!(d["headers"][1]["value"], format!("Bearer {}", redactor.digest("bt-SECRET-0003.xyz")));
    assert_eq!(d["runs"][0][0]["msg"], format!("cluster started with {} ok", redactor.digest(DAPI)));
    assert_eq!(d["ssh"]["deploy"], REDACTED);
    // Everything else as it was.
    for field in ["kind", "actor"] {
        assert_eq!(out[field], before[field]);
    }
    for field in ["count", "ok", "surface", "empty"] {
        assert_eq!(d[field], before["details"][field], "{field}");
    }
    assert_eq!(d["headers"][0], before["details"]["headers"][0]);
    assert_eq!(d["headers"][1]["name"], "X-Forwarded");
}

/// The audit writer redacts its own values in place; the result is the
/// copy's, value for value, and a string with nothing secret comes back
/// as it was.
#[test]
fn redacting_in_place_gives_what_the_copy_gives() {
    let redactor = redactor();
    let deep = (0..200).fold(json!("token=at-SECRET-0001"), |v, _| json!([v]));
    for input in [event(), deep, json!({"nested": {"password": "x", "list": [1, "Bearer abc.def"]}}), json!("plain")] {
        assert_eq!(redactor.redact_owned(input.clone()), redactor.redact_value(&input), "{input}");
    }
    assert_eq!(redactor.redact_string("nothing to see".to_owned()), "nothing to see");
    assert_eq!(redactor.redact_string(format!("Bearer {JWT}")), redactor.redact_text(&format!("Bearer {JWT}")));
}

#[test]
fn digests_correlate_across_keys_and_free_text() {
    let redactor = redactor();
    let out = redactor.redact_value(&json!({
        "access_token": JWT,
        "log": format!("Authorization: Bearer {JWT}"),
        "url": format!("https://api.example/v1?access_token={JWT}&page=2"),
    }));
    let digest = redactor.digest(JWT);
    assert_eq!(out["access_token"], digest);
    assert_eq!(out["log"], format!("Authorization: Bearer {digest}"));
    assert_eq!(out["url"], format!("https://api.example/v1?access_token={digest}&page=2"));
    // Another key gives other digests: the key is what an auditor must ask for.
    let other = Redactor::new(RedactionConfig::default(), b"another-key").unwrap();
    assert_ne!(other.digest(JWT), digest);
}

#[test]
fn log_lines_are_scanned() {
    let redactor = redactor();
    let cases = [
        ("GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj", "SplxlOBeZQQYbYS6WxSbIA"),
        ("connecting to postgres://warrant:s3cr3t-pw@db.internal:5432/audit", "s3cr3t-pw"),
        ("Driver={ODBC};Password={hun ter;2};Server=x", "hun ter;2"),
        ("pwd='x y z' user=bob", "x y z"),
        (r#"password="quoted pass" next"#, "quoted pass"),
        ("DB_PASSWORD=envsecret42 ./run", "envsecret42"),
        ("passwd = spaced-secret", "spaced-secret"),
        (r#"body={"client_secret": "cs-inline-9", "grant_type": "refresh_token"}"#, "cs-inline-9"),
        (r#"{"Password":"esc\"aped"}"#, r#"esc\"aped"#),
        ("authorization: bearer lowercase-token-123", "lowercase-token-123"),
        ("token dapi0123456789abcdef0123456789abcdef-2 used", "0123456789abcdef0123456789abcdef"),
        ("truncated -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY----- done",
            "b3BlbnNzaC1rZXktdjE",
        ),
    ];
    for (line, secret) in cases {
        let out = redactor.redact_text(line);
        assert!(!out.contains(secret), "`{secret}` survived: {out}");
        assert!(out.contains("hmac-sha256:") || out.contains(REDACTED), "{out}");
    }
    assert_eq!(
        redactor.redact_text("GET /callback?code=abc&state=xyz"),
        format!("GET /callback?code={}&state=xyz", redactor.digest("abc"))
    );
    assert_eq!(
        redactor.redact_text("postgres://warrant:pw@db/audit"),
        format!("postgres://warrant:{}@db/audit", redactor.digest("pw"))
    );
    assert_eq!(redactor.redact_text("Password={a;b}"), format!("Password={{{}}}", redactor.digest("a;b")));
    assert_eq!(
        redactor.redact_text("x -----BEGIN EC PRIVATE KEY-----\nAAA\n-----END EC PRIVATE KEY----- y"),
        format!("x {REDACTED} y")
    );
    // Text without secrets is returned as it was.
    for clean in [
        "decision allow for alice on p1 (reasons: [])",
        "zipcode=12345 postcode=SW1",
        "the public key -----BEGIN PUBLIC KEY----- is fine",
        "https://example.com/path?page=2",
        "",
    ] {
        assert_eq!(redactor.redact_text(clean), clean);
    }
}

#[test]
fn non_string_values_under_digest_keys() {
    let redactor = redactor();
    let out = redactor.redact_value(&json!({
        "password": 123456,
        "access_token": ["a", "b", null],
        "authorization": {"scheme": "Bearer", "token": "t"},
        "refresh_token": null,
    }));
    assert_eq!(out["password"], redactor.digest("123456"));
    assert_eq!(out["access_token"], json!([redactor.digest("a"), redactor.digest("b"), null]));
    assert_eq!(out["authorization"], redactor.digest(r#"{"scheme":"Bearer","token":"t"}"#));
    assert_eq!(out["refresh_token"], Value::Null);
}

#[test]
fn lists_are_configurable() {
    let defaults = RedactionConfig::default();
    assert_eq!(defaults.digest_keys().collect::<Vec<_>>(), DEFAULT_DIGEST_KEYS);
    assert_eq!(defaults.drop_keys().collect::<Vec<_>>(), DEFAULT_DROP_KEYS);

    let value = json!({"ssn": "123-45-6789", "Session-Cookie": "c00kie", "code": "x", "note": "pwd=p4ss"});
    let added = Redactor::new(RedactionConfig::default().drop_key("SSN").digest_key("session_cookie"), KEY).unwrap();
    let out = added.redact_value(&value);
    assert_eq!(out["ssn"], REDACTED);
    assert_eq!(out["Session-Cookie"], added.digest("c00kie"));
    assert_eq!(out["code"], added.digest("x"));

    let replaced =
        Redactor::new(RedactionConfig::default().with_digest_keys(["ssn"]).with_drop_keys(Vec::<String>::new()), KEY)
            .unwrap();
    let out = replaced.redact_value(&value);
    assert_eq!(out["ssn"], replaced.digest("123-45-6789"));
    assert_eq!(out["code"], "x", "replaced lists no longer hold `code`");
    assert_eq!(out["note"], format!("pwd={}", replaced.digest("p4ss")), "free text is still scanned");

    let unscanned = Redactor::new(RedactionConfig::empty().digest_key("code"), KEY).unwrap();
    let out = unscanned.redact_value(&value);
    assert_eq!(out["note"], "pwd=p4ss");
    assert_eq!(out["code"], unscanned.digest("x"));

    // A key in both lists is dropped.
    let both = Redactor::new(RedactionConfig::empty().digest_key("ssn").drop_key("ssn"), KEY).unwrap();
    assert_eq!(both.redact_value(&value)["ssn"], REDACTED);
}

#[test]
fn the_key_never_shows() {
    assert_eq!(Redactor::new(RedactionConfig::default(), b"").unwrap_err(), RedactError::EmptyKey);
    let debug = format!("{:?}", redactor());
    assert!(!debug.contains("redaction-key"), "{debug}");
    assert!(!debug.contains(&hex::encode(KEY)[..16]), "{debug}");
    assert!(debug.contains("access_token"), "{debug}");
}

#[test]
fn hostile_nesting_fails_closed() {
    let mut value = json!({"password": "deep-secret"});
    for _ in 0..1000 {
        // Not `json!`, which would re-serialize the whole value each time.
        value = Value::Object(serde_json::Map::from_iter([("wrap".to_owned(), Value::Array(vec![value]))]));
    }
    let out = redactor().redact_value(&value);
    let text = serde_json::to_string(&out).unwrap();
    assert!(!text.contains("deep-secret"));
    assert!(text.contains(REDACTED));
    // Tear the nested value down iteratively: dropping it recursively could
    // overflow the test thread's stack.
    for mut v in [value, out] {
        while let Some(inner) = v.get_mut("wrap").and_then(|w| w.get_mut(0)).map(Value::take) {
            v = inner;
        }
    }
}

/// The secrets issue 19 found reaching the log (row 6): values under
/// `token`, `secret`, `api_key`, `apiKey`, `x-api-key`, `cookie`, and the
/// well-known token formats in free text. Each is planted and must come out
/// as its digest; look-alike words stay.
#[test]
fn common_key_names_and_prefixed_tokens_are_digested() {
    let redactor = redactor();
    const GOOGLE: &str = "ya29.a0AfB_byC1234567890abcdefghijklmnopqrstuv";
    const GITHUB: &str = "ghp_1234567890abcdefghijklmnopqrstuvwxyz12";
    const GITHUB_PAT: &str = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz";
    const STRIPE: &str = "sk_live_51H8abcdefghijklmnopqrstuv";
    const SLACK: &str = "xoxb-123456789012-1234567890123-abcdefghijkl";
    const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
    const GITLAB: &str = "glpat-abcdefghijklmnop1234";
    const OPENAI: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";
    let keyed = [
        ("token", "tok-SECRET-1"),
        ("secret", "sec-SECRET-2"),
        ("api_key", "ak-SECRET-3"),
        ("apiKey", "ak-SECRET-4"),
        ("X-Api-Key", "ak-SECRET-5"),
        ("cookie", "sid=ck-SECRET-6"),
        ("Set-Cookie", "sid=ck-SECRET-7; HttpOnly"),
        ("session", "sess-SECRET-8"),
    ];
    let mut details = serde_json::Map::new();
    for (key, value) in keyed {
        details.insert(key.to_owned(), json!(value));
    }
    let free = [GOOGLE, GITHUB, GITHUB_PAT, STRIPE, SLACK, AWS, GITLAB, OPENAI];
    for (i, token) in free.iter().enumerate() {
        details.insert(format!("note{i}"), json!(format!("the job used {token} to connect")));
    }
    details.insert("headers".into(), json!("Cookie: sid=hdr-SECRET-10\nX-Api-Key: hdr-SECRET-11\nAccept: */*"));
    details.insert("query".into(), json!("GET /x?token=q-SECRET-12&secret=q-SECRET-13&page=2"));
    details.insert("body".into(), json!(r#"{"apiKey": "j-SECRET-14", "n": 1}"#));
    details.insert("plain".into(), json!("tokens, a secretary, akia and sk-short are words; ya29 alone too"));
    let out = redactor.redact_value(&Value::Object(details));
    let text = out.to_string();
    for (_, value) in keyed {
        assert!(!text.contains(value), "`{value}` survived: {text}");
    }
    for (key, value) in keyed {
        assert_eq!(out[key], redactor.digest(value), "{key}");
    }
    for (i, token) in free.iter().enumerate() {
        assert_eq!(out[format!("note{i}")], format!("the job used {} to connect", redactor.digest(token)), "{token}");
    }
    let headers = format!(
        "Cookie: {}\nX-Api-Key: {}\nAccept: */*",
        redactor.digest("sid=hdr-SECRET-10"),
        redactor.digest("hdr-SECRET-11")
    );
    assert_eq!(out["headers"], headers);
    let query =
        format!("GET /x?token={}&secret={}&page=2", redactor.digest("q-SECRET-12"), redactor.digest("q-SECRET-13"));
    assert_eq!(out["query"], query);
    assert_eq!(out["body"], format!(r#"{{"apiKey": "{}", "n": 1}}"#, redactor.digest("j-SECRET-14")));
    assert_eq!(out["plain"], "tokens, a secretary, akia and sk-short are words; ya29 alone too");
}
