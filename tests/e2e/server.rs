//! Spawns the real `warrant` binary on a free loopback port with a temporary
//! database and a temporary copy of a policy bundle, and talks to it over HTTP.
//!
//! The port is the one the server reports in its `listening` log line (it
//! binds `127.0.0.1:0`), so parallel tests never race for ports. Standard
//! error is drained into a buffer for the whole life of the process: tests
//! can assert on the log, and a full pipe never blocks the server.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

/// How long a server may take to report that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `warrant` binary: `WARRANT_BIN`, else `<target>/debug/warrant` next to
/// this test executable (`<target>/debug/deps/e2e-<hash>`).
pub fn warrant_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WARRANT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current test executable");
    let debug = exe.parent().and_then(Path::parent).expect("test executable lives in <target>/debug/deps");
    let bin = debug.join("warrant");
    assert!(
        bin.is_file(),
        "no warrant binary at {}: run `cargo build -p warrant-service` first or set WARRANT_BIN",
        bin.display()
    );
    bin
}

/// A `warrant` command isolated from the developer's environment: no
/// inherited `WARRANT_*` settings, and its configuration directory (where
/// `serve` generates its audit key) under `config_home`.
pub fn warrant_command(config_home: &Path) -> Command {
    let mut command = Command::new(warrant_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WARRANT_") {
            command.env_remove(name);
        }
    }
    command.env("XDG_CONFIG_HOME", config_home).env("WARRANT_LOG", "info");
    command
}

/// The policy pack in the repository (`policies/`).
pub fn pack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A fixture bundle under `tests/fixtures/`.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The Cedar entities of one of the pack's policy test files
/// (`policies/tests/<name>.json`).
pub fn pack_entities(name: &str) -> Vec<Value> {
    let path = pack_dir().join("tests").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text).expect("policy test file is JSON");
    file["entities"].as_array().expect("`entities` array").clone()
}

/// The files of a bundle directory, as `PUT /v1/policies` takes them: the
/// schema, every `*.cedar` and `entities.json` (not `tests/`, not docs).
pub fn bundle_files(dir: &Path) -> Map<String, Value> {
    let mut files = Map::new();
    for entry in std::fs::read_dir(dir).expect("read bundle dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 file name").to_owned();
        let wanted = name.ends_with(".cedar") || name.ends_with(".cedarschema") || name == "entities.json";
        if path.is_file() && wanted {
            files.insert(name, Value::String(std::fs::read_to_string(&path).expect("read bundle file")));
        }
    }
    files
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A response: status, headers and the body parsed as JSON (`Value::Null` if
/// the body is not JSON; `text` keeps it).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

/// A running `warrant serve`.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub client: reqwest::Client,
    logs: Arc<Mutex<String>>,
    policies: PathBuf,
    database_url: String,
    /// `XDG_CONFIG_HOME` of the server: its generated audit key lives there
    /// and is kept across restarts.
    config_home: PathBuf,
    // Last: removed when the server is gone.
    _dir: TempDir,
}

impl Server {
    /// A server over a temporary copy of the repository's policy pack.
    pub fn start() -> Self {
        Self::start_with(&pack_dir())
    }

    /// A server over a temporary copy of the bundle in `policies` (tests may
    /// edit the copy: see [`Server::policies_dir`]).
    pub fn start_with(policies: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = dir.path().join("policies");
        copy_dir(policies, &copy);
        let database_url = format!("sqlite://{}", dir.path().join("warrant.db").display());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client");
        let mut server = Self {
            child: None,
            base: String::new(),
            client,
            logs: Arc::new(Mutex::new(String::new())),
            policies: copy,
            database_url,
            config_home: dir.path().join("config"),
            _dir: dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = warrant_command(&self.config_home)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--policies")
            .arg(&self.policies)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warrant serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::clone(&self.logs);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(sender) = &tx
                    && let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "listening"
                    && let Some(addr) = event["addr"].as_str()
                {
                    let _ = sender.send(addr.to_owned());
                    tx = None;
                }
                let mut logs = logs.lock().expect("log buffer");
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                assert!(addr.starts_with("127.0.0.1:"), "unexpected listen address {addr}");
                self.base = format!("http://{addr}");
                self.child = Some(child);
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("warrant serve did not report `listening` ({e}); exit: {status:?}; log:\n{}", self.logs());
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's own copy of its policies directory.
    pub fn policies_dir(&self) -> &Path {
        &self.policies
    }

    /// Everything the server wrote to standard error so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("log buffer").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The exit status, if the process has exited (it stays reaped).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Sends a signal by name (`HUP`, `TERM`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().expect("server running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("warrant did not exit within {timeout:?} of SIGTERM; log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM) and starts it again on the same database
    /// and policies directory. The port changes.
    pub fn restart(&mut self) {
        let status = self.terminate(Duration::from_secs(15));
        assert!(status.success(), "warrant exited with {status} on SIGTERM");
        self.spawn();
    }

    /// Waits until `pred` holds of the log, or panics after `timeout`.
    pub async fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.logs()) {
            assert!(Instant::now() < deadline, "log condition not met within {timeout:?}; log:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a request with a raw body.
    pub async fn raw(&self, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        send_raw(&self.client, method, &self.url(path), content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.client.get(self.url(path)).send().await.expect("send GET")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        reply(self.client.post(self.url(path)).json(body).send().await.expect("send POST")).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        reply(self.client.put(self.url(path)).json(body).send().await.expect("send PUT")).await
    }

    /// `POST /access/v1/evaluation`, expecting 200; the whole answer.
    pub async fn evaluation(&self, body: &Value) -> Value {
        let r = self.post("/access/v1/evaluation", body).await;
        assert_eq!(r.status, StatusCode::OK, "evaluation {body} → {}", r.text);
        r.json
    }

    /// The decision of one AuthZEN evaluation.
    pub async fn decide(&self, body: &Value) -> bool {
        let answer = self.evaluation(body).await;
        answer["decision"].as_bool().unwrap_or_else(|| panic!("no boolean decision in {answer}"))
    }

    /// `POST /access/v1/evaluations`, expecting 200; the whole answer.
    pub async fn evaluations(&self, body: &Value) -> Value {
        let r = self.post("/access/v1/evaluations", body).await;
        assert_eq!(r.status, StatusCode::OK, "evaluations {body} → {}", r.text);
        r.json
    }

    /// Replaces the stored entities, expecting success.
    pub async fn put_entities(&self, docs: &[Value]) {
        let r = self.put("/v1/entities", &Value::Array(docs.to_vec())).await;
        assert_eq!(r.status, StatusCode::OK, "PUT /v1/entities → {}", r.text);
        assert_eq!(r.json["stored"], json!(docs.len()), "stored count: {}", r.text);
    }

    /// The active bundle's digest (`GET /v1/policies`).
    pub async fn digest(&self) -> String {
        let r = self.get("/v1/policies").await;
        assert_eq!(r.status, StatusCode::OK, "GET /v1/policies → {}", r.text);
        r.json["digest"].as_str().expect("digest").to_owned()
    }

    /// Polls the digest until it differs from `old`, or panics after `timeout`.
    pub async fn wait_for_digest_change(&self, old: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let digest = self.digest().await;
            if digest != old {
                return digest;
            }
            assert!(Instant::now() < deadline, "digest still {old} after {timeout:?}; log:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a request with a raw body with `client`; a transport error is returned.
pub async fn send_raw(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Reply, reqwest::Error> {
    let mut request = client.request(method, url);
    if let Some(ct) = content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    Ok(reply(request.body(body).send().await?).await)
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("read body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, json, text }
}

/// An AuthZEN evaluation request.
pub fn eval(subject: (&str, &str), action: &str, resource: (&str, &str)) -> Value {
    json!({
        "subject": {"type": subject.0, "id": subject.1},
        "action": {"name": action},
        "resource": {"type": resource.0, "id": resource.1},
    })
}

/// A reference to an entity inside Cedar entities JSON.
pub fn entity_ref(ty: &str, id: &str) -> Value {
    json!({"__entity": {"type": ty, "id": id}})
}
