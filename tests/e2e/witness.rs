//! `warrant witness` (docs/witness.md), end to end: a real `warrant serve`
//! publishes checkpoints, the test submits them to a real witness as a log
//! would (`c2sp.org/tlog-witness`), and the witness cosigns only the views
//! that extend what it cosigned before, remembering it across restarts.
//!
//! The cosignature is checked here from the specs (its key id, timestamp
//! and length), and its Ed25519 signature with Go's checker
//! (`tests/interop/go-note`) when `WARRANT_TEST_GO_NOTE` is set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::credentials::setup_with_args;
use crate::server::{Reply, Server, follow_log, send_raw, warrant_command};

const ORIGIN: &str = "example.com/w-e2e";
const WITNESS: &str = "witness.example/e2e";

/// A running `warrant witness` with its own state file and configuration
/// home (where its key is generated), both kept across restarts.
pub(crate) struct Witness {
    child: Option<Child>,
    base: String,
    client: reqwest::Client,
    logs: Arc<Mutex<String>>,
    args: Vec<String>,
    dir: TempDir,
}

impl Witness {
    /// A witness following the log whose verifier key is `log_key`.
    pub(crate) fn start(log_key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args = vec!["--log".to_owned(), log_key.to_owned(), "--name".to_owned(), WITNESS.to_owned()];
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut witness = Self { child: None, base: String::new(), client, logs: Arc::default(), args, dir };
        witness.spawn();
        witness
    }

    /// Its submission URL.
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// Its cosigner key, as `warrant witness public-key` prints it.
    pub(crate) fn vkey(&self) -> String {
        let out = warrant_command(&self.config_home()).args(["witness", "public-key"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub(crate) fn config_home(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state/witness.db")
    }

    fn spawn(&mut self) {
        let mut child = warrant_command(&self.config_home())
            .args(["witness", "--listen", "127.0.0.1:0", "--log-format", "json", "--state"])
            .arg(self.state())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warrant witness");
        let rx = follow_log(child.stderr.take().unwrap(), Arc::clone(&self.logs));
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => {
                self.base = base;
                self.child = Some(child);
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("warrant witness did not report `listening` ({e}); exit: {status:?}; log:\n{}", self.logs());
            }
        }
    }

    /// SIGTERM, expecting a clean exit, then a start on the same state and key.
    fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the witness did not stop; log:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "witness exited with {status}; log:\n{}", self.logs());
        self.spawn();
    }

    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// `POST /add-checkpoint` with `body`.
    async fn add(&self, body: impl Into<Vec<u8>>) -> Reply {
        let url = format!("{}/add-checkpoint", self.base);
        send_raw(&self.client, Method::POST, &url, Some("text/plain"), body.into()).await.unwrap()
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        send_raw(&self.client, Method::GET, &format!("{}{path}", self.base), None, Vec::new()).await.unwrap()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A verifier key's parts: name, key id, key bytes (type byte first).
fn vkey_parts(vkey: &str) -> (&str, &str, Vec<u8>) {
    let mut parts = vkey.splitn(3, '+');
    let (name, id, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    (name, id, BASE64.decode(key).unwrap())
}

/// The log's newest checkpoint once it has at least `size` records:
/// (its size, the note).
async fn checkpoint_at_least(server: &Server, size: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.get("/log/checkpoint").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let found: u64 = r.text.lines().nth(1).unwrap().parse().unwrap();
        if found >= size {
            return (found, r.text);
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}: {}", r.text);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Decisions, each one record of the log.
async fn decide(server: &Server, n: usize) {
    for _ in 0..n {
        let body = json!({"principal": {"type": "User", "id": "eddie"}, "action": "view_notebook",
                          "resource": {"type": "Project", "id": "p_disabled"}});
        let r = server.post("/v1/authorize", &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

/// The log's consistency proof from `from` to `to`, as base64 lines.
async fn proof_lines(server: &Server, from: u64, to: u64) -> String {
    let r = server.get(&format!("/v1/audit/proofs/consistency?from={from}&to={to}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hashes = r.json["proof"].as_array().unwrap();
    hashes.iter().map(|h| format!("{}\n", BASE64.encode(unhex(h.as_str().unwrap())))).collect()
}

/// An `add-checkpoint` body.
fn body(old: u64, proof: &str, note: &str) -> String {
    format!("old {old}\n{proof}\n{note}")
}

/// Checks a 200 answer: one cosignature line by `vkey`'s key, timestamped
/// now, 76 bytes (key id, time, Ed25519 signature). Returns the line.
fn check_cosignature(reply: &Reply, vkey: &str) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    let line = reply.text.strip_suffix('\n').expect("a line");
    assert!(!line.contains('\n'), "one line: {line}");
    let (name, signature) = line.strip_prefix("\u{2014} ").unwrap().split_once(' ').unwrap();
    assert_eq!(name, WITNESS);
    let bytes = BASE64.decode(signature).unwrap();
    assert_eq!(bytes.len(), 76, "{line}");
    let (_, id, _) = vkey_parts(vkey);
    assert_eq!(hex(&bytes[..4]), id);
    let time = u64::from_be_bytes(bytes[4..12].try_into().unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(time.abs_diff(now) < 120, "cosigned at {time}, now {now}");
    line.to_owned()
}

/// Go's checker on `note`: the log's signature and the witness's
/// cosignature verify. Skipped without `WARRANT_TEST_GO_NOTE` (not under CI).
fn go_checks_cosignature(note: &str, log_key: &str, witness_key: &str) {
    let Some(go) = std::env::var_os("WARRANT_TEST_GO_NOTE") else {
        assert!(std::env::var_os("CI").is_none(), "WARRANT_TEST_GO_NOTE is not set: run the suite with tests/run");
        eprintln!("skipping Go's check: WARRANT_TEST_GO_NOTE is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (log, witness, note_file) = (file("log.vkey", log_key), file("w.vkey", witness_key), file("note", note));
    let out =
        Command::new(Path::new(&go)).args([&log, &note_file]).arg("cosigned").arg("1").arg(&witness).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{note}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("cosigned {WITNESS} ")), "{stdout}");
}

#[tokio::test]
async fn witness_cosigns_a_growing_log_refuses_other_views_and_remembers() {
    let server = setup_with_args(&["--log-origin", ORIGIN, "--checkpoint-interval", "50ms"]).await;
    let out = warrant_command(server.config_home()).args(["audit", "public-key"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(log_key.starts_with(&format!("{ORIGIN}+")), "{log_key}");

    let mut witness = Witness::start(&log_key);
    // The key was generated on first start, private, and is what
    // `public-key` prints: type 0x04, its id over the name and key.
    let key_file = witness.config_home().join("warrant/witness.key");
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let out = warrant_command(&witness.config_home()).args(["witness", "public-key"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (name, id, key) = vkey_parts(&vkey);
    assert_eq!((name, key.len(), key[0]), (WITNESS, 33, 0x04), "{vkey}");
    let digest = Sha256::new().chain_update(WITNESS).chain_update(b"\n").chain_update(&key).finalize();
    assert_eq!(id, hex(&digest[..4]));
    assert!(!witness.logs().contains("PRIVATE+KEY"), "the key is never logged");

    // First sight: `old 0`, no proof.
    let (n1, note1) = checkpoint_at_least(&server, 1).await;
    let reply = witness.add(body(0, "", &note1)).await;
    let line = check_cosignature(&reply, &vkey);
    let monitor = format!("/{}/checkpoint", hex(&Sha256::digest(ORIGIN.as_bytes())));
    let r = witness.get(&monitor).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, format!("{note1}{line}\n").as_str()));
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    go_checks_cosignature(&r.text, &log_key, &vkey);

    // The log grows: cosigned with a real consistency proof.
    decide(&server, 3).await;
    let (n2, note2) = checkpoint_at_least(&server, n1 + 3).await;
    let grown = witness.add(body(n1, &proof_lines(&server, n1, n2).await, &note2)).await;
    let line2 = check_cosignature(&grown, &vkey);
    assert_eq!(witness.get(&monitor).await.text, format!("{note2}{line2}\n"));
    // The same checkpoint again is cosigned again.
    check_cosignature(&witness.add(body(n2, "", &note2)).await, &vkey);

    // A stale client learns the size from the 409.
    for old in [0, n1] {
        let stale = witness.add(body(old, "", &note2)).await;
        assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.text);
        assert_eq!(stale.headers["content-type"], "text/x.tlog.size");
        assert_eq!(stale.text, format!("{n2}\n"));
    }

    decide(&server, 3).await;
    let (n3, note3) = checkpoint_at_least(&server, n2 + 3).await;
    let proof = proof_lines(&server, n2, n3).await;
    // A tampered proof: 422.
    let first = proof.lines().next().unwrap();
    let mut hash = BASE64.decode(first).unwrap();
    hash[0] ^= 1;
    let tampered = proof.replacen(first, &BASE64.encode(&hash), 1);
    let r = witness.add(body(n2, &tampered, &note3)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    // The log's signature altered (its key id kept): 403.
    let signature_line = note3.lines().last().unwrap();
    let at = signature_line.len() - 10;
    let altered_char = if &signature_line[at..=at] == "A" { "B" } else { "A" };
    let altered = format!("{}{altered_char}{}", &signature_line[..at], &signature_line[at + 1..]);
    let forged = note3.replacen(signature_line, &altered, 1);
    assert_eq!(witness.add(body(n2, &proof, &forged)).await.status, StatusCode::FORBIDDEN);
    // Another origin: 404. Not a request: 400. Too large: 413.
    let elsewhere = note3.replacen(ORIGIN, "example.com/elsewhere", 1);
    assert_eq!(witness.add(body(n2, &proof, &elsewhere)).await.status, StatusCode::NOT_FOUND);
    let garbage = witness.add("hello, witness").await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST, "{}", garbage.text);
    let huge = witness.add(body(n2, &proof, &"x".repeat(2 << 20))).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", huge.text);
    assert_eq!(huge.headers["connection"], "close");
    // None of them changed what the witness holds.
    assert_eq!(witness.get(&monitor).await.text, format!("{note2}{line2}\n"));
    for warned in ["consistency proof does not verify", "not signed by the log", "unknown log origin"] {
        assert!(
            witness.logs().lines().any(|l| l.contains("\"WARN\"") && l.contains(warned)),
            "no warning for `{warned}`:\n{}",
            witness.logs()
        );
    }
    // The real proof still grows it.
    let line3 = check_cosignature(&witness.add(body(n2, &proof, &note3)).await, &vkey);

    // Restarted on the same state: it remembers the size it cosigned.
    witness.restart();
    let stale = witness.add(body(n2, &proof, &note3)).await;
    assert_eq!((stale.status, stale.text.as_str()), (StatusCode::CONFLICT, format!("{n3}\n").as_str()));
    assert_eq!(witness.get(&monitor).await.text, format!("{note3}{line3}\n"));
    let metrics = witness.get("/metrics").await.text;
    assert!(
        metrics.contains(&format!("warrant_witness_checkpoints_total{{origin=\"{ORIGIN}\",status=\"409\"}} 1")),
        "{metrics}"
    );
    assert_eq!(witness.get("/healthz").await.json, json!({"status": "ok"}));
}

#[tokio::test]
async fn witness_public_key_needs_a_key_and_the_witness_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = warrant_command(dir.path()).args(["witness", "public-key"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no key yet, and none generated");
    assert!(!dir.path().join("warrant/witness.key").exists());
    let out = warrant_command(dir.path()).args(["witness", "--log", "not-a-key"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--log not-a-key`"));
    assert!(!dir.path().join("warrant/witness.key").exists(), "nothing generated for a witness that cannot start");
    let out = warrant_command(dir.path()).arg("witness").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap: `--log` is required");
}
