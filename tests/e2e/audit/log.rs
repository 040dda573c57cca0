//! The log's C2SP checkpoints (docs/audit.md#checkpoints), checked by Go's
//! reference implementation of signed notes and transparency logs
//! (`tests/interop/go-note`, on Debian's `golang.org/x/mod`), and records'
//! inclusion under them with Go's `tlog.CheckRecord`.
//!
//! Needs `WARRANT_TEST_GO_NOTE` (the built checker; `tests/run` builds it).
//! Under CI a missing checker fails the test: nothing is silently skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{Hash, altered_copy, authorize, cli, leaf_hash, mth, populate, sqlite};
use crate::credentials::setup_with_args;
use crate::server::{Server, warrant_command};

const ORIGIN: &str = "example.com/warrant-e2e";

fn go_note() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("WARRANT_TEST_GO_NOTE") else {
        assert!(std::env::var_os("CI").is_none(), "WARRANT_TEST_GO_NOTE is not set: run the suite with tests/run");
        eprintln!("skipping: WARRANT_TEST_GO_NOTE is not set (tests/run builds tests/interop/go-note)");
        return None;
    };
    Some(PathBuf::from(path))
}

/// The entries of a C2SP entry bundle (each prefixed by its big-endian
/// `u16` length), read independently of warrant's code.
fn bundle_entries(mut bundle: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    while !bundle.is_empty() {
        let len = usize::from(u16::from_be_bytes([*bundle.first()?, *bundle.get(1)?]));
        entries.push(bundle.get(2..2 + len)?);
        bundle = &bundle[2 + len..];
    }
    Some(entries)
}

/// Runs the Go checker: (success, stdout, stderr).
fn check(go: &Path, args: &[&Path], extra: &[String]) -> (bool, String, String) {
    let out = Command::new(go).args(args).args(extra).output().expect("run go-note");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The newest checkpoint once it covers `size` records.
async fn checkpoint_of(server: &Server, size: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.get("/log/checkpoint").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let content_type = r.headers["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        if r.text.lines().nth(1) == Some(&size.to_string()) {
            return r.text;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}: {}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn published(server: &Server) -> usize {
    let out = Command::new("sqlite3")
        .arg(server.database_path())
        .arg("SELECT COUNT(*) FROM audit_log_checkpoints")
        .output()
        .expect("run sqlite3");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test]
async fn checkpoints_verify_with_gos_note_and_records_with_its_tlog() {
    let Some(go) = go_note() else { return };
    let server = setup_with_args(&["--log-origin", ORIGIN, "--checkpoint-interval", "50ms"]).await;
    populate(&server).await;
    // Past 256 records: full level-0 tiles and a level-1 tile. Another
    // process (the CLI minting keys) appends to the same log meanwhile: the
    // tiles follow both writers.
    for i in 0..300 {
        authorize(&server, "eddie", "view_notebook", "p_disabled").await;
        if i % 100 == 50 {
            let out = warrant_command(server.config_home())
                .args(["keys", "create", "--scope", "decide", "--database-url", server.database_url()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let records = server.audit_events("").await;
    let n = records.len();
    assert!(n > 300, "{n}");
    let note = checkpoint_of(&server, n).await;

    // The verifier key, as an auditor gets it.
    let out = warrant_command(server.config_home()).args(["audit", "public-key"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(vkey.starts_with(&format!("{ORIGIN}+")), "{vkey}");
    let dir = tempfile::tempdir().unwrap();
    let (vkey_file, note_file) = (dir.path().join("log.vkey"), dir.path().join("checkpoint"));
    std::fs::write(&vkey_file, &vkey).unwrap();
    std::fs::write(&note_file, &note).unwrap();

    // Go verifies the note, and its root is the tree over the records'
    // entries computed here, independently.
    let (ok, stdout, stderr) = check(&go, &[&vkey_file, &note_file], &[]);
    assert!(ok, "{stderr}\n{note}");
    let leaves: Vec<Hash> = records.iter().map(|r| leaf_hash(&serde_json_canonicalizer::to_vec(r).unwrap())).collect();
    let root = base64(&mth(&leaves));
    assert_eq!(stdout.trim(), format!("{ORIGIN} {n} {root}"));

    // Records' inclusion, checked by Go's tlog from the entry itself.
    for seq in [1, 2, n / 2, n - 1, n] {
        let p = server.get(&format!("/v1/audit/proofs/inclusion?seq={seq}&tree_size={n}")).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.text);
        let proof: Vec<String> =
            p.json["proof"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_owned()).collect();
        let entry = dir.path().join(format!("entry-{seq}"));
        std::fs::write(&entry, serde_json_canonicalizer::to_vec(&records[seq - 1]).unwrap()).unwrap();
        let mut extra = vec![(seq - 1).to_string()];
        extra.extend(proof.iter().cloned());
        let (ok, stdout, stderr) = check(&go, &[&vkey_file, &note_file, &entry], &extra);
        assert!(ok && stdout.ends_with("included\n"), "seq {seq}: {stderr}");
        // Another record's entry under this proof is refused.
        let other = dir.path().join("other");
        std::fs::write(&other, serde_json_canonicalizer::to_vec(&records[seq % n]).unwrap()).unwrap();
        let (ok, _, stderr) = check(&go, &[&vkey_file, &note_file, &other], &extra);
        assert!(!ok && stderr.contains("inclusion"), "seq {seq}: {stderr}");
    }

    // Go builds the same proofs itself from the log's hash tiles, each tile
    // authenticated against the signed root.
    let base = server.url("/log/");
    for seq in [1, 256, 257, n - 1, n] {
        let entry = dir.path().join(format!("tiled-{seq}"));
        std::fs::write(&entry, serde_json_canonicalizer::to_vec(&records[seq - 1]).unwrap()).unwrap();
        let extra = ["tiles".to_owned(), base.clone(), entry.display().to_string(), (seq - 1).to_string()];
        let (ok, stdout, stderr) = check(&go, &[&vkey_file, &note_file], &extra);
        assert!(ok && stdout.ends_with("included via tiles\n"), "seq {seq}: {stderr}");
    }
    let full = server.client.get(server.url("/log/tile/0/000")).send().await.unwrap();
    assert_eq!(full.headers()["cache-control"], "public, max-age=31536000, immutable");
    let bytes = full.bytes().await.unwrap();
    let leaves: Vec<Hash> =
        records[..256].iter().map(|r| leaf_hash(&serde_json_canonicalizer::to_vec(r).unwrap())).collect();
    assert_eq!(bytes.as_ref(), leaves.concat().as_slice(), "tile 0/000 is the first 256 leaves");
    // Entry bundles are the records, each hashing to its leaf in the hash
    // tile, and only for a key with `audit:read`.
    let bundle = server.client.get(server.url("/log/tile/entries/000")).send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    let bundle = bundle.bytes().await.unwrap();
    let entries = bundle_entries(&bundle).expect("a well-formed bundle");
    assert_eq!(entries.len(), 256);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(leaf_hash(entry), leaves[i], "entry {i} of bundle 000");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(entry).unwrap(), records[i]);
    }
    let width = n - 256;
    let partial = server.client.get(server.url(&format!("/log/tile/entries/001.p/{width}"))).send().await.unwrap();
    let partial = bundle_entries(&partial.bytes().await.unwrap()).unwrap().len();
    assert_eq!(partial, width);
    assert_eq!(server.get(&format!("/log/tile/entries/001.p/{}", width + 1)).await.status, StatusCode::NOT_FOUND);
    let anonymous = reqwest::Client::new().get(server.url("/log/tile/entries/000")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "records need a key");
    let public = reqwest::Client::new().get(server.url("/log/tile/0/000")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::OK, "hash tiles do not");
    assert_eq!(server.get(&format!("/log/tile/0/001.p/{}", n - 256 + 1)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.get("/log/tile/0/1").await.status, StatusCode::NOT_FOUND, "not a C2SP path");

    // A checkpoint changed after signing, or checked with another key, fails.
    let forged = dir.path().join("forged");
    let bumped = note.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n + 1), 1);
    std::fs::write(&forged, &bumped).unwrap();
    let (ok, _, stderr) = check(&go, &[&vkey_file, &forged], &[]);
    assert!(!ok && stderr.contains("checkpoint"), "{stderr}");
    let stranger = setup_with_args(&["--log-origin", ORIGIN]).await;
    let out = warrant_command(stranger.config_home()).args(["audit", "public-key"]).output().unwrap();
    let other_key = dir.path().join("other.vkey");
    std::fs::write(&other_key, &out.stdout).unwrap();
    let (ok, _, stderr) = check(&go, &[&other_key, &note_file], &[]);
    assert!(!ok, "another log's key: {stderr}");

    // Checkpoints are published as records arrive; reading never writes one.
    let before = published(&server);
    assert!(before >= 2, "one at start, more as records arrived: {before}");
    for _ in 0..5 {
        assert_eq!(server.get("/log/checkpoint").await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(published(&server), before, "reads published nothing");
    authorize(&server, "eddie", "view_notebook", "p_disabled").await;
    checkpoint_of(&server, n + 1).await;
    assert_eq!(published(&server), before + 1);
    // The table refuses rewriting a published checkpoint.
    assert!(sqlite(&server.database_path(), "DELETE FROM audit_log_checkpoints").is_err());
}

/// An auditor who kept a signed checkpoint (and the log's public key)
/// catches records cut off with every checkpoint table emptied, where the
/// chain alone cannot; a rewritten published checkpoint fails too; and a
/// note that is not this log's is refused as the auditor's mistake.
#[tokio::test]
async fn a_kept_signed_checkpoint_catches_a_cut_tail() {
    let mut server = setup_with_args(&["--log-origin", ORIGIN, "--checkpoint-interval", "50ms"]).await;
    populate(&server).await;
    let n = server.audit_events("").await.len();
    let note = checkpoint_of(&server, n).await;
    let out = warrant_command(server.config_home()).args(["audit", "public-key"]).output().unwrap();
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept.note");
    std::fs::write(&kept, &note).unwrap();
    let kept = kept.to_str().unwrap();
    let signed = ["verify", "--signed-checkpoint", kept, "--log-key", vkey.as_str()];

    let (code, out) = cli(&server, &server.database_path(), &signed);
    assert_eq!(code, 0, "{out}");
    let published = published(&server);
    assert!(out.contains(&format!("{} checkpoint(s) hold", published + 1)), "kept and published: {out}");

    let k = n - 3;
    let cut = format!(
        "DROP TRIGGER audit_records_no_delete; DELETE FROM audit_records WHERE seq > {k}; \
         DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_checkpoints; \
         DROP TRIGGER audit_log_checkpoints_no_delete; DELETE FROM audit_log_checkpoints; \
         DROP TRIGGER audit_tiles_no_delete; DELETE FROM audit_tiles;"
    );
    let db = altered_copy(&server, dir.path(), "cut", &cut);
    let (code, out) = cli(&server, &db, &["verify"]);
    assert_eq!(code, 0, "a chain cannot show a cut by itself: {out}");
    let (code, out) = cli(&server, &db, &signed);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED at seq {}: signed checkpoint of {ORIGIN}", k + 1)), "{out}");
    assert!(out.contains("records were cut off"), "{out}");

    // A published checkpoint rewritten (a bigger size, same signature).
    let bumped = note.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n + 1), 1).replace('\'', "''");
    let rewrite = format!(
        "DROP TRIGGER audit_log_checkpoints_no_update; UPDATE audit_log_checkpoints SET note = '{bumped}' WHERE tree_size = {n};"
    );
    let db = altered_copy(&server, dir.path(), "rewritten", &rewrite);
    let (code, out) = cli(&server, &db, &["verify", "--log-key", vkey.as_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED: the published checkpoint of size {n}")), "{out}");

    // Another log's note is not evidence about this one: exit 2, named.
    let stranger = setup_with_args(&["--log-origin", "example.com/another-log"]).await;
    let other = dir.path().join("other.note");
    std::fs::write(&other, stranger.get("/log/checkpoint").await.text).unwrap();
    let out = warrant_command(server.config_home())
        .args(["audit", "verify", "--signed-checkpoint", other.to_str().unwrap(), "--log-key", vkey.as_str()])
        .arg("--database-url")
        .arg(format!("sqlite://{}", server.database_path().display()))
        .arg("--audit-key-file")
        .arg(server.audit_key_file())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("signed checkpoint") && stderr.contains("no signature by a known key"), "{stderr}");
}

/// `audit prove` writes a proof file that `audit verify-proof` checks on a
/// machine with no database and no audit key (an empty configuration home
/// and working directory), printing the record; a file whose record was
/// swapped, or checked with another log's key, fails.
#[tokio::test]
async fn a_proof_file_verifies_with_no_database_and_no_secret() {
    let mut server = setup_with_args(&["--log-origin", ORIGIN, "--checkpoint-interval", "50ms"]).await;
    populate(&server).await;
    let records = server.audit_events("").await;
    let n = records.len();
    checkpoint_of(&server, n).await;
    let out = warrant_command(server.config_home()).args(["audit", "public-key"]).output().unwrap();
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let offline = tempfile::tempdir().unwrap();
    let verify_proof = |file: &Path, key: &str| {
        // Nothing of the server's: an empty home, run from an empty directory.
        warrant_command(&offline.path().join("config"))
            .current_dir(offline.path())
            .env("HOME", offline.path())
            .args(["audit", "verify-proof"])
            .arg(file)
            .args(["--log-key", key])
            .output()
            .unwrap()
    };
    for seq in [1, n / 2, n] {
        let file = dir.path().join(format!("proof-{seq}"));
        let out = warrant_command(server.config_home())
            .args(["audit", "prove", "--seq", &seq.to_string(), "--out"])
            .arg(&file)
            .arg("--database-url")
            .arg(format!("sqlite://{}", server.database_path().display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
        let out = verify_proof(&file, &vkey);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let mut lines = stdout.lines();
        assert_eq!(lines.next().unwrap(), format!("ok: record seq {seq} is in {ORIGIN} at tree size {n}"));
        let shown: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(shown, records[seq - 1], "the record it proves");
        // Another record in its place fails.
        let other = serde_json_canonicalizer::to_vec(&records[seq % n]).unwrap();
        let swapped =
            text.replacen(text.lines().nth(1).unwrap(), &format!("extra {}", crate::webhooks::base64(&other)), 1);
        let forged = dir.path().join(format!("forged-{seq}"));
        std::fs::write(&forged, swapped).unwrap();
        let out = verify_proof(&forged, &vkey);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("not in the log"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(!offline.path().join("config/warrant").exists(), "verifying created no key");
    let stranger = setup_with_args(&["--log-origin", ORIGIN]).await;
    let out = warrant_command(stranger.config_home()).args(["audit", "public-key"]).output().unwrap();
    let other_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = verify_proof(&dir.path().join("proof-1"), &other_key);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

/// `/log/*` is public by default; `--log-read-scope` puts it behind a key
/// with that scope, like the rest of the auditor's API.
#[tokio::test]
async fn log_reads_are_public_unless_a_scope_is_required() {
    let open = setup_with_args::<&str>(&[]).await;
    let anonymous = reqwest::Client::new();
    for path in ["/log/checkpoint", "/log/tile/0/000.p/1"] {
        let r = anonymous.get(open.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let closed = setup_with_args(&["--log-read-scope", "audit:read"]).await;
    let decide_only = crate::openapi::mint(&closed, &["decide"]);
    let auditor = crate::openapi::mint(&closed, &["audit:read"]);
    for path in ["/log/checkpoint", "/log/tile/0/000.p/1"] {
        let url = closed.url(path);
        assert_eq!(anonymous.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = anonymous.get(&url).bearer_auth(&decide_only).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let r = anonymous.get(&url).bearer_auth(&auditor).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

/// A different `--log-origin` than the key's is refused at start, naming both.
#[test]
fn the_log_origin_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let serve = |origin: &str| {
        let mut command = warrant_command(&config);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "text", "--log-origin", origin])
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.path().join("w.db").display()))
            .arg("--policies")
            .arg(crate::server::pack_dir());
        command
    };
    let mut first = serve("example.com/first").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !config.join("warrant/log.key").exists() {
        assert!(Instant::now() < deadline, "no log key generated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = first.kill();
    let _ = first.wait();
    let out = serve("example.com/second").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("example.com/second") && stderr.contains("example.com/first"), "{stderr}");
}

/// Standard base64 with padding (the checkpoint's root encoding).
fn base64(bytes: &[u8]) -> String {
    crate::webhooks::base64(bytes)
}
