//! The audit keyring: the HMAC keys that sign the log and key the digests
//! (`hmac-sha256:<hex>`) that stand in for sensitive values.
//!
//! Keys come from a key file or the environment, never from the database they
//! sign. Format, one key per line, the last one signs new records:
//!
//! ```text
//! # key-id  secret (hex, at least 32 bytes)  [from=<first seq it signs>]
//! k1 5f2c…
//! k2 9a01… from=1001
//! ```
//!
//! `from=` bounds each key to its own stretch of the log: k1 signs 1..=1000
//! and k2 from 1001 on; a record k1 signed at 1001 or later fails
//! verification, so a retired key that leaks cannot extend the log. When
//! rotating, give the new key `from=<the log's size + 1>` (the service
//! prints it at start when the current key has none).
//!
//! With no file configured, a key is generated once at
//! `$XDG_CONFIG_HOME/warrant/audit.key` (or `~/.config/warrant/audit.key`),
//! mode 0600 — outside the data directory.

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use hmac::{KeyInit as _, Mac as _};
use warrant_engine::{RedactionConfig, Redactor};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Shortest secret accepted: HMAC-SHA256 wants at least its output size.
const MIN_SECRET_BYTES: usize = 32;

/// Why the audit keyring could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the audit key file `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot create the audit key file `{path}`: {error}")]
    Create { path: String, error: std::io::Error },
    #[error("cannot create the audit key file `{path}`: no randomness: {error}")]
    Randomness { path: String, error: getrandom::Error },
    #[error("audit keys, line {line}: {message}")]
    Malformed { line: usize, message: &'static str },
    #[error("audit keys: {0}")]
    Keyring(#[from] warrant_engine::audit::KeyringError),
    #[error("audit keys: {0}")]
    Redaction(#[from] warrant_engine::redact::RedactError),
    #[error("no audit key: the key file or `WARRANT_AUDIT_KEY` holds no key")]
    Empty,
    #[error("no home directory to keep the generated audit key in: pass `--audit-key-file`")]
    NoHome,
}

/// Named secrets; the last one is current. Never printed.
#[derive(Clone)]
pub struct AuditKeys {
    keys: Vec<(String, Vec<u8>)>,
    signing: warrant_engine::audit::Keyring,
    redactor: Arc<Redactor>,
}

impl fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("AuditKeys").field("key_ids", &ids).finish_non_exhaustive()
    }
}

impl AuditKeys {
    /// Parses the key-file format.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        let mut starts: Vec<Option<u64>> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |message: &'static str| KeyError::Malformed { line: index + 1, message };
            let mut parts = line.split_whitespace();
            let (Some(id), Some(secret), from, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return Err(malformed("expected `<key-id> <hex secret> [from=<seq>]`"));
            };
            let from = match from {
                None => None,
                Some(text) => match text.strip_prefix("from=").and_then(|n| n.parse::<u64>().ok()) {
                    Some(n) if n >= 1 => Some(n),
                    _ => return Err(malformed("expected `from=<seq>` (a whole number from 1) after the secret")),
                },
            };
            if keys.is_empty() && from.is_some_and(|n| n != 1) {
                return Err(malformed("the first key signs from seq 1: leave out `from=` or write `from=1`"));
            }
            let secret = hex::decode(secret).map_err(|_| malformed("the secret is not hex"))?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(malformed("the secret is shorter than 32 bytes"));
            }
            if keys.iter().any(|(existing, _)| existing == id) {
                return Err(malformed("this key id appears twice"));
            }
            keys.push((id.to_owned(), secret));
            starts.push(from);
        }
        let mut entries = keys.iter().zip(&starts);
        let Some(((first_id, first_secret), _)) = entries.next() else {
            return Err(KeyError::Empty);
        };
        let mut signing = warrant_engine::audit::Keyring::new(first_id.clone(), first_secret)?;
        for ((id, secret), from) in entries {
            signing.rotate_from(id.clone(), secret, *from)?;
        }
        // Digests use a key derived from the oldest key, so they stay stable
        // when signing keys rotate, and differ from any signing key.
        let digest_key = hmac_sha256(first_secret, b"warrant/digest/v1");
        let redactor = Redactor::new(RedactionConfig::default(), &digest_key)?;
        Ok(Self { keys, signing, redactor: Arc::new(redactor) })
    }

    /// From `WARRANT_AUDIT_KEY` if set, else the file at `path`, else the
    /// default file (generated on first use).
    pub fn load(path: Option<&Path>) -> Result<Self, KeyError> {
        if let Ok(text) = std::env::var("WARRANT_AUDIT_KEY") {
            return Self::parse(&text.replace(',', "\n"));
        }
        match path {
            Some(path) => Self::read(path),
            None => {
                let path = default_path().ok_or(KeyError::NoHome)?;
                if !path.exists() && generate(&path)? {
                    tracing::warn!(path = %path.display(), "generated a new audit key; back it up: the log cannot be verified without it");
                }
                Self::read(&path)
            }
        }
    }

    fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| KeyError::Read { path: path.display().to_string(), error })?;
        Self::parse(&text)
    }

    /// A key for `purpose` derived from the oldest audit key (stable across
    /// rotations), distinct from every signing and digest key: the rule
    /// cache authenticates its compiled artifacts with one.
    pub fn derived(&self, purpose: &str) -> Vec<u8> {
        let oldest = self.keys.first().map(|(_, secret)| secret.as_slice()).unwrap_or_default();
        hmac_sha256(oldest, format!("warrant/{purpose}/v1").as_bytes())
    }

    /// Whether the signing key was rotated without `from=` on the current
    /// key: retired keys then remain valid for every later `seq`.
    pub fn rotation_unbounded(&self) -> bool {
        self.keys.len() > 1 && self.signing.range(self.current_id()).is_some_and(|(from, _)| from == 1)
    }

    /// The id of the key that signs new records.
    pub fn current_id(&self) -> &str {
        self.signing.current_key_id()
    }

    /// The keys that sign and verify audit records.
    pub fn signing(&self) -> &warrant_engine::audit::Keyring {
        &self.signing
    }

    /// Redaction with this keyring's digest key.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Keyed digest in Vault's format, `hmac-sha256:<hex>`.
    pub fn digest(&self, value: &str) -> String {
        self.redactor.digest(value)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // INVARIANT: HMAC accepts keys of any length, so this never fails.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn default_path() -> Option<PathBuf> {
    config_path("audit.key")
}

/// Writes a fresh random key file, readable by its owner only, unless one
/// exists (see [`create_private`]). Returns whether this call created it.
pub fn generate(path: &Path) -> Result<bool, KeyError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| KeyError::Randomness { path: path.display().to_string(), error })?;
    let text = format!(
        "# warrant audit keys: `<key-id> <hex secret>`; the last line signs new records\nk1 {}\n",
        hex::encode(secret)
    );
    create_private(path, &text).map_err(|error| KeyError::Create { path: path.display().to_string(), error })
}

/// Creates the file at `path` holding `text`, mode 0600, unless it exists.
/// The text is written whole to a private temporary file and then
/// hard-linked into place, so concurrent first starts agree on one file and
/// no reader sees a partial one. Returns whether this call created it.
pub(crate) fn create_private(path: &Path, text: &str) -> std::io::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.{}", std::process::id(), hex::encode(nonce)));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// `$XDG_CONFIG_HOME/warrant/<name>` (or `~/.config/warrant/<name>`).
pub(crate) fn config_path(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("warrant").join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn parses_rotations_and_refuses_bad_lines() {
        let ring = AuditKeys::parse(&format!("# c\nk1 {A}\n\nk2 {A}{A}\n")).unwrap();
        assert_eq!(ring.current_id(), "k2");
        assert!(!format!("{ring:?}").contains(A));
        assert!(matches!(AuditKeys::parse("k1 abcd"), Err(KeyError::Malformed { line: 1, .. })));
        assert!(matches!(AuditKeys::parse(&format!("k1 {A}\nk1 {A}")), Err(KeyError::Malformed { line: 2, .. })));
        assert!(matches!(AuditKeys::parse("# nothing"), Err(KeyError::Empty)));
    }

    #[test]
    fn digests_are_keyed_stable_across_rotation_and_vault_shaped() {
        let one = AuditKeys::parse(&format!("k1 {A}")).unwrap();
        let rotated = AuditKeys::parse(&format!("k1 {A}\nk2 {A}{A}")).unwrap();
        let other = AuditKeys::parse(&format!("k1 {A}{A}")).unwrap();
        let d = one.digest("tok_1");
        assert!(d.starts_with("hmac-sha256:") && d.len() == "hmac-sha256:".len() + 64);
        assert_eq!(d, rotated.digest("tok_1"));
        assert_ne!(d, other.digest("tok_1"));
        assert_ne!(d, one.digest("tok_2"));
    }

    #[test]
    fn generated_files_are_private_and_load() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile_dir();
        let path = dir.join("nested/audit.key");
        generate(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(AuditKeys::read(&path).unwrap().current_id(), "k1");
        let before = std::fs::read_to_string(&path).unwrap();
        assert!(!generate(&path).unwrap(), "an existing key is kept");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warrant-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
