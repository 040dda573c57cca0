//! The witness's cosigner key: an Ed25519 key of type `0x04`
//! (`c2sp.org/tlog-cosignature`), in Go's note signer format, one line:
//!
//! ```text
//! PRIVATE+KEY+<name>+<key id>+<base64>
//! ```
//!
//! The name identifies the witness to the logs and clients that trust it
//! (`warrant witness public-key` prints the verifier key they are given).
//! With no file configured one is generated at
//! `$XDG_CONFIG_HOME/warrant/witness.key` (mode 0600) on first start, named
//! after `--name` or, without it, `warrant-witness.invalid/<random>`. A
//! witness with another key is another witness: there is no rotation, and
//! the name cannot change afterwards.

use std::path::{Path, PathBuf};

use warrant_engine::audit::note::is_key_name;
use warrant_engine::audit::{CosignerKey, NoteError};

use crate::keys::{config_path, create_private};

/// Why the witness key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum WitnessKeyError {
    #[error("cannot read the witness key file `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot create the witness key file `{path}`: {error}")]
    Create { path: String, error: std::io::Error },
    #[error("witness key file `{path}`, line {line}: {error}")]
    Malformed { path: String, line: usize, error: NoteError },
    #[error("the witness key file `{0}` holds no key")]
    Empty(String),
    #[error("the witness key file `{0}` holds more than one key: a witness has one")]
    Several(String),
    #[error("`--name {flag}` but the witness key is named `{key}`: a witness's name cannot change")]
    NameMismatch { flag: String, key: String },
    #[error(
        "`{0}` cannot name a witness: it must be non-empty, with no spaces and no `+` (e.g. `witness.example.com/w1`)"
    )]
    Name(String),
    #[error("no home directory to keep the generated witness key in: pass `--key-file`")]
    NoHome,
}

/// The key at `path`, or at the default path (generated on first use, named
/// `name`). A given `name` must be the key's.
pub fn load(path: Option<&Path>, name: Option<&str>) -> Result<CosignerKey, WitnessKeyError> {
    if let Some(n) = name
        && !is_key_name(n)
    {
        return Err(WitnessKeyError::Name(n.to_owned()));
    }
    let path = match path {
        Some(p) => p.to_owned(),
        None => {
            let path = default_path()?;
            if !path.exists() && generate(&path, name)? {
                tracing::warn!(path = %path.display(), "generated a new witness key; back it up: logs and clients know this witness by its public key (`warrant witness public-key`)");
            }
            path
        }
    };
    let key = read(&path)?;
    if let Some(n) = name
        && n != key.name()
    {
        return Err(WitnessKeyError::NameMismatch { flag: n.to_owned(), key: key.name().to_owned() });
    }
    Ok(key)
}

/// The key at `path` (default: the default path), never generating one.
pub fn open(path: Option<&Path>) -> Result<CosignerKey, WitnessKeyError> {
    match path {
        Some(p) => read(p),
        None => read(&default_path()?),
    }
}

fn default_path() -> Result<PathBuf, WitnessKeyError> {
    config_path("witness.key").ok_or(WitnessKeyError::NoHome)
}

fn read(path: &Path) -> Result<CosignerKey, WitnessKeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| WitnessKeyError::Read { path: shown.clone(), error })?;
    parse(&text, &shown)
}

/// Parses the key file's text: one signer key; blank lines and `#`
/// comments aside.
fn parse(text: &str, path: &str) -> Result<CosignerKey, WitnessKeyError> {
    let mut keys = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'));
    let (index, line) = keys.next().ok_or_else(|| WitnessKeyError::Empty(path.to_owned()))?;
    if keys.next().is_some() {
        return Err(WitnessKeyError::Several(path.to_owned()));
    }
    CosignerKey::parse(line.trim()).map_err(|error| WitnessKeyError::Malformed {
        path: path.to_owned(),
        line: index + 1,
        error,
    })
}

/// Writes a new key file named `name` (or `warrant-witness.invalid/<random>`)
/// at `path`, unless one exists. Returns whether this call created it.
pub fn generate(path: &Path, name: Option<&str>) -> Result<bool, WitnessKeyError> {
    let create = |error: std::io::Error| WitnessKeyError::Create { path: path.display().to_string(), error };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| create(std::io::Error::other(e)))?;
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            let mut tag = [0u8; 8];
            getrandom::fill(&mut tag).map_err(|e| create(std::io::Error::other(e)))?;
            format!("warrant-witness.invalid/{}", hex::encode(tag))
        }
    };
    let key = CosignerKey::from_seed(&name, seed).map_err(|_| WitnessKeyError::Name(name.clone()))?;
    let text =
        format!("# warrant witness cosigner key (C2SP tlog-cosignature, Ed25519); keep it secret\n{}\n", key.to_skey());
    create_private(path, &text).map_err(create)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_private_load_and_keep_their_name() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.key");
        assert!(generate(&path, Some("witness.example/w1")).unwrap());
        assert!(!generate(&path, Some("witness.example/w2")).unwrap(), "an existing file is kept");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let key = load(Some(&path), None).unwrap();
        assert_eq!(key.name(), "witness.example/w1");
        assert_eq!(open(Some(&path)).unwrap().verifier(), key.verifier());
        assert!(load(Some(&path), Some("witness.example/w1")).is_ok());
        assert!(matches!(load(Some(&path), Some("witness.example/w2")), Err(WitnessKeyError::NameMismatch { .. })));
        assert!(matches!(load(Some(&path), Some("bad name")), Err(WitnessKeyError::Name(_))));

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!format!("{key:?}").contains(text.lines().last().unwrap()), "Debug shows no private key");
        std::fs::write(&path, format!("{text}{text}")).unwrap();
        assert!(matches!(open(Some(&path)), Err(WitnessKeyError::Several(_))));
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(open(Some(&path)), Err(WitnessKeyError::Empty(_))));
        // A log's note key (type 0x01) is not a cosigner key.
        std::fs::write(&path, "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n")
            .unwrap();
        assert!(matches!(open(Some(&path)), Err(WitnessKeyError::Malformed { line: 1, .. })));

        let unnamed = dir.path().join("unnamed.key");
        assert!(generate(&unnamed, None).unwrap());
        assert!(open(Some(&unnamed)).unwrap().name().starts_with("warrant-witness.invalid/"));
    }
}
