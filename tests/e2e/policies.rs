//! `GET|PUT /v1/policies` and SIGHUP reloads: a bad bundle is refused with
//! located diagnostics and the old one stays; a good one is swapped in
//! atomically, with no failed request during the swap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::server::{Server, bundle_files, pack_dir, pack_entities};

/// A forbid that turns vera's `view_notebook` on p_multi (a member: allowed
/// by the pack) into a deny with a recognisable reason.
pub(crate) const BLOCK_VERA: &str = r#"// Added by the end-to-end tests.
@id("T.block_vera")
@reason("blocked_for_test")
forbid (
  principal == Analytics::User::"vera",
  action == Analytics::Action::"view_notebook",
  resource
);
"#;

/// A parse error at line 4, column 26 (the `}` after `==`).
const PARSE_ERROR: &str =
    "// a broken policy\n@id(\"broken.one\")\npermit (principal, action, resource)\nwhen { principal.nope == };\n";

/// A validation error at line 4, column 3 (no attribute `nope` on User).
const TYPE_ERROR: &str = "@id(\"broken.two\")\npermit (principal, action == Analytics::Action::\"view_notebook\", resource)\nwhen {\n  principal.nope == 1\n};\n";

fn pack_with(extra_name: &str, extra: &str) -> Map<String, Value> {
    let mut files = bundle_files(&pack_dir());
    files.insert(extra_name.to_owned(), json!(extra));
    files
}

fn vera_views() -> Value {
    json!({
        "subject": {"type": "User", "id": "vera"},
        "action": {"name": "view_notebook"},
        "resource": {"type": "Project", "id": "p_multi"},
        "options": {"explain": true}
    })
}

/// Starts the pack with the notebook entities, where vera may view p_multi.
async fn pack_server() -> Server {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    assert_eq!(server.evaluation(&vera_views()).await["decision"], true);
    server
}

async fn assert_vera_blocked(server: &Server, blocked: bool) {
    let answer = server.evaluation(&vera_views()).await;
    if blocked {
        assert_eq!(answer["decision"], false, "{answer}");
        assert_eq!(answer["context"]["reasons"], json!(["blocked_for_test"]));
        assert_eq!(answer["context"]["policies"], json!(["T.block_vera"]));
    } else {
        assert_eq!(answer["decision"], true, "{answer}");
    }
}

#[tokio::test]
async fn a_broken_upload_is_refused_with_file_line_column_and_the_old_bundle_stays() {
    let server = pack_server().await;
    let before = server.digest().await;
    for (text, line, column, needle) in [(PARSE_ERROR, 4, 26, "unexpected token"), (TYPE_ERROR, 4, 3, "nope")] {
        let r = server.put("/v1/policies", &json!({"files": pack_with("broken.cedar", text)})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let error = &r.json["error"];
        assert_eq!(error["code"], "invalid_bundle");
        let first = &error["diagnostics"][0];
        assert_eq!(first["file"], "broken.cedar", "{first}");
        assert_eq!(first["line"], line, "{first}");
        assert_eq!(first["column"], column, "{first}");
        assert!(first["message"].as_str().unwrap().contains(needle), "{first}");
        // Nothing changed.
        assert_eq!(server.digest().await, before);
        assert_vera_blocked(&server, false).await;
    }
}

#[tokio::test]
async fn a_valid_upload_changes_the_digest_and_the_decisions_and_survives_a_restart() {
    let mut server = pack_server().await;
    let before = server.digest().await;
    let r = server.put("/v1/policies", &json!({"files": pack_with("test_block.cedar", BLOCK_VERA)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = r.json["digest"].as_str().unwrap().to_owned();
    assert_ne!(after, before);
    assert_eq!(r.json["previous_digest"], before.as_str());
    assert_eq!(r.json["changed"], true);
    let shown = server.get("/v1/policies").await.json;
    assert_eq!(shown["digest"], after.as_str());
    assert_eq!(shown["origin"], "api");
    assert!(shown["files"].as_array().unwrap().iter().any(|f| f["path"] == "test_block.cedar"), "{shown}");
    assert_vera_blocked(&server, true).await;

    // Uploading the same bundle again changes nothing.
    let again = server.put("/v1/policies", &json!({"files": pack_with("test_block.cedar", BLOCK_VERA)})).await;
    assert_eq!(again.json["changed"], false, "{}", again.text);

    server.restart();
    assert_eq!(server.digest().await, after, "the uploaded bundle is active after a restart");
    assert_eq!(server.get("/v1/policies").await.json["origin"], "api");
    assert_vera_blocked(&server, true).await;

    // And the original pack can be put back.
    let r = server.put("/v1/policies", &json!({"files": bundle_files(&pack_dir())})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["digest"], before.as_str(), "the digest names the files, not the upload");
    assert_vera_blocked(&server, false).await;
}

#[tokio::test]
async fn sighup_reloads_the_policies_directory() {
    let server = pack_server().await;
    let before = server.digest().await;
    let extra = server.policies_dir().join("test_block.cedar");
    std::fs::write(&extra, BLOCK_VERA).unwrap();
    server.signal("HUP");
    let after = server.wait_for_digest_change(&before, Duration::from_secs(10)).await;
    assert_eq!(server.get("/v1/policies").await.json["origin"], "disk");
    assert_vera_blocked(&server, true).await;
    server.wait_for_log(Duration::from_secs(5), |log| log.contains("policy bundle reloaded")).await;

    std::fs::remove_file(&extra).unwrap();
    server.signal("HUP");
    let restored = server.wait_for_digest_change(&after, Duration::from_secs(10)).await;
    assert_eq!(restored, before);
    assert_vera_blocked(&server, false).await;
}

#[tokio::test]
async fn sighup_right_after_start_is_a_reload_not_a_kill() {
    // The first thing after `listening`: the handler must already be installed
    // (SIGHUP's default action would terminate the process).
    let mut server = Server::start();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("policy bundle unchanged on reload") {
        if let Some(status) = server.exit_status() {
            panic!("SIGHUP right after `listening` killed the server ({status}); log:\n{}", server.logs());
        }
        assert!(Instant::now() < deadline, "no reload logged; log:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(server.get("/v1/policies").await.json["origin"], "disk");
}

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_the_old_bundle() {
    let server = pack_server().await;
    let before = server.digest().await;
    std::fs::write(server.policies_dir().join("broken.cedar"), PARSE_ERROR).unwrap();
    server.signal("HUP");
    server.wait_for_log(Duration::from_secs(10), |log| log.contains("policy reload refused")).await;
    let log = server.logs();
    assert!(log.contains("broken.cedar:4:26"), "the log locates the problem:\n{log}");
    assert_eq!(server.digest().await, before);
    assert_vera_blocked(&server, false).await;

    // Fixing the file and reloading again works.
    std::fs::write(server.policies_dir().join("broken.cedar"), BLOCK_VERA).unwrap();
    server.signal("HUP");
    server.wait_for_digest_change(&before, Duration::from_secs(10)).await;
    assert_vera_blocked(&server, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_bundles_are_swapped() {
    const WORKERS: usize = 4;
    const REQUESTS_PER_WORKER: usize = 500;
    const UPLOADS: usize = 10;

    let server = pack_server().await;
    let digest_plain = server.digest().await;
    let plain = json!({"files": bundle_files(&pack_dir())});
    let blocking = json!({"files": pack_with("test_block.cedar", BLOCK_VERA)});

    let uploads_done = Arc::new(AtomicBool::new(false));
    let uploader = {
        let (client, url, done) = (server.client.clone(), server.url("/v1/policies"), Arc::clone(&uploads_done));
        tokio::spawn(async move {
            let mut digests = Vec::new();
            for i in 0..UPLOADS {
                let body = if i % 2 == 0 { &blocking } else { &plain };
                let response = client.put(&url).json(body).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "upload {i}");
                let answer: Value = response.json().await.unwrap();
                digests.push(answer["digest"].as_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            done.store(true, Ordering::SeqCst);
            digests
        })
    };

    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (client, url) = (server.client.clone(), server.url("/access/v1/evaluation"));
        let (done, sent) = (Arc::clone(&uploads_done), Arc::clone(&sent));
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut n = 0;
            // At least REQUESTS_PER_WORKER, and on until the uploads are over (bounded).
            while n < REQUESTS_PER_WORKER || (!done.load(Ordering::SeqCst) && n < 10 * REQUESTS_PER_WORKER) {
                let response = client.post(&url).json(&vera_views()).send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                assert_eq!(status, StatusCode::OK, "request {n} during swaps failed: {text}");
                let answer: Value = serde_json::from_str(&text).unwrap();
                let digest = answer["context"]["policy_digest"].as_str().unwrap().to_owned();
                seen.push((digest, answer["decision"].as_bool().unwrap()));
                n += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
    }
    let upload_digests = uploader.await.unwrap();
    let mut seen = Vec::new();
    for worker in workers {
        seen.extend(worker.await.unwrap());
    }
    assert!(sent.load(Ordering::Relaxed) >= WORKERS * REQUESTS_PER_WORKER);
    let digest_blocking = upload_digests[0].clone();
    assert_ne!(digest_blocking, digest_plain);
    assert!(upload_digests.iter().all(|d| *d == digest_blocking || *d == digest_plain), "{upload_digests:?}");

    // Every answer is consistent with the bundle it names.
    for (digest, decision) in &seen {
        if *digest == digest_plain {
            assert!(*decision, "the plain pack allows vera");
        } else {
            assert_eq!(*digest, digest_blocking, "an unknown digest was reported");
            assert!(!*decision, "the blocking bundle denies vera");
        }
    }
    assert!(seen.iter().any(|(d, _)| *d == digest_blocking), "no request saw a swapped bundle");
    // The last upload was the plain pack.
    assert_eq!(server.digest().await, digest_plain);
    assert_vera_blocked(&server, false).await;
}
