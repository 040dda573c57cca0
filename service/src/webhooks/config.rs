//! The webhooks file (`--webhooks FILE`, `WARRANT_WEBHOOKS`): inbound sources
//! and outbound subscriptions, validated once at start.
//!
//! ```json
//! {
//!   "sources": {
//!     "okta": {"scheme": "standard", "secrets": ["whsec_…", "whsec_…"]},
//!     "legacy": {"scheme": "sha256", "secrets": ["a plain secret"]}
//!   },
//!   "subscriptions": [
//!     {"name": "siem", "url": "http://127.0.0.1:9999/hook", "secret": "whsec_…",
//!      "kinds": ["token.*", "webhook.*"], "retry_initial_ms": 1000, "retry_max_ms": 300000,
//!      "timeout_ms": 10000, "max_refusals": 10},
//!     {"name": "vendor", "url": "https://hooks.example.com/warrant", "secret": "whsec_…",
//!      "kinds": ["*"], "ca_file": "vendor-ca.pem"}
//!   ]
//! }
//! ```
//!
//! `https` URLs are verified against the system's trust store, plus the
//! certificates of `ca_file` when given (a PEM bundle; a relative path is
//! read from the webhooks file's directory).
//!
//! Secrets live only here: never in the database, never in logs, never in
//! `Debug` output ([`Secret`] prints as `Secret(..)`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use crate::tls::{self, TlsFileError};

/// Shortest decoded `whsec_` secret accepted.
const MIN_STANDARD_SECRET_BYTES: usize = 16;
/// Longest source or subscription name (it appears in paths and ids).
const MAX_NAME: usize = 64;

/// Base64 as Standard Webhooks secrets and signatures use it (padding optional).
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// HMAC key bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// A Standard Webhooks secret: `whsec_` then base64.
    pub fn standard(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretError::NoPrefix)?;
        let bytes = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if bytes.len() < MIN_STANDARD_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How a source signs its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (GitHub style).
    Sha256,
}

/// An inbound source: its scheme and the secrets accepted now (several while
/// a secret rotates; any one verifies).
#[derive(Debug, Clone)]
pub struct Source {
    pub scheme: Scheme,
    pub secrets: Vec<Secret>,
}

/// Which record kinds a subscription wants: `*`, `prefix.*`, or an exact kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindPattern {
    Any,
    Prefix(String),
    Exact(String),
}

impl KindPattern {
    fn parse(text: &str) -> Option<Self> {
        let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if text == "*" {
            Some(Self::Any)
        } else if let Some(prefix) = text.strip_suffix(".*").filter(|p| valid(p)) {
            Some(Self::Prefix(format!("{prefix}.")))
        } else if valid(text) {
            Some(Self::Exact(text.to_owned()))
        } else {
            None
        }
    }

    pub fn matches(&self, kind: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(p) => kind.starts_with(p.as_str()),
            Self::Exact(k) => kind == k,
        }
    }
}

/// An outbound subscriber.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Stable: cursors and `webhook-id`s (`<name>_<seq>`) are keyed by it.
    pub name: String,
    pub url: reqwest::Url,
    pub secret: Secret,
    pub kinds: Vec<KindPattern>,
    /// First retry delay; doubles per failed attempt up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Whole-request timeout for one delivery attempt.
    pub timeout: Duration,
    /// Answers refusing one record (see `deliver.rs`) before it is given
    /// up on with a `webhook.undelivered` record and the stream goes on.
    pub max_refusals: u32,
    /// `ca_file` as written, if given; read by [`WebhookConfig::load`].
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file`, trusted beside the system's roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Subscription {
    pub fn wants(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k.matches(kind))
    }

    /// The delay before attempt `attempts + 1`, after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        self.retry_initial.saturating_mul(factor).min(self.retry_max)
    }
}

/// The validated webhooks configuration. The default has no sources and no
/// subscriptions (no file given).
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    pub sources: BTreeMap<String, Source>,
    pub subscriptions: Vec<Subscription>,
}

/// Why the webhooks file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the webhooks file `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("webhooks file `{path}`: {error}")]
    Invalid { path: String, error: ParseError },
    #[error("webhooks file `{path}`: `subscriptions[{index}]`: `ca_file`: {error}")]
    CaFile { path: String, index: usize, error: Box<TlsFileError> },
}

/// What is wrong with the webhooks file's text. `at` names the source
/// (`sources.NAME`) or subscription (`subscriptions[I]`); messages never
/// quote a secret.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The JSON does not have the file's shape; `path` is `.` for the whole file.
    #[error("{}", at_path(path, message))]
    Shape { path: String, message: String },
    #[error("`{at}`: the name `{name}` must be 1 to {MAX_NAME} of `A-Z a-z 0-9 - _`")]
    Name { at: String, name: String },
    #[error("`{at}`: the name `{name}` is used twice")]
    NameTwice { at: String, name: String },
    #[error("`{at}`: `secrets` is empty; give at least one")]
    NoSecrets { at: String },
    #[error("`{at}`: `{field}`: {error}")]
    Secret { at: String, field: String, error: SecretError },
    #[error("`{at}`: `url`: {error}")]
    Url { at: String, error: UrlError },
    #[error("`{at}`: `kinds` is empty; use `[\"*\"]` for every record")]
    NoKinds { at: String },
    #[error("`{at}`: `kinds`: `{pattern}` is not a kind pattern (`*`, `token.*` or an exact kind)")]
    KindPattern { at: String, pattern: String },
    #[error("`{at}`: retries need `0 < retry_initial_ms <= retry_max_ms`")]
    Retries { at: String },
    #[error("`{at}`: `timeout_ms` must be positive")]
    Timeout { at: String },
    #[error("`{at}`: `max_refusals` must be positive")]
    MaxRefusals { at: String },
}

fn at_path(path: &str, message: &str) -> String {
    if path == "." { message.to_owned() } else { format!("`{path}`: {message}") }
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a standard secret is `whsec_` followed by base64")]
    NoPrefix,
    #[error("the part after `whsec_` is not valid base64")]
    NotBase64,
    #[error("the secret decodes to {0} bytes; at least {MIN_STANDARD_SECRET_BYTES} are needed")]
    TooShort(usize),
    #[error("the secret is empty")]
    Empty,
}

/// Why a subscription's URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{text}` is not a URL: {error}")]
    Parse { text: String, error: <reqwest::Url as std::str::FromStr>::Err },
    #[error("the scheme `{0}` is not `http` or `https`")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    /// Credentials in a URL would end up in logs and error messages.
    #[error("the URL must not carry credentials; the subscription secret signs deliveries")]
    Credentials,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    sources: BTreeMap<String, FileSource>,
    #[serde(default)]
    subscriptions: Vec<FileSubscription>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    scheme: Scheme,
    secrets: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSubscription {
    name: String,
    url: String,
    secret: String,
    kinds: Vec<String>,
    #[serde(default = "default_retry_initial_ms")]
    retry_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    retry_max_ms: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_refusals")]
    max_refusals: u32,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

fn default_max_refusals() -> u32 {
    10
}

fn default_retry_initial_ms() -> u64 {
    1_000
}

fn default_retry_max_ms() -> u64 {
    300_000
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl WebhookConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: shown.clone(), error })?;
        let mut config = Self::parse(&text).map_err(|error| ConfigError::Invalid { path: shown.clone(), error })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for (index, sub) in config.subscriptions.iter_mut().enumerate() {
            if let Some(ca) = &sub.ca_file {
                sub.extra_roots = tls::read_roots(&dir.join(ca)).map_err(|error| ConfigError::CaFile {
                    path: shown.clone(),
                    index,
                    error: Box::new(error),
                })?;
            }
        }
        Ok(config)
    }

    /// Parses and validates the file's text; the error names the field.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let file: FileConfig = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            // serde's messages may quote the offending value: never a secret's.
            let message = if path.contains("secret") { "invalid value".to_owned() } else { e.into_inner().to_string() };
            ParseError::Shape { path, message }
        })?;
        let mut sources = BTreeMap::new();
        for (name, source) in file.sources {
            let at = || format!("sources.{name}");
            if !valid_name(&name) {
                return Err(ParseError::Name { at: at(), name });
            }
            if source.secrets.is_empty() {
                return Err(ParseError::NoSecrets { at: at() });
            }
            let mut secrets = Vec::with_capacity(source.secrets.len());
            for (i, text) in source.secrets.iter().enumerate() {
                let secret = match source.scheme {
                    Scheme::Standard => Secret::standard(text),
                    Scheme::Sha256 if text.is_empty() => Err(SecretError::Empty),
                    Scheme::Sha256 => Ok(Secret::new(text.as_bytes())),
                };
                secrets.push(secret.map_err(|error| ParseError::Secret {
                    at: at(),
                    field: format!("secrets[{i}]"),
                    error,
                })?);
            }
            sources.insert(name, Source { scheme: source.scheme, secrets });
        }
        let mut names = BTreeSet::new();
        let mut subscriptions = Vec::with_capacity(file.subscriptions.len());
        for (i, s) in file.subscriptions.into_iter().enumerate() {
            let at = || format!("subscriptions[{i}]");
            if !valid_name(&s.name) {
                return Err(ParseError::Name { at: at(), name: s.name });
            }
            if !names.insert(s.name.clone()) {
                return Err(ParseError::NameTwice { at: at(), name: s.name });
            }
            let url = check_url(&s.url).map_err(|error| ParseError::Url { at: at(), error })?;
            let secret = Secret::standard(&s.secret).map_err(|error| ParseError::Secret {
                at: at(),
                field: "secret".to_owned(),
                error,
            })?;
            if s.kinds.is_empty() {
                return Err(ParseError::NoKinds { at: at() });
            }
            let mut kinds = Vec::with_capacity(s.kinds.len());
            for pattern in s.kinds {
                match KindPattern::parse(&pattern) {
                    Some(kind) => kinds.push(kind),
                    None => return Err(ParseError::KindPattern { at: at(), pattern }),
                }
            }
            if s.retry_initial_ms == 0 || s.retry_max_ms < s.retry_initial_ms {
                return Err(ParseError::Retries { at: at() });
            }
            if s.timeout_ms == 0 {
                return Err(ParseError::Timeout { at: at() });
            }
            if s.max_refusals == 0 {
                return Err(ParseError::MaxRefusals { at: at() });
            }
            subscriptions.push(Subscription {
                name: s.name,
                url,
                secret,
                kinds,
                retry_initial: Duration::from_millis(s.retry_initial_ms),
                retry_max: Duration::from_millis(s.retry_max_ms),
                timeout: Duration::from_millis(s.timeout_ms),
                max_refusals: s.max_refusals,
                ca_file: s.ca_file,
                extra_roots: Vec::new(),
            });
        }
        Ok(Self { sources, subscriptions })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_url(text: &str) -> Result<reqwest::Url, UrlError> {
    let url = reqwest::Url::parse(text).map_err(|error| UrlError::Parse { text: text.to_owned(), error })?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlError::Scheme(other.to_owned())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn error(text: &str) -> String {
        WebhookConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_sources_and_subscriptions() {
        let config = WebhookConfig::parse(&format!(
            r#"{{"sources": {{"okta": {{"scheme": "standard", "secrets": ["{A}", "{B}"]}},
                "legacy": {{"scheme": "sha256", "secrets": ["It's a Secret to Everybody"]}}}},
              "subscriptions": [{{"name": "siem", "url": "http://127.0.0.1:9/hook", "secret": "{A}",
                "kinds": ["token.*", "decision"], "retry_initial_ms": 10, "retry_max_ms": 50}}]}}"#
        ))
        .unwrap();
        assert_eq!(config.sources["okta"].secrets.len(), 2);
        assert_eq!(config.sources["okta"].scheme, Scheme::Standard);
        assert_eq!(config.sources["legacy"].secrets[0].bytes(), b"It's a Secret to Everybody");
        let siem = &config.subscriptions[0];
        assert!(siem.wants("token.revoked") && siem.wants("decision"));
        assert!(!siem.wants("tokens") && !siem.wants("decision.x") && !siem.wants("webhook.received"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("MfKQ9r8") && !debug.contains("Everybody"), "{debug}");
        assert!(WebhookConfig::parse("{}").unwrap().sources.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut config = WebhookConfig::parse(&format!(
            r#"{{"subscriptions": [{{"name": "s", "url": "http://h/", "secret": "{A}", "kinds": ["*"],
                "retry_initial_ms": 100, "retry_max_ms": 1000}}]}}"#
        ))
        .unwrap();
        let s = config.subscriptions.remove(0);
        let ms = |n| s.backoff(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4), ms(5), ms(100), ms(u32::MAX)], [100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn refuses_bad_files_with_clear_errors() {
        let source = |scheme: &str, secrets: &str| {
            format!(r#"{{"sources": {{"s": {{"scheme": "{scheme}", "secrets": {secrets}}}}}}}"#)
        };
        assert!(error(&source("hmac", r#"["x"]"#)).contains("unknown variant `hmac`"));
        assert!(error(&source("standard", "[]")).contains("`secrets` is empty"));
        assert!(error(&source("standard", r#"["whsec_!!!"]"#)).contains("not valid base64"));
        assert!(error(&source("standard", r#"["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]"#)).contains("`whsec_`"));
        assert!(error(&source("standard", r#"["whsec_c2hvcnQ="]"#)).contains("at least 16"));
        assert!(error(&source("sha256", r#"[""]"#)).contains("empty"));
        // A secret that fails to parse is never echoed.
        let leaked = error(&source("standard", r#"[12345]"#));
        assert!(!leaked.contains("12345"), "{leaked}");
        assert!(error(r#"{"sources": {"a b": {"scheme": "sha256", "secrets": ["x"]}}}"#).contains("`a b`"));
        assert!(error(r#"{"sorces": {}}"#).contains("unknown field `sorces`"));
        let sub = |url: &str, kinds: &str| {
            format!(r#"{{"subscriptions": [{{"name": "s", "url": "{url}", "secret": "{A}", "kinds": {kinds}}}]}}"#)
        };
        assert!(error(&sub("not a url", r#"["*"]"#)).contains("is not a URL"));
        assert!(error(&sub("ftp://h/x", r#"["*"]"#)).contains("`ftp`"));
        assert!(WebhookConfig::parse(&sub("https://h/x", r#"["*"]"#)).is_ok());
        assert!(error(&sub("http://u:p@h/x", r#"["*"]"#)).contains("credentials"));
        assert!(error(&sub("http://h/x", "[]")).contains("`kinds` is empty"));
        assert!(error(&sub("http://h/x", r#"["to ken"]"#)).contains("kind pattern"));
        let twice = format!(
            r#"{{"subscriptions": [{{"name": "s", "url": "http://h/", "secret": "{A}", "kinds": ["*"]}},
                {{"name": "s", "url": "http://h/", "secret": "{A}", "kinds": ["*"]}}]}}"#
        );
        assert!(error(&twice).contains("used twice"));
    }
}
