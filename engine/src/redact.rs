//! Redaction: sensitive values never reach storage, the service's logs or
//! outgoing webhooks in clear (docs/audit.md#redaction).
//!
//! Two treatments, chosen by key name (ASCII case-insensitive, `-` and `_`
//! alike, at any depth, inside arrays too):
//! - **keyed digest**, Vault's `hmac-sha256:<hex>`, for secrets an auditor
//!   must be able to correlate: holding a value, they ask the service for its
//!   digest ([`Redactor::digest`]) and search the log for it;
//! - **dropped** to `"[REDACTED]"` for bulk data with no correlation value.
//!
//! Every string value (and any free text, such as a log line) is also
//! scanned for secrets that travel without a telling key:
//! - PEM private key blocks → `[REDACTED]` (long, and never worth correlating;
//!   a block missing its END line is redacted to the end of the text);
//! - `Bearer <token>` → `Bearer hmac-sha256:…`;
//! - JWTs (`eyJ…` with two or more dots) → digest;
//! - Databricks `dapi…` tokens, and the well-known prefixed token formats
//!   (Google `ya29.`, GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`/
//!   `github_pat_`, Stripe `sk_live_`/`rk_live_` and test keys, Slack
//!   `xox?-`, AWS `AKIA…`/`ASIA…`, GitLab `glpat-`, OpenAI-style `sk-…`)
//!   → digest;
//! - `Cookie:`, `Set-Cookie:`, `X-Api-Key:` and `Api-Key:` header lines →
//!   the value, to the end of the line (or a quote), is digested;
//! - `password=`, `passwd=`, `pwd=` (any case) and the digest-key names as
//!   `name=value` (query strings, connection strings) → the value, up to `;`,
//!   `&`, whitespace or the end (or a whole `{…}`, `"…"`, `'…'`), is digested;
//! - the same names as JSON text (`"password": "…"`) → digest;
//! - the password of a URL's userinfo (`scheme://user:secret@host`) → digest.
//!
//! Digests keep correlation where a token shows up both under a key and in
//! free text: both become the same `hmac-sha256:` value. Redaction errs on the
//! side of over-matching: a false positive costs a readable word, a miss leaks
//! a credential. The caller's value is never modified: redaction returns a
//! copy, so the response to the caller is never altered by it.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use hmac::{Hmac, KeyInit as _};
use regex::{Captures, Regex};
use serde_json::Value;
use sha2::Sha256;

use crate::audit::keyring::tag_of;

/// Keys whose values are replaced by a keyed digest, by default.
pub const DEFAULT_DIGEST_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "api_token",
    "authorization",
    "password",
    "private_key",
    "code",
    "code_verifier",
    "token",
    "secret",
    "api_key",
    "apikey",
    "x_api_key",
    "cookie",
    "set_cookie",
    "session",
];

/// Keys whose values are dropped, by default.
pub const DEFAULT_DROP_KEYS: &[&str] = &["query_results", "input_params", "db_connection_string", "export_url"];

/// What a dropped value (and a private key block) becomes.
pub const REDACTED: &str = "[REDACTED]";

/// The prefix of a keyed digest, as Vault writes it.
pub const DIGEST_PREFIX: &str = "hmac-sha256:";

/// Values nested deeper than this are dropped whole: redaction must not
/// overflow the stack on a hostile value, and must fail closed. Parsed JSON
/// never gets here (`serde_json` stops at 128 levels).
const MAX_DEPTH: usize = 128;

/// Which keys get which treatment, and whether free text is scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionConfig {
    digest_keys: Vec<String>,
    drop_keys: Vec<String>,
    scan_free_text: bool,
}

impl Default for RedactionConfig {
    /// The default lists (docs/audit.md#redaction), with free-text scanning on.
    fn default() -> Self {
        Self::empty()
            .with_digest_keys(DEFAULT_DIGEST_KEYS.iter().copied())
            .with_drop_keys(DEFAULT_DROP_KEYS.iter().copied())
            .scan_free_text(true)
    }
}

impl RedactionConfig {
    /// No keys and no scanning: a base for a list replaced whole.
    pub fn empty() -> Self {
        Self { digest_keys: Vec::new(), drop_keys: Vec::new(), scan_free_text: false }
    }

    /// Adds a key whose values are digested.
    pub fn digest_key(mut self, key: impl AsRef<str>) -> Self {
        insert(&mut self.digest_keys, key.as_ref());
        self
    }

    /// Adds a key whose values are dropped.
    pub fn drop_key(mut self, key: impl AsRef<str>) -> Self {
        insert(&mut self.drop_keys, key.as_ref());
        self
    }

    /// Replaces the digested keys.
    pub fn with_digest_keys<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, keys: I) -> Self {
        self.digest_keys.clear();
        keys.into_iter().fold(self, |config, key| config.digest_key(key))
    }

    /// Replaces the dropped keys.
    pub fn with_drop_keys<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, keys: I) -> Self {
        self.drop_keys.clear();
        keys.into_iter().fold(self, |config, key| config.drop_key(key))
    }

    /// Turns scanning of string values for free-text secrets on or off.
    pub fn scan_free_text(mut self, on: bool) -> Self {
        self.scan_free_text = on;
        self
    }

    /// The digested keys, normalized (lowercase, `_` for `-`).
    pub fn digest_keys(&self) -> impl Iterator<Item = &str> {
        self.digest_keys.iter().map(String::as_str)
    }

    /// The dropped keys, normalized. A key in both lists is dropped.
    pub fn drop_keys(&self) -> impl Iterator<Item = &str> {
        self.drop_keys.iter().map(String::as_str)
    }
}

/// Why a redactor could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("the digest key is empty")]
    EmptyKey,
    #[error("no randomness for a digest key: {0}")]
    NoRandomness(String),
}

/// What redaction does with the value under a key.
enum Rule {
    /// Replaced by [`REDACTED`].
    Drop,
    /// Replaced by its keyed digest.
    Digest,
    /// Kept, its strings scanned.
    Keep,
}

/// Applies a [`RedactionConfig`] with a digest key. Cheap to share: build one
/// per key and reuse it.
#[derive(Clone)]
pub struct Redactor {
    config: RedactionConfig,
    /// Keyed HMAC-SHA256 state, cloned per digest.
    key: Hmac<Sha256>,
}

impl fmt::Debug for Redactor {
    /// The lists only: the digest key must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor digesting with `key` (the service derives it from the audit
    /// key, so digests are stable across restarts and auditors can ask for
    /// one).
    pub fn new(config: RedactionConfig, key: &[u8]) -> Result<Self, RedactError> {
        if key.is_empty() {
            return Err(RedactError::EmptyKey);
        }
        let key = Hmac::<Sha256>::new_from_slice(key).map_err(|_| RedactError::EmptyKey)?;
        Ok(Self { config, key })
    }

    /// A redactor with the default lists and a random key of its own, for a
    /// process that has no audit key to derive one from (`warrant check`,
    /// the engine as a library): its digests correlate with nothing stored,
    /// but a secret still never reaches a log in clear.
    pub fn ephemeral() -> Result<Self, RedactError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| RedactError::NoRandomness(e.to_string()))?;
        Self::new(RedactionConfig::default(), &key)
    }

    pub fn config(&self) -> &RedactionConfig {
        &self.config
    }

    /// `hmac-sha256:<hex of HMAC-SHA256(key, value)>`: what a digested value
    /// becomes, and what an auditor searches for.
    pub fn digest(&self, value: &str) -> String {
        format!("{DIGEST_PREFIX}{}", tag_of(self.key.clone(), &[value.as_bytes()]).to_hex())
    }

    /// A redacted copy of `value` (nothing below [`MAX_DEPTH`] is copied).
    pub fn redact_value(&self, value: &Value) -> Value {
        self.value(value, 0)
    }

    /// `value`, redacted in place: only what redaction changes is
    /// rebuilt (the audit writer's path: every record's details pass here).
    pub fn redact_owned(&self, mut value: Value) -> Value {
        self.in_place(&mut value, 0);
        value
    }

    /// A redacted copy of free text, such as a log line.
    pub fn redact_text(&self, text: &str) -> String {
        self.scan(text).into_owned()
    }

    /// `text`, redacted: the same string back when nothing in it is secret.
    pub fn redact_string(&self, text: String) -> String {
        match self.scan(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(redacted) => redacted,
        }
    }

    fn value(&self, value: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::String(REDACTED.to_owned());
        }
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, v)| {
                        let redacted = match self.rule(key) {
                            Rule::Drop => Value::String(REDACTED.to_owned()),
                            Rule::Digest => self.digest_value(v, depth + 1),
                            Rule::Keep => self.value(v, depth + 1),
                        };
                        (key.clone(), redacted)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v, depth + 1)).collect()),
            Value::String(s) if self.config.scan_free_text => Value::String(self.scan(s).into_owned()),
            other => other.clone(),
        }
    }

    /// [`Self::value`] on a value of one's own, changing only what redaction
    /// changes.
    fn in_place(&self, value: &mut Value, depth: usize) {
        if depth > MAX_DEPTH {
            *value = Value::String(REDACTED.to_owned());
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    self.field(key, v, depth + 1);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.in_place(v, depth + 1)),
            Value::String(s) if self.config.scan_free_text => {
                if let Cow::Owned(redacted) = self.scan(s) {
                    *s = redacted;
                }
            }
            _ => {}
        }
    }

    fn field(&self, key: &str, value: &mut Value, depth: usize) {
        match self.rule(key) {
            Rule::Drop => *value = Value::String(REDACTED.to_owned()),
            Rule::Digest => *value = self.digest_value(value, depth),
            Rule::Keep => self.in_place(value, depth),
        }
    }

    /// What happens to the value under `key`.
    fn rule(&self, key: &str) -> Rule {
        if matches_any(key, &self.config.drop_keys) {
            Rule::Drop
        } else if matches_any(key, &self.config.digest_keys) {
            Rule::Digest
        } else {
            Rule::Keep
        }
    }

    /// Strings are digested as they are (so an auditor can ask for the same
    /// digest), each array item on its own, and other values as their RFC
    /// 8785 text. `null` carries nothing and stays.
    fn digest_value(&self, value: &Value, depth: usize) -> Value {
        match value {
            Value::Null => Value::Null,
            Value::String(s) => Value::String(self.digest(s)),
            Value::Array(items) if depth <= MAX_DEPTH => {
                Value::Array(items.iter().map(|v| self.digest_value(v, depth + 1)).collect())
            }
            Value::Array(_) => Value::String(REDACTED.to_owned()),
            other => match serde_json_canonicalizer::to_string(other) {
                Ok(text) => Value::String(self.digest(&text)),
                Err(_) => Value::String(REDACTED.to_owned()),
            },
        }
    }

    /// Replaces every free-text secret in `text`; borrows when none is found.
    fn scan<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &*SECRETS {
            Some(secrets) => secrets.replace_all(text, |caps: &Captures<'_>| self.replacement(caps)),
            // The pattern is a constant that a test compiles; if it ever did
            // not, fail closed.
            None => Cow::Owned(REDACTED.to_owned()),
        }
    }

    fn replacement(&self, caps: &Captures<'_>) -> String {
        let group = |name: &str| caps.name(name).map(|m| m.as_str());
        if group("pem").is_some() {
            return REDACTED.to_owned();
        }
        if let (Some(prefix), Some(password)) = (group("url_head"), group("url_pw")) {
            return format!("{prefix}{}@", self.digest(password));
        }
        if let (Some(scheme), Some(token)) = (group("scheme"), group("bearer")) {
            return format!("{scheme}{}", self.digest(token));
        }
        if let Some(token) = group("jwt").or_else(|| group("dapi")).or_else(|| group("prefixed")) {
            return self.digest(token);
        }
        if let (Some(head), Some(value)) = (group("hdr_head"), group("hdr_value")) {
            return format!("{head}{}", self.digest(value.trim_end()));
        }
        if let (Some(head), Some(value)) = (group("json_head"), group("json_value")) {
            return format!("{head}{}\"", self.digest(value));
        }
        if let (Some(head), Some(value)) = (group("kv_head"), group("kv_value")) {
            return format!("{head}{}", self.quoted_digest(value));
        }
        // Unreachable: every alternative names a group above. Fail closed.
        REDACTED.to_owned()
    }

    /// Digests the inside of `{…}`, `"…"` or `'…'`, keeping the delimiters, so
    /// the digest is that of the password itself.
    fn quoted_digest(&self, value: &str) -> String {
        for (open, close) in [('{', '}'), ('"', '"'), ('\'', '\'')] {
            if let Some(inner) = value.strip_prefix(open).and_then(|v| v.strip_suffix(close)) {
                return format!("{open}{}{close}", self.digest(inner));
            }
        }
        self.digest(value)
    }
}

/// Names whose `name=value` and `"name": "value"` forms in free text are
/// secrets. `code` must start a word so `zipcode=` is left alone.
const SECRET_NAMES: &str = r"password|passwd|pwd|access_token|refresh_token|id_token|client_secret|api_token|code_verifier|private_key|authorization|\bcode|\btoken|\bsecret|\bapi_?key|\bx-api-key|\bcookie|\bsession";

/// Tokens recognisable by their prefix alone (providers publish these so
/// that scanners can find leaked ones).
const PREFIXED_TOKENS: &str = concat!(
    r"ya29\.[0-9A-Za-z_\-]{20,}",
    r"|gh[pousr]_[0-9A-Za-z]{30,}",
    r"|github_pat_[0-9A-Za-z_]{30,}",
    r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
    r"|xox[abposr]-[0-9A-Za-z\-]{10,}",
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"|glpat-[0-9A-Za-z_\-]{20,}",
    r"|\bsk-(?:proj-)?[0-9A-Za-z_\-]{20,}",
);

/// One pass over the text finds every kind of free-text secret; alternatives
/// are tried leftmost-first, so a JWT after `Bearer ` or `password=` is
/// digested once, as that token.
static SECRETS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let pattern = [
        // PEM private key blocks, to the END line or the end of the text.
        r"(?P<pem>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z))",
        // scheme://user:password@host
        r"(?P<url_head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<url_pw>[^\s/@]+)@",
        // Authorization: Bearer <b64token> (RFC 6750).
        r"(?P<scheme>(?i:\bbearer)\s+)(?P<bearer>[A-Za-z0-9\-._~+/]+=*)",
        // JWS/JWE compact serialization: header `eyJ…` and two to four more parts.
        r"(?P<jwt>eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*){1,3})",
        // Databricks personal access tokens.
        r"(?P<dapi>dapi[0-9A-Za-z]{16,}(?:-[0-9]+)?)",
        // Provider tokens known by their prefix.
        &format!(r"(?P<prefixed>{PREFIXED_TOKENS})"),
        // Header lines that carry credentials, to the end of the line.
        r#"(?P<hdr_head>(?i:\b(?:set-cookie|cookie|x-api-key|api-key)):[ \t]*)(?P<hdr_value>[^\r\n"]+)"#,
        // "name": "value" in JSON text (escapes kept inside the value).
        &format!(r#"(?P<json_head>"(?i:{SECRET_NAMES})"\s*:\s*")(?P<json_value>(?:[^"\\]|\\.)*)""#),
        // name=value in connection strings and query strings.
        &format!(r#"(?P<kv_head>(?i:{SECRET_NAMES})\s*=\s*)(?P<kv_value>\{{[^}}]*\}}|"[^"]*"|'[^']*'|[^;&\s]+)"#),
    ]
    .join("|");
    Regex::new(&pattern).ok()
});

/// Normalized form of a key name: ASCII lowercase, `-` read as `_`.
fn normalize(key: &str) -> String {
    key.trim().chars().map(|c| if c == '-' { '_' } else { c.to_ascii_lowercase() }).collect()
}

fn insert(list: &mut Vec<String>, key: &str) {
    let key = normalize(key);
    if !key.is_empty() && !list.contains(&key) {
        list.push(key);
    }
}

/// Whether `key` names one of `list` (normalized), without allocating: this
/// runs for every key of every redacted object.
fn matches_any(key: &str, list: &[String]) -> bool {
    list.iter().any(|name| {
        name.len() == key.len()
            && name.bytes().zip(key.bytes()).all(|(n, k)| n == if k == b'-' { b'_' } else { k.to_ascii_lowercase() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_compiles() {
        assert!(SECRETS.is_some());
    }

    #[test]
    fn keys_match_ignoring_case_and_dashes() {
        let list = vec![normalize("Access_Token"), normalize("client-secret")];
        assert!(matches_any("ACCESS-TOKEN", &list));
        assert!(matches_any("client_secret", &list));
        assert!(!matches_any("access_tokens", &list));
    }
}
