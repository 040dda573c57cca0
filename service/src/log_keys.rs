//! The log's signing keys: Ed25519 keys that sign its C2SP checkpoints
//! (`engine/src/audit/note.rs`), so that anyone holding the public key
//! (`warrant audit public-key`) can check the log's tree heads with no
//! secret. They are not the audit HMAC keys, which stay private.
//!
//! One signer key per line, in Go's `note` format; the last line signs new
//! checkpoints and the others still verify the ones they signed:
//!
//! ```text
//! PRIVATE+KEY+<origin>+<key id>+<base64>
//! ```
//!
//! Every key is named after the log's origin (`--log-origin`), which the
//! checkpoints' first line repeats. With no file configured one is generated
//! at `$XDG_CONFIG_HOME/warrant/log.key` (mode 0600) on first start, named
//! after `--log-origin` or, without it, `warrant.invalid/<random>`; the
//! origin cannot change afterwards.

use std::fmt;
use std::path::{Path, PathBuf};

use warrant_engine::audit::{LogCheckpoint, NoteError, NoteSigner, NoteVerifier};

use crate::keys::{config_path, create_private};

/// Why the log keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum LogKeyError {
    #[error("cannot read the log key file `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot create the log key file `{path}`: {error}")]
    Create { path: String, error: std::io::Error },
    #[error("log keys, line {line}: {error}")]
    Malformed { line: usize, error: NoteError },
    #[error("the log key file `{0}` holds no key")]
    Empty(String),
    #[error(
        "log keys, line {line}: the key is named `{found}`, the keys before it `{origin}`: every key names the log's origin"
    )]
    MixedOrigins { line: usize, origin: String, found: String },
    #[error("`--log-origin {flag}` but the log's keys name `{keys}`: a log's origin cannot change")]
    OriginMismatch { flag: String, keys: String },
    #[error("`{0}` cannot be a log origin: it must be non-empty, with no spaces and no `+` (e.g. `example.com/audit`)")]
    Origin(String),
    #[error("no home directory to keep the generated log key in: pass `--log-key-file`")]
    NoHome,
}

/// The log's keys: the one that signs, and the retired ones that still
/// verify. `Debug` shows public keys only.
pub struct LogKeys {
    retired: Vec<NoteSigner>,
    current: NoteSigner,
}

impl fmt::Debug for LogKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.verifiers()).finish()
    }
}

impl LogKeys {
    /// Parses the key file's text.
    pub fn parse(text: &str, path: &str) -> Result<Self, LogKeyError> {
        let mut signers: Vec<NoteSigner> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let signer = NoteSigner::parse(line).map_err(|error| LogKeyError::Malformed { line: index + 1, error })?;
            if let Some(first) = signers.first()
                && first.name() != signer.name()
            {
                return Err(LogKeyError::MixedOrigins {
                    line: index + 1,
                    origin: first.name().to_owned(),
                    found: signer.name().to_owned(),
                });
            }
            signers.push(signer);
        }
        let current = signers.pop().ok_or_else(|| LogKeyError::Empty(path.to_owned()))?;
        Ok(Self { retired: signers, current })
    }

    /// The keys at `path`, or at the default path (generated on first use,
    /// named `origin`). A given `origin` must be the keys' name.
    pub fn load(path: Option<&Path>, origin: Option<&str>) -> Result<Self, LogKeyError> {
        if let Some(o) = origin
            && !LogCheckpoint::is_origin(o)
        {
            return Err(LogKeyError::Origin(o.to_owned()));
        }
        let path: PathBuf = match path {
            Some(p) => p.to_owned(),
            None => {
                let path = config_path("log.key").ok_or(LogKeyError::NoHome)?;
                if !path.exists() && generate(&path, origin)? {
                    tracing::warn!(path = %path.display(), "generated a new log signing key; back it up: checkpoints are checked against its public key (`warrant audit public-key`)");
                }
                path
            }
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|error| LogKeyError::Read { path: shown.clone(), error })?;
        let keys = Self::parse(&text, &shown)?;
        if let Some(o) = origin
            && o != keys.origin()
        {
            return Err(LogKeyError::OriginMismatch { flag: o.to_owned(), keys: keys.origin().to_owned() });
        }
        Ok(keys)
    }

    /// The keys at `path` (default: the default path), never generating one.
    pub fn open(path: Option<&Path>) -> Result<Self, LogKeyError> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => config_path("log.key").ok_or(LogKeyError::NoHome)?,
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|error| LogKeyError::Read { path: shown.clone(), error })?;
        Self::parse(&text, &shown)
    }

    /// The log's origin: every key's name.
    pub fn origin(&self) -> &str {
        self.current().name()
    }

    /// The key that signs new checkpoints.
    pub fn current(&self) -> &NoteSigner {
        &self.current
    }

    /// Every key's verifier key, oldest first, the current one last: what
    /// auditors are given.
    pub fn verifiers(&self) -> Vec<NoteVerifier> {
        self.retired.iter().chain(std::iter::once(&self.current)).map(NoteSigner::verifier).collect()
    }
}

/// Writes a new key file named `origin` (or `warrant.invalid/<random>`) at
/// `path`, unless one exists. Returns whether this call created it.
pub fn generate(path: &Path, origin: Option<&str>) -> Result<bool, LogKeyError> {
    let create = |error: std::io::Error| LogKeyError::Create { path: path.display().to_string(), error };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| create(std::io::Error::other(e)))?;
    let origin = match origin {
        Some(o) => o.to_owned(),
        None => {
            let mut tag = [0u8; 8];
            getrandom::fill(&mut tag).map_err(|e| create(std::io::Error::other(e)))?;
            format!("warrant.invalid/{}", hex::encode(tag))
        }
    };
    let signer = NoteSigner::from_seed(&origin, seed).map_err(|_| LogKeyError::Origin(origin.clone()))?;
    let text = format!(
        "# warrant log signing keys (C2SP signed notes, Ed25519); the last line signs new checkpoints\n{}\n",
        signer.to_skey()
    );
    create_private(path, &text).map_err(create)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn generated_keys_load_rotate_and_keep_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        assert!(generate(&path, Some("example.com/audit")).unwrap());
        assert!(!generate(&path, Some("example.com/other")).unwrap(), "an existing file is kept");
        let keys = LogKeys::load(Some(&path), None).unwrap();
        assert_eq!(keys.origin(), "example.com/audit");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!format!("{keys:?}").contains(text.lines().last().unwrap()), "Debug shows no private key");
        assert!(matches!(
            LogKeys::load(Some(&path), Some("example.com/other")),
            Err(LogKeyError::OriginMismatch { .. })
        ));
        let next = NoteSigner::from_seed("example.com/audit", [9; 32]).unwrap();
        std::fs::write(&path, format!("{text}{}\n", next.to_skey())).unwrap();
        let rotated = LogKeys::load(Some(&path), Some("example.com/audit")).unwrap();
        assert_eq!(rotated.current().verifier(), next.verifier());
        assert_eq!(rotated.verifiers().len(), 2);
        let other = NoteSigner::from_seed("example.com/elsewhere", [9; 32]).unwrap();
        std::fs::write(&path, format!("{text}{}\n", other.to_skey())).unwrap();
        assert!(matches!(LogKeys::load(Some(&path), None), Err(LogKeyError::MixedOrigins { line: 3, .. })));
        assert!(matches!(LogKeys::load(Some(&path), Some("bad origin")), Err(LogKeyError::Origin(_))));
    }
}
