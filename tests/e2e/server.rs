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

/// Copies a child's JSON log (its stderr) line by line into `logs`, and
/// sends its base URL (`http://…` or `https://…`) once it reports
/// `listening`: how the tests learn where `serve` and `witness` listen.
pub fn follow_log(stderr: std::process::ChildStderr, logs: Arc<Mutex<String>>) -> mpsc::Receiver<String> {
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
                let scheme = if event["tls"] == true { "https" } else { "http" };
                let _ = sender.send(format!("{scheme}://{addr}"));
                tx = None;
            }
            let mut logs = logs.lock().expect("log buffer");
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    rx
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

/// Copies a SQLite database file with its `-wal` and `-shm` companions
/// (those that exist) to `to` (and `to-wal`, `to-shm`).
pub fn copy_database(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", from.display()));
        if companion.is_file() {
            std::fs::copy(&companion, format!("{}{suffix}", to.display())).expect("copy database companion");
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
    /// Sends `Authorization: Bearer <api_key>` on every request.
    pub client: reqwest::Client,
    /// A key with every scope, minted with `warrant keys create` before the
    /// server starts.
    pub api_key: String,
    logs: Arc<Mutex<String>>,
    policies: PathBuf,
    database_url: String,
    /// `XDG_CONFIG_HOME` of the server: its generated audit key lives there
    /// and is kept across restarts.
    config_home: PathBuf,
    /// More `serve` flags, kept across restarts.
    pub extra_args: Vec<std::ffi::OsString>,
    /// The CA the server's TLS certificate comes from, when it serves HTTPS.
    tls_root: Option<reqwest::Certificate>,
    // Last: removed when the server is gone.
    _dir: TempDir,
}

/// A client that sends `key` as a bearer token on every request.
pub fn authorized_client(key: &str, builder: reqwest::ClientBuilder) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).expect("header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    builder.timeout(Duration::from_secs(60)).default_headers(headers).build().expect("http client")
}

impl Server {
    /// A server over a temporary copy of the repository's policy pack.
    pub fn start() -> Self {
        Self::start_with(&pack_dir())
    }

    /// A server over a temporary copy of the bundle in `policies` (tests may
    /// edit the copy: see [`Server::policies_dir`]).
    pub fn start_with(policies: &Path) -> Self {
        let mut server = Self::unstarted(policies);
        server.spawn();
        server
    }

    /// A second look at `source`'s log: a server over a copy of its policies
    /// and its configuration home (the audit key), whose database starts as
    /// a copy of the SQLite file `db` (with its `-wal` and `-shm` files, if
    /// any) — typically an altered copy of `source`'s. It uses `source`'s API
    /// key (stored in the copy), so starting it adds no record to the log.
    pub fn start_from(source: &Self, db: &Path) -> Self {
        let mut server = Self::unstarted(&source.policies);
        copy_database(db, &server.database_path());
        copy_dir(&source.config_home, &server.config_home);
        server.api_key.clone_from(&source.api_key);
        server.client = authorized_client(&server.api_key, reqwest::Client::builder());
        server.extra_args.clone_from(&source.extra_args);
        server.spawn();
        server
    }

    /// A server over a copy of the bundle in `policies` serving HTTPS with a
    /// certificate for loopback from `ca`, with more `serve` flags; its
    /// clients trust `ca` alone. The certificate and key are `cert.pem` and
    /// `key.pem` in [`Server::files_dir`].
    pub fn start_tls<S: AsRef<std::ffi::OsStr>>(policies: &Path, ca: &crate::tls::TestCa, args: &[S]) -> Self {
        let mut server = Self::unstarted(policies);
        let (cert, key) = ca.leaf("warrant under test").write(server._dir.path());
        server.extra_args = vec!["--tls-cert".into(), cert.into(), "--tls-key".into(), key.into()];
        server.extra_args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        server.tls_root = Some(ca.reqwest_root());
        server.spawn();
        server
    }

    /// The server's own directory (its database and TLS files live there).
    pub fn files_dir(&self) -> &Path {
        self._dir.path()
    }

    /// A server over the repository's policy pack with more `serve` flags.
    pub fn start_with_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Self {
        Self::start_with_args_in(&pack_dir(), args)
    }

    /// A server over a copy of the bundle in `policies`, with more `serve` flags.
    pub fn start_with_args_in<S: AsRef<std::ffi::OsStr>>(policies: &Path, args: &[S]) -> Self {
        let mut server = Self::unstarted(policies);
        server.extra_args = args.iter().map(|a| a.as_ref().to_owned()).collect();
        server.spawn();
        server
    }

    /// A server over the policy pack on the database at `database_url`
    /// (e.g. a PostgreSQL database shared with other servers), with its
    /// configuration home (the audit key) copied from `config_home` when given,
    /// so several servers sign with one key.
    pub fn start_on(database_url: &str, config_home: Option<&Path>) -> Self {
        Self::start_on_with_args(database_url, config_home, &[] as &[&str])
    }

    /// [`Server::start_on`] with more `serve` flags.
    pub fn start_on_with_args<S: AsRef<std::ffi::OsStr>>(
        database_url: &str,
        config_home: Option<&Path>,
        args: &[S],
    ) -> Self {
        let mut server = Self::unstarted(&pack_dir());
        server.database_url = database_url.to_owned();
        if let Some(home) = config_home {
            copy_dir(home, &server.config_home);
        }
        server.add_args(args);
        server.spawn();
        server
    }

    /// Everything [`Server::start_with`] sets up, without the process.
    fn unstarted(policies: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = dir.path().join("policies");
        copy_dir(policies, &copy);
        let database_url = format!("sqlite://{}", dir.path().join("warrant.db").display());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client");
        Self {
            child: None,
            base: String::new(),
            client,
            api_key: String::new(),
            logs: Arc::new(Mutex::new(String::new())),
            policies: copy,
            database_url,
            config_home: dir.path().join("config"),
            extra_args: Vec::new(),
            tls_root: None,
            _dir: dir,
        }
    }

    /// Mints an all-scope key in this server's database (once) and makes the
    /// client send it.
    fn ensure_api_key(&mut self) {
        if !self.api_key.is_empty() {
            return;
        }
        let out = warrant_command(&self.config_home)
            .args(["keys", "create", "--database-url", &self.database_url, "--description", "e2e"])
            .args(["--scope", "decide", "--scope", "events:write", "--scope", "audit:read", "--scope", "policy:admin"])
            .args(["--scope", "credentials:reveal"])
            .output()
            .expect("run warrant keys create");
        assert!(out.status.success(), "warrant keys create failed: {}", String::from_utf8_lossy(&out.stderr));
        self.api_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        self.client = authorized_client(&self.api_key, self.client_builder());
    }

    /// A client builder that trusts this server's certificate, if it has one.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        match &self.tls_root {
            Some(root) => builder.tls_certs_only([root.clone()]),
            None => builder,
        }
    }

    fn spawn(&mut self) {
        self.ensure_api_key();
        let mut child = warrant_command(&self.config_home)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--policies")
            .arg(&self.policies)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warrant serve");
        let rx = follow_log(child.stderr.take().expect("piped stderr"), Arc::clone(&self.logs));
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(base) => {
                assert!(base.contains("://127.0.0.1:"), "unexpected listen address {base}");
                self.base = base;
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

    /// `sqlite://…` of the server's database.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The server's SQLite file (its `-wal` and `-shm` files sit beside it).
    pub fn database_path(&self) -> PathBuf {
        PathBuf::from(self.database_url.trim_start_matches("sqlite://"))
    }

    /// The server's `XDG_CONFIG_HOME`.
    pub fn config_home(&self) -> &Path {
        &self.config_home
    }

    /// The audit key the server generated on its first start.
    pub fn audit_key_file(&self) -> PathBuf {
        self.config_home.join("warrant").join("audit.key")
    }

    /// SIGTERM, expecting a clean exit; the server stays down (its files
    /// stay) until [`Server::start_again`].
    pub fn stop(&mut self) {
        let status = self.terminate(Duration::from_secs(15));
        assert!(status.success(), "warrant exited with {status} on SIGTERM; log:\n{}", self.logs());
    }

    /// SIGKILL (`kill -9`): no shutdown of any kind. The server stays down
    /// until [`Server::start_again`].
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().expect("SIGKILL the server");
        let status = child.wait().expect("reap the server");
        assert!(!status.success(), "a killed server cannot exit cleanly: {status}");
    }

    /// Appends `serve` flags for the next start ([`Server::start_again`]).
    pub fn add_args<S: AsRef<std::ffi::OsStr>>(&mut self, args: &[S]) {
        self.extra_args.extend(args.iter().map(|a| a.as_ref().to_owned()));
    }

    /// A server over the policy pack on a new database, with `source`'s
    /// configuration home (its audit and log keys) and flags plus `args`:
    /// the same keys writing another history.
    pub fn start_with_keys_of<S: AsRef<std::ffi::OsStr>>(source: &Self, args: &[S]) -> Self {
        let mut server = Self::unstarted(&source.policies);
        copy_dir(&source.config_home, &server.config_home);
        server.extra_args.clone_from(&source.extra_args);
        server.add_args(args);
        server.spawn();
        server
    }

    /// Starts a stopped or killed server again on the same database,
    /// policies and key. The port changes.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn();
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

    pub async fn delete(&self, path: &str) -> Reply {
        reply(self.client.delete(self.url(path)).send().await.expect("send DELETE")).await
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

    /// Every audit record matching `query` (`GET /v1/audit/events`'s query
    /// string, without `cursor`), following `next_cursor` to the end.
    pub async fn audit_events(&self, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<u64> = None;
        loop {
            let mut path = format!("/v1/audit/events?limit=1000&{query}");
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = self.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "GET {path} → {}", r.text);
            all.extend(r.json["events"].as_array().expect("`events` array").iter().cloned());
            match r.json["next_cursor"].as_u64() {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
    }

    /// The service's keyed digest of `value` (`POST /v1/audit/digest`).
    pub async fn audit_digest(&self, value: &str) -> String {
        let r = self.post("/v1/audit/digest", &json!({"value": value})).await;
        assert_eq!(r.status, StatusCode::OK, "digest → {}", r.text);
        let digest = r.json["digest"].as_str().expect("digest").to_owned();
        assert!(digest.starts_with("hmac-sha256:"), "{digest}");
        digest
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
