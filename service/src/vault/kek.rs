//! The vault's key-encryption keys (docs/vault.md#at-rest): they wrap each
//! grant's data key (`envelope.rs`) and never enter the database.
//!
//! They come from a file (`--vault-key-file`) or `WARRANT_VAULT_KEY` (`,`
//! between lines), one key a line, the last one wraps new data keys and
//! the others still unwrap what they wrapped:
//!
//! ```text
//! # kek-id  key (64 hex digits: 256 bits)
//! v1 5f2c…
//! v2 9a01…
//! ```
//!
//! Rotation: add a line, restart (or reload), then re-wrap every data key
//! under the new one ([`VaultKeys::rewrap`]) while the service runs; the
//! tokens themselves are not touched. Once nothing is wrapped under an old
//! key its line can go. With nothing configured, a key is generated once at
//! `$XDG_CONFIG_HOME/warrant/vault.key`, mode 0600.

use std::path::Path;

use zeroize::Zeroizing;

use super::envelope::{self, DataKey, EnvelopeError, KEY_LEN};

/// The environment variable holding the keys when no file is given.
pub const VARIABLE: &str = "WARRANT_VAULT_KEY";

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("cannot read the vault key file `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot create the vault key file `{path}`: {error}")]
    Create { path: String, error: std::io::Error },
    #[error("vault keys, line {line}: {message}")]
    Malformed { line: usize, message: &'static str },
    #[error("vault keys, line {line}: the id `{id}` is used twice")]
    Duplicate { line: usize, id: String },
    #[error("no vault key: the key file or `{VARIABLE}` holds no key")]
    Empty,
    #[error("no home directory to keep the generated vault key in: pass `--vault-key-file`")]
    NoHome,
    #[error("no randomness for a vault key")]
    Randomness,
}

/// Why a wrapped data key could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// The key it was wrapped under is not configured (removed too early).
    #[error("the data key was wrapped under vault key `{0}`, which is not configured")]
    UnknownKek(String),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// A data key as stored: the key-encryption key's id and the wrapped bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub bytes: Vec<u8>,
}

/// Named key-encryption keys; the last one wraps. Never printed.
#[derive(Clone)]
pub struct VaultKeys {
    keys: Vec<(String, Zeroizing<[u8; KEY_LEN]>)>,
}

impl std::fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("VaultKeys").field("ids", &ids).finish_non_exhaustive()
    }
}

impl VaultKeys {
    /// From `WARRANT_VAULT_KEY`, else the file at `path`, else the default
    /// file, generated if missing.
    pub fn load(path: Option<&Path>) -> Result<Self, KekError> {
        if let Ok(text) = std::env::var(VARIABLE) {
            return Self::parse(&text.replace(',', "\n"));
        }
        let path = match path {
            Some(path) => path.to_owned(),
            None => {
                let path = crate::keys::config_path("vault.key").ok_or(KekError::NoHome)?;
                if !path.exists() && generate(&path)? {
                    tracing::warn!(path = %path.display(), "generated a new vault key; back it up: the tokens the vault holds cannot be read without it");
                }
                path
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|error| KekError::Read { path: path.display().to_string(), error })?;
        Self::parse(&text)
    }

    /// Lines `<id> <64 hex digits>`; blank lines and `#` comments skipped.
    pub fn parse(text: &str) -> Result<Self, KekError> {
        let mut keys: Vec<(String, Zeroizing<[u8; KEY_LEN]>)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |message| KekError::Malformed { line: line_no, message };
            let mut words = line.split_whitespace();
            let (Some(id), Some(hex_key), None) = (words.next(), words.next(), words.next()) else {
                return Err(malformed("want `<key-id> <64 hex digits>`"));
            };
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) || id.len() > 64 {
                return Err(malformed("a key id is 1 to 64 of `A-Z a-z 0-9 - _ .`"));
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(hex_key, key.as_mut_slice())
                .map_err(|_| malformed("a key is exactly 64 hex digits (256 bits)"))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(KekError::Duplicate { line: line_no, id: id.to_owned() });
            }
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            return Err(KekError::Empty);
        }
        Ok(Self { keys })
    }

    /// The id of the key that wraps new data keys.
    pub fn current_id(&self) -> &str {
        self.keys.last().map_or("", |(id, _)| id.as_str())
    }

    /// Whether the key `id` is configured (it can unwrap what it wrapped).
    pub fn has(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    /// Every configured key id, the current one last.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    fn key(&self, id: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| &**key)
    }

    /// Wraps grant `grant_id`'s data key under the current key.
    pub fn wrap(&self, grant_id: &str, data_key: &DataKey) -> Result<WrappedKey, EnvelopeError> {
        let (kek_id, kek) = self.keys.last().ok_or(EnvelopeError::Forged)?;
        let bytes = envelope::seal(kek, &envelope::data_key_aad(kek_id, grant_id), data_key.bytes())?;
        Ok(WrappedKey { kek_id: kek_id.clone(), bytes })
    }

    /// The data key of grant `grant_id`, as [`VaultKeys::wrap`] stored it.
    pub fn unwrap(&self, grant_id: &str, wrapped: &WrappedKey) -> Result<DataKey, UnwrapError> {
        let kek = self.key(&wrapped.kek_id).ok_or_else(|| UnwrapError::UnknownKek(wrapped.kek_id.clone()))?;
        let bytes = envelope::open(kek, &envelope::data_key_aad(&wrapped.kek_id, grant_id), &wrapped.bytes)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(EnvelopeError::Forged.into());
        }
        key.copy_from_slice(&bytes);
        Ok(DataKey::from_bytes(key))
    }

    /// Seals a pending authorization's PKCE verifier under the current key,
    /// bound to the flow's `state_hash`: `(kek id, sealed)`.
    pub fn seal_verifier(&self, state_hash: &str, verifier: &str) -> Result<(String, Vec<u8>), EnvelopeError> {
        let (kek_id, kek) = self.keys.last().ok_or(EnvelopeError::Forged)?;
        let sealed = envelope::seal(kek, &envelope::verifier_aad(kek_id, state_hash), verifier.as_bytes())?;
        Ok((kek_id.clone(), sealed))
    }

    /// The verifier [`VaultKeys::seal_verifier`] sealed for `state_hash`.
    pub fn open_verifier(
        &self,
        state_hash: &str,
        kek_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, UnwrapError> {
        let kek = self.key(kek_id).ok_or_else(|| UnwrapError::UnknownKek(kek_id.to_owned()))?;
        let bytes = envelope::open(kek, &envelope::verifier_aad(kek_id, state_hash), sealed)?;
        Ok(Zeroizing::new(String::from_utf8(bytes.to_vec()).map_err(|_| EnvelopeError::Forged)?))
    }

    /// `wrapped` under the current key, or `None` if it already is: the
    /// step of a rotation, one grant at a time.
    pub fn rewrap(&self, grant_id: &str, wrapped: &WrappedKey) -> Result<Option<WrappedKey>, UnwrapError> {
        if wrapped.kek_id == self.current_id() {
            return Ok(None);
        }
        let data_key = self.unwrap(grant_id, wrapped)?;
        Ok(Some(self.wrap(grant_id, &data_key)?))
    }
}

/// Writes a fresh key file, mode 0600, unless one exists. Returns whether
/// this call created it.
pub fn generate(path: &Path) -> Result<bool, KekError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut_slice()).map_err(|_| KekError::Randomness)?;
    let text = Zeroizing::new(format!(
        "# warrant vault keys: `<key-id> <64 hex digits>`; the last line wraps new data keys\nv1 {}\n",
        hex::encode(key.as_slice())
    ));
    crate::keys::create_private(path, &text)
        .map_err(|error| KekError::Create { path: path.display().to_string(), error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::envelope::Field;

    const A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn the_last_key_wraps_and_older_ones_still_unwrap() {
        let old = VaultKeys::parse(&format!("v1 {A}\n")).unwrap();
        let data_key = DataKey::generate().unwrap();
        let sealed = data_key.seal("g1", Field::Refresh, "rt-1").unwrap();
        let wrapped = old.wrap("g1", &data_key).unwrap();
        assert_eq!(wrapped.kek_id, "v1");

        let rotated = VaultKeys::parse(&format!("# rotated\nv1 {A}\n\nv2 {B}\n")).unwrap();
        assert_eq!(rotated.current_id(), "v2");
        let unwrapped = rotated.unwrap("g1", &wrapped).unwrap();
        assert_eq!(unwrapped.open("g1", Field::Refresh, &sealed).unwrap().as_str(), "rt-1");

        let rewrapped = rotated.rewrap("g1", &wrapped).unwrap().expect("wrapped under v1, so re-wrapped");
        assert_eq!(rewrapped.kek_id, "v2");
        assert_eq!(rotated.rewrap("g1", &rewrapped).unwrap(), None, "already current");
        let only_new = VaultKeys::parse(&format!("v2 {B}\n")).unwrap();
        let key = only_new.unwrap("g1", &rewrapped).unwrap();
        assert_eq!(key.open("g1", Field::Refresh, &sealed).unwrap().as_str(), "rt-1", "the token was not touched");
        assert_eq!(only_new.unwrap("g1", &wrapped).unwrap_err(), UnwrapError::UnknownKek("v1".into()));
    }

    #[test]
    fn a_wrapped_key_is_bound_to_its_grant_and_key_id() {
        let keys = VaultKeys::parse(&format!("v1 {A}\nv2 {B}\n")).unwrap();
        let wrapped = keys.wrap("g1", &DataKey::generate().unwrap()).unwrap();
        assert!(keys.unwrap("g2", &wrapped).is_err(), "moved to another grant's row");
        let relabelled = WrappedKey { kek_id: "v1".into(), ..wrapped };
        assert!(keys.unwrap("g1", &relabelled).is_err(), "claimed by another key");
    }

    #[test]
    fn bad_key_files_say_which_line() {
        for (text, want) in [
            ("v1\n", "line 1"),
            (&format!("v1 {A}\nv2 abcd\n") as &str, "line 2: a key is exactly 64 hex digits"),
            (&format!("v1 {A}\nv1 {B}\n"), "line 2: the id `v1` is used twice"),
            (&format!("bad/id {A}\n"), "line 1: a key id"),
            ("# nothing\n\n", "holds no key"),
        ] {
            let error = VaultKeys::parse(text).unwrap_err().to_string();
            assert!(error.contains(want), "{text:?}: {error}");
        }
    }

    #[test]
    fn keys_never_print() {
        let keys = VaultKeys::parse(&format!("v1 {A}\n")).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("v1") && !shown.contains(&A[..16]), "{shown}");
    }

    #[test]
    fn a_generated_key_file_is_private_and_loads() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warrant/vault.key");
        assert!(generate(&path).unwrap());
        assert!(!generate(&path).unwrap(), "an existing file is kept");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let keys = VaultKeys::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(keys.current_id(), "v1");
    }
}
