//! Verification ranges: a partial range is not evidence of tampering, and
//! nonsense ranges are the caller's mistake (400), never a 500 or a false
//! "cut off" finding. Found by schemathesis and review.

use reqwest::StatusCode;

use crate::server::{Server, warrant_command};

#[tokio::test]
async fn partial_and_invalid_ranges() {
    let server = Server::start();
    // A few records, then a checkpoint covering all of them.
    for _ in 0..3 {
        let body = serde_json::json!({"principal": {"type": "User", "id": "u"}, "action": "view_notebook", "resource": {"type": "Project", "id": "p"}});
        assert_eq!(server.post("/v1/authorize", &body).await.status, StatusCode::OK);
    }
    let checkpoint = server.get("/v1/audit/checkpoint").await.json;
    let size = checkpoint["tree_size"].as_u64().expect("size");
    assert!(size >= 4);

    // A prefix of an intact log verifies, whatever checkpoints exist beyond it.
    let r = server.get("/v1/audit/verify?to=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["ok"], true, "{}", r.text);
    // The whole log still checks the checkpoint.
    let r = server.get("/v1/audit/verify").await;
    assert_eq!((r.json["ok"].clone(), r.json["checkpoints_checked"].as_u64()), (serde_json::json!(true), Some(1)));

    let bad = [
        format!("/v1/audit/verify?from={}", size + 50),
        "/v1/audit/verify?from=3&to=2".to_owned(),
        format!("/v1/audit/verify?tree_size=9007199254740992&root={}", "a".repeat(64)),
        "/v1/policies?content=null".to_owned(),
    ];
    for path in &bad {
        let r = server.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert!(r.json["error"]["code"].is_string(), "{path}: a JSON error, got {}", r.text);
    }

    // The CLI agrees: a range past the end is an error (exit 2), not a finding.
    let out = warrant_command(server.config_home())
        .args(["audit", "verify", "--database-url", server.database_url(), "--from", "999"])
        .output()
        .expect("audit verify");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let out = warrant_command(server.config_home())
        .args(["audit", "verify", "--database-url", server.database_url(), "--to", "1"])
        .output()
        .expect("audit verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
