//! The HMAC keys that sign the log, by id.
//!
//! Keys rotate: new records are signed with the newest key, and old records
//! keep verifying with the key their `key_id` names, so a keyring holds every
//! key still needed for verification. A key may carry the `seq` from which
//! it signs (`rotate_from`); then a key signs only `seq`s from its own start
//! up to the next key's start, and a record signed outside that range fails
//! verification: a retired key that leaked cannot sign records after its
//! successor took over. Key material never leaves this type:
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
    #[error("key `{key_id}` starts at seq {from}, not after the key before it (from {previous})")]
    StartsTooEarly { key_id: String, from: u64, previous: u64 },
}

/// Why a MAC did not check out under a keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacCheck {
    UnknownKey,
    Mismatch,
    /// The key does not sign this `seq`: `(first, end)` is its range, `end`
    /// exclusive when known.
    OutOfRange(u64, Option<u64>),
}

/// Key id → HMAC-SHA256 key, and which id signs new records.
#[derive(Clone)]
pub struct Keyring {
    /// Keyed HMAC states, cloned per message (saves re-deriving the pads).
    keys: BTreeMap<String, HmacSha256>,
    /// Signing order: each key id with the `seq` it signs from, if known.
    order: Vec<(String, Option<u64>)>,
    current: String,
}

impl Keyring {
    /// A keyring whose only (and so current) key is `key_id`.
    pub fn new(key_id: impl Into<String>, secret: &[u8]) -> Result<Self, KeyringError> {
        let key_id = key_id.into();
        let state = keyed(&key_id, secret)?;
        Ok(Self {
            keys: BTreeMap::from([(key_id.clone(), state)]),
            order: vec![(key_id.clone(), Some(1))],
            current: key_id,
        })
    }

    /// Adds a key and makes it the one that signs new records, from a
    /// `seq` not declared (its range is open at the start).
    pub fn rotate(&mut self, key_id: impl Into<String>, secret: &[u8]) -> Result<(), KeyringError> {
        self.rotate_from(key_id, secret, None)
    }

    /// Adds a key that signs new records from `seq` on (when given); the
    /// key before it then signs only up to `seq - 1`.
    pub fn rotate_from(
        &mut self,
        key_id: impl Into<String>,
        secret: &[u8],
        from: Option<u64>,
    ) -> Result<(), KeyringError> {
        let key_id = key_id.into();
        if let Some(from) = from {
            let previous = self.order.iter().rev().find_map(|(_, f)| *f).unwrap_or(1);
            if from <= previous {
                return Err(KeyringError::StartsTooEarly { key_id, from, previous });
            }
        }
        self.insert(key_id.clone(), secret)?;
        self.order.push((key_id.clone(), from));
        self.current = key_id;
        Ok(())
    }

    /// The `seq`s `key_id` signs: from its declared start (1 for the first
    /// key, else 1 when undeclared) up to the next key's declared start
    /// (exclusive; `None` when the key is current or the next undeclared).
    pub fn range(&self, key_id: &str) -> Option<(u64, Option<u64>)> {
        let at = self.order.iter().position(|(id, _)| id == key_id)?;
        let from = self.order.get(at)?.1.unwrap_or(1);
        let end = self.order.get(at + 1).and_then(|(_, f)| *f);
        Some((from, end))
    }

    /// Whether `key_id` may sign `seq` (unknown keys may not).
    pub fn signs(&self, key_id: &str, seq: u64) -> bool {
        self.range(key_id).is_some_and(|(from, end)| seq >= from && end.is_none_or(|e| seq < e))
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

    /// [`check`](Self::check) for record `seq`, which `key_id` must sign
    /// (see [`range`](Self::range)); the range is checked after the MAC, so
    /// a forged record reports its forgery first.
    pub(crate) fn check_record(&self, key_id: &str, seq: u64, parts: &[&[u8]], tag: &Mac) -> Result<(), MacCheck> {
        self.check(key_id, parts, tag)?;
        match self.range(key_id) {
            Some((from, end)) if seq < from || end.is_some_and(|e| seq >= e) => Err(MacCheck::OutOfRange(from, end)),
            _ => Ok(()),
        }
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
