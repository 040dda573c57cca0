//! `warrant policies pull DIR` and `warrant policies push DIR`: a running
//! service's active bundle into a directory and back, over
//! `GET /v1/policies?content=true` and `PUT /v1/policies`.
//!
//! Exit codes: 0 done; 1 the service refused the bundle (its diagnostics
//! printed as `warrant check` prints them, `DIR/file:line:col: error:
//! message`); 2 the command could not do its
//! work: no key, the service unreachable, the key refused, DIR not usable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use warrant_engine::{BundleError, BundleSource};

use crate::config::{PoliciesCommand, ServiceArgs};
use crate::error_chain::error_chain;

/// How long to wait for a connection: an address nobody answers at fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take: bundles go up to 64 MiB, and an
/// upload compiles its rule components before it is answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The environment variable holding the API key when no file is given.
const KEY_VARIABLE: &str = "WARRANT_API_KEY";

/// Why `warrant policies …` could not do its work (exit 2). A bundle the
/// service refuses is an answer (exit 1), not an error.
#[derive(Debug, thiserror::Error)]
pub enum PoliciesCommandError {
    #[error(
        "no API key: set `{KEY_VARIABLE}` or give `--api-key-file` (a key with the `policy:admin` scope; \
         `warrant keys create --scope policy:admin` mints one)"
    )]
    NoKey,
    #[error("cannot read the API key file `{}`: {error}", path.display())]
    KeyFile { path: PathBuf, error: std::io::Error },
    #[error("the API key {origin} is empty or not a printable ASCII string")]
    BadKey { origin: &'static str },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("`--url {0}` cannot be a base URL")]
    BadUrl(String),
    #[error("cannot reach the service at `{url}`: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("not authorized: `{url}` refused the API key (401: unknown, expired or revoked)")]
    Unauthorized { url: String },
    #[error("not authorized: the API key lacks the `policy:admin` scope (403 from `{url}`)")]
    Forbidden { url: String },
    #[error("`{url}` answered {status}: {message}")]
    Service { url: String, status: u16, message: String },
    #[error("`{}` is not empty: pull into a new or empty directory, or give `--force` to replace its bundle files", .0.display())]
    NotEmpty(PathBuf),
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("the service sent a file that would land outside `{}`: `{path}` ({why})", dir.display())]
    UnsafePath { dir: PathBuf, path: String, why: &'static str },
    #[error("the service sent `{path}` encoded as `{encoding}`, which this command does not know")]
    UnknownEncoding { path: String, encoding: String },
    #[error("the service sent `{path}` with invalid base64: {error}")]
    BadBase64 { path: String, error: base64::DecodeError },
    #[error("the service sent `{0}` without its content")]
    NoContent(String),
    #[error("cannot write `{}`: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("cannot read the bundle in `{}`: {error}", dir.display())]
    Read { dir: PathBuf, error: BundleError },
}

pub fn run(command: PoliciesCommand) -> Result<ExitCode, PoliciesCommandError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(PoliciesCommandError::Runtime)?;
    match command {
        PoliciesCommand::Pull { service, dir, force } => runtime.block_on(pull(&service, &dir, force)),
        PoliciesCommand::Push { service, dir } => runtime.block_on(push(&service, &dir)),
    }
}

/// `GET /v1/policies?content=true`, as much of it as a pull needs.
#[derive(Debug, Deserialize)]
struct Shown {
    digest: String,
    files: Vec<ShownFile>,
}

#[derive(Debug, Deserialize)]
struct ShownFile {
    path: String,
    content: Option<String>,
    encoding: Option<String>,
}

/// The answer of an accepted `PUT /v1/policies`.
#[derive(Debug, Deserialize)]
struct Activated {
    digest: String,
    previous_digest: String,
    changed: bool,
    /// The new bundle's warnings, when the service reports any.
    #[serde(default)]
    diagnostics: Vec<Located>,
}

/// An error body (`{"error": {…}}`).
#[derive(Debug, Deserialize)]
struct Refusal {
    error: RefusalDetail,
}

#[derive(Debug, Deserialize)]
struct RefusalDetail {
    message: String,
    #[serde(default)]
    diagnostics: Vec<Located>,
}

/// A diagnostic as the service sends it.
#[derive(Debug, Deserialize)]
struct Located {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
    /// `warning` or `error`; absent: as the answer implies.
    severity: Option<String>,
}

impl Located {
    /// As `warrant check` prints a diagnostic, so editors and terminals
    /// make it clickable: `DIR/file:line:col: SEVERITY: message`.
    fn line(&self, dir: &Path, implied: &str) -> String {
        let at = match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.file),
            _ => self.file.clone(),
        };
        let severity = self.severity.as_deref().unwrap_or(implied);
        format!("{}/{at}: {severity}: {}", dir.display(), self.message)
    }
}

async fn pull(service: &ServiceArgs, dir: &Path, force: bool) -> Result<ExitCode, PoliciesCommandError> {
    // Refuse before asking anything of the service.
    if dir.exists() {
        if !dir.is_dir() {
            return Err(PoliciesCommandError::NotADirectory(dir.to_owned()));
        }
        let empty = std::fs::read_dir(dir)
            .map_err(|error| PoliciesCommandError::Write { path: dir.to_owned(), error })?
            .next()
            .is_none();
        if !empty && !force {
            return Err(PoliciesCommandError::NotEmpty(dir.to_owned()));
        }
    }
    let client = Client::new(service)?;
    let (status, body) = client.send(reqwest::Method::GET, "v1/policies?content=true", None).await?;
    if status != StatusCode::OK {
        return Err(client.failure(status, &body));
    }
    let shown: Shown = serde_json::from_slice(&body).map_err(|e| client.unexpected(status, &e.to_string()))?;

    let mut files = Vec::with_capacity(shown.files.len());
    for file in shown.files {
        let target = safe_target(dir, &file.path)?;
        let content = file.content.ok_or_else(|| PoliciesCommandError::NoContent(file.path.clone()))?;
        let bytes = match file.encoding.as_deref() {
            None => content.into_bytes(),
            Some("base64") => BASE64
                .decode(content.trim())
                .map_err(|error| PoliciesCommandError::BadBase64 { path: file.path.clone(), error })?,
            Some(other) => {
                return Err(PoliciesCommandError::UnknownEncoding { path: file.path, encoding: other.to_owned() });
            }
        };
        files.push((file.path, target, bytes));
    }

    if dir.is_dir() {
        // `--force`: what `check` would load from DIR that the bundle lacks
        // goes, so DIR then loads as the active bundle.
        let wanted: BTreeSet<&str> = files.iter().map(|(path, _, _)| path.as_str()).collect();
        let present =
            BundleSource::read_dir(dir).map_err(|error| PoliciesCommandError::Read { dir: dir.to_owned(), error })?;
        let stale: Vec<String> = present
            .files()
            .map(|(p, _)| p)
            .chain(present.binaries().map(|(p, _)| p))
            .filter(|p| !wanted.contains(p))
            .map(str::to_owned)
            .collect();
        for path in stale {
            let target = safe_target(dir, &path)?;
            std::fs::remove_file(&target).map_err(|error| PoliciesCommandError::Write { path: target, error })?;
            eprintln!("removed {path} (not in the active bundle)");
        }
    }
    for (_, target, bytes) in &files {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| PoliciesCommandError::Write { path: parent.to_owned(), error })?;
        }
        std::fs::write(target, bytes).map_err(|error| PoliciesCommandError::Write { path: target.clone(), error })?;
    }

    // What was written must be the bundle the service serves.
    let written =
        BundleSource::read_dir(dir).map_err(|error| PoliciesCommandError::Read { dir: dir.to_owned(), error })?;
    if written.digest() != shown.digest {
        eprintln!(
            "error: `{}` now loads as {}, not as the active bundle {}: it holds other bundle files",
            dir.display(),
            written.digest(),
            shown.digest
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("ok: pulled {} files into `{}`, digest {}", files.len(), dir.display(), shown.digest);
    Ok(ExitCode::SUCCESS)
}

async fn push(service: &ServiceArgs, dir: &Path) -> Result<ExitCode, PoliciesCommandError> {
    // The key first: a missing one says so before anything else is read.
    let client = Client::new(service)?;
    if !dir.is_dir() {
        return Err(PoliciesCommandError::NotADirectory(dir.to_owned()));
    }
    let source =
        BundleSource::read_dir(dir).map_err(|error| PoliciesCommandError::Read { dir: dir.to_owned(), error })?;
    // A small authorized request first: a refused key is then told apart
    // from an unreachable service (a service refusing a key closes the
    // connection, which a large upload can meet as a broken pipe).
    let (status, answer) = client.send(reqwest::Method::GET, "v1/policies", None).await?;
    if status != StatusCode::OK {
        return Err(client.failure(status, &answer));
    }
    let body = serde_json::json!({ "files": source.to_files() });
    let (status, answer) = client.send(reqwest::Method::PUT, "v1/policies", Some(&body)).await?;
    match status {
        StatusCode::OK => {
            let activated: Activated =
                serde_json::from_slice(&answer).map_err(|e| client.unexpected(status, &e.to_string()))?;
            for d in &activated.diagnostics {
                eprintln!("{}", d.line(dir, "warning"));
            }
            if activated.changed {
                println!(
                    "ok: pushed `{}`, digest {} (was {})",
                    dir.display(),
                    activated.digest,
                    activated.previous_digest
                );
            } else {
                println!("ok: unchanged, digest {}", activated.digest);
            }
            Ok(ExitCode::SUCCESS)
        }
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => {
            let refusal: Refusal =
                serde_json::from_slice(&answer).map_err(|e| client.unexpected(status, &e.to_string()))?;
            let diagnostics = refusal.error.diagnostics;
            for d in &diagnostics {
                eprintln!("{}", d.line(dir, "error"));
            }
            if diagnostics.is_empty() {
                eprintln!("error: the service refused the bundle: {}", refusal.error.message);
            } else {
                eprintln!(
                    "error: the service refused the bundle: {} problem(s); the active one stays",
                    diagnostics.len()
                );
            }
            Ok(ExitCode::FAILURE)
        }
        _ => Err(client.failure(status, &answer)),
    }
}

/// Where `path`, a bundle-relative path the service sent, goes under `dir`;
/// refused if it could land anywhere else.
fn safe_target(dir: &Path, path: &str) -> Result<PathBuf, PoliciesCommandError> {
    let unsafe_path = |why| PoliciesCommandError::UnsafePath { dir: dir.to_owned(), path: path.to_owned(), why };
    if path.is_empty() || path.starts_with('/') || path.contains('\\') || path.contains(':') || path.contains('\0') {
        return Err(unsafe_path("not a relative, `/`-separated path"));
    }
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(unsafe_path("empty, `.` or `..` parts"));
    }
    let mut target = dir.to_owned();
    for part in path.split('/') {
        target.push(part);
        // A symbolic link on the way could point anywhere.
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(unsafe_path("a symbolic link on its way"));
        }
    }
    Ok(target)
}

/// An HTTP client for one service, sending one API key.
struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    authorization: HeaderValue,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Client").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

impl Client {
    fn new(service: &ServiceArgs) -> Result<Self, PoliciesCommandError> {
        let (key, origin) = match &service.api_key_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| PoliciesCommandError::KeyFile { path: path.clone(), error })?;
                (text, "from `--api-key-file`")
            }
            None => match std::env::var(KEY_VARIABLE) {
                Ok(key) if !key.trim().is_empty() => (key, "from `WARRANT_API_KEY`"),
                _ => return Err(PoliciesCommandError::NoKey),
            },
        };
        let key = key.trim();
        let bad_key = PoliciesCommandError::BadKey { origin };
        if key.is_empty() {
            return Err(bad_key);
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| bad_key)?;
        authorization.set_sensitive(true);

        let mut base = service.url.clone();
        if base.cannot_be_a_base() {
            return Err(PoliciesCommandError::BadUrl(base.to_string()));
        }
        // `https://host/warrant` is a prefix: `v1/policies` goes after it.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        crate::tls::provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect could carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PoliciesCommandError::Client(e.to_string()))?;
        Ok(Self { http, base, authorization })
    }

    /// Sends a request; the status and body, or why there was no answer.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), PoliciesCommandError> {
        let url = self.base.join(path).map_err(|_| PoliciesCommandError::BadUrl(self.base.to_string()))?;
        let mut request = self.http.request(method, url.clone()).header(AUTHORIZATION, self.authorization.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| PoliciesCommandError::Unreachable {
            url: self.base.to_string(),
            reason: if e.is_timeout() { "no answer in time".to_owned() } else { error_chain(&e) },
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, bytes.to_vec()))
    }

    /// The error for an answer that is not the one the command needs.
    fn failure(&self, status: StatusCode, body: &[u8]) -> PoliciesCommandError {
        let url = self.base.to_string();
        match status {
            StatusCode::UNAUTHORIZED => PoliciesCommandError::Unauthorized { url },
            StatusCode::FORBIDDEN => PoliciesCommandError::Forbidden { url },
            _ => {
                let message = serde_json::from_slice::<Refusal>(body)
                    .map(|r| r.error.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect::<String>());
                PoliciesCommandError::Service { url, status: status.as_u16(), message }
            }
        }
    }

    /// The error for an answer of the right status that does not parse.
    fn unexpected(&self, status: StatusCode, why: &str) -> PoliciesCommandError {
        PoliciesCommandError::Service {
            url: self.base.to_string(),
            status: status.as_u16(),
            message: format!("an answer this command cannot read ({why}): is it a warrant service?"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::path::Path;

    use super::safe_target;

    #[test]
    fn paths_that_could_leave_the_directory_are_refused() {
        let dir = Path::new("/tmp/nowhere-in-particular");
        for bad in ["", "/etc/passwd", "../x.cedar", "a/../../x", "a//b", "./a", "a\\b", "C:x", "a/."] {
            assert!(safe_target(dir, bad).is_err(), "{bad:?}");
        }
        assert_eq!(safe_target(dir, "rules/x.wasm").unwrap(), dir.join("rules").join("x.wasm"));
    }
}
