//! The HMAC keys that sign the log, by id.
//!
//! Keys rotate: new records are signed with the newest key, and old records
//! keep verifying with the key their `key_id` names, so a keyring holds every
//! key still needed for verification. Key material never leaves this type:
//! it is not in `Debug` output, not returned by any accessor, and held only
//! as a keyed HMAC state.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use super::record::Mac;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted: 256 bits, HMAC-SHA256's full strength.
pub const MIN_SECRET_LEN: usize = 32;

/// The longest key id accepted; ids are stored in every record.
const MAX_KEY_ID_LEN: usize = 64;

/// Why a key could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("invalid key id `{0}`: use 1 to 64 characters among letters, digits, `.`, `_`, `-` and `:`")]
    InvalidKeyId(String),
    #[error("key id `{0}` is already in the keyring")]
    DuplicateKeyId(String),
    #[error("the secret of key `{key_id}` has {len} bytes: use at least {MIN_SECRET_LEN} random bytes")]
    WeakSecret { key_id: String, len: usize },
}

/// Why a MAC did not check out under a keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacCheck {
    UnknownKey,
    Mismatch,
}

/// Key id → HMAC-SHA256 key, and which id signs new records.
#[derive(Clone)]
pub struct Keyring {
    /// Keyed HMAC states, cloned per message (saves re-deriving the pads).
    keys: BTreeMap<String, HmacSha256>,
    current: String,
}

impl Keyring {
    /// A keyring whose only (and so current) key is `key_id`.
    pub fn new(key_id: impl Into<String>, secret: &[u8]) -> Result<Self, KeyringError> {
        let key_id = key_id.into();
        let state = keyed(&key_id, secret)?;
        Ok(Self { keys: BTreeMap::from([(key_id.clone(), state)]), current: key_id })
    }

    /// Adds a key and makes it the one that signs new records.
    pub fn rotate(&mut self, key_id: impl Into<String>, secret: &[u8]) -> Result<(), KeyringError> {
        let key_id = key_id.into();
        self.insert(key_id.clone(), secret)?;
        self.current = key_id;
        Ok(())
    }

    /// Adds a key that only verifies: records it signed before a rotation.
    pub fn add_retired(&mut self, key_id: impl Into<String>, secret: &[u8]) -> Result<(), KeyringError> {
        self.insert(key_id.into(), secret)
    }

    /// The id new records and checkpoints are signed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Every key id held, in byte order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    fn insert(&mut self, key_id: String, secret: &[u8]) -> Result<(), KeyringError> {
        if self.keys.contains_key(&key_id) {
            return Err(KeyringError::DuplicateKeyId(key_id));
        }
        let state = keyed(&key_id, secret)?;
        self.keys.insert(key_id, state);
        Ok(())
    }

    /// HMAC of the concatenated `parts` under the current key.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> (&str, Mac) {
        let tag = match self.keys.get(&self.current) {
            Some(state) => tag_of(state.clone(), parts),
            // INVARIANT: `current` is always a key of `keys` (set only after
            // a successful insert). Unreachable, but a zero tag would fail
            // every verification rather than pass one.
            None => Mac::ZERO,
        };
        (&self.current, tag)
    }

    /// Checks `tag` against the HMAC of `parts` under `key_id`, in constant
    /// time.
    pub(crate) fn check(&self, key_id: &str, parts: &[&[u8]], tag: &Mac) -> Result<(), MacCheck> {
        let mut state = self.keys.get(key_id).ok_or(MacCheck::UnknownKey)?.clone();
        for part in parts {
            state.update(part);
        }
        state.verify_slice(tag.as_bytes()).map_err(|_| MacCheck::Mismatch)
    }
}

impl fmt::Debug for Keyring {
    /// Ids only: key material must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("current", &self.current).field("key_ids", &self.keys.keys()).finish()
    }
}

fn keyed(key_id: &str, secret: &[u8]) -> Result<HmacSha256, KeyringError> {
    let id_ok = !key_id.is_empty()
        && key_id.len() <= MAX_KEY_ID_LEN
        && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if !id_ok {
        return Err(KeyringError::InvalidKeyId(key_id.to_owned()));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyringError::WeakSecret { key_id: key_id.to_owned(), len: secret.len() });
    }
    // HMAC takes keys of any length, so this cannot fail; report it as weak
    // rather than panic if it ever did.
    HmacSha256::new_from_slice(secret)
        .map_err(|_| KeyringError::WeakSecret { key_id: key_id.to_owned(), len: secret.len() })
}

/// HMAC-SHA256 of the concatenated `parts` under a keyed state.
pub(crate) fn tag_of(mut state: HmacSha256, parts: &[&[u8]]) -> Mac {
    for part in parts {
        state.update(part);
    }
    Mac::from_bytes(state.finalize().into_bytes().into())
}
