//! Envelope encryption of the tokens the vault holds (docs/vault.md#at-rest).
//!
//! Each grant has its own data key (256 random bits). Its access and refresh
//! tokens are sealed with it (AES-256-GCM, a random 96-bit nonce per
//! sealing), and the data key is stored wrapped (AES-256-GCM again) by a
//! key-encryption key that never enters the database (`kek.rs`). What
//! each ciphertext belongs to is its associated data, so a ciphertext moved
//! to another grant's row, or from the refresh column to the access column,
//! does not open:
//!
//! - a wrapped data key: `warrant/vault/data-key/v1`, the key-encryption
//!   key's id, the grant id;
//! - a sealed token: `warrant/vault/token/v1`, the grant id, the field
//!   (`access` or `refresh`).
//!
//! Stored form, both: `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`.
//!
//! The AEAD is aws-lc-rs's, already linked for TLS (rustls' provider): one
//! implementation of AES-GCM in the binary, rather than a second from
//! another crate.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Bytes of a key: AES-256.
pub const KEY_LEN: usize = 32;
/// Bytes the tag adds to a sealed value.
const TAG_LEN: usize = 16;

/// Why a value could not be sealed or opened. Says nothing of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("no randomness for a key or nonce")]
    Randomness,
    #[error("a stored ciphertext is {0} bytes, too short to hold a nonce and a tag")]
    Truncated(usize),
    /// The wrong key, the wrong grant or field, or altered bytes: AES-GCM
    /// cannot tell them apart, and neither should an attacker.
    #[error("a stored ciphertext does not open: altered, or not this grant's")]
    Forged,
}

/// Which of a grant's tokens a ciphertext holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Access,
    Refresh,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A grant's data key, in memory only while it is used (zeroed on drop).
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    /// A new random data key, for a new grant.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(key.as_mut_slice()).map_err(|_| EnvelopeError::Randomness)?;
        Ok(Self(key))
    }

    pub(super) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Seals `token` as grant `grant_id`'s `field`.
    pub fn seal(&self, grant_id: &str, field: Field, token: &str) -> Result<Vec<u8>, EnvelopeError> {
        seal(self.bytes(), &token_aad(grant_id, field), token.as_bytes())
    }

    /// Opens what [`DataKey::seal`] sealed for the same grant and field.
    pub fn open(&self, grant_id: &str, field: Field, sealed: &[u8]) -> Result<Zeroizing<String>, EnvelopeError> {
        let bytes = open(self.bytes(), &token_aad(grant_id, field), sealed)?;
        // INVARIANT: only `seal` of a `&str` made these bytes; anything else
        // failed authentication above.
        String::from_utf8(bytes.to_vec()).map(Zeroizing::new).map_err(|_| EnvelopeError::Forged)
    }
}

fn token_aad(grant_id: &str, field: Field) -> Vec<u8> {
    aad(&["warrant/vault/token/v1", grant_id, field.as_str()])
}

/// The associated data a wrapped data key is bound to.
pub(super) fn data_key_aad(kek_id: &str, grant_id: &str) -> Vec<u8> {
    aad(&["warrant/vault/data-key/v1", kek_id, grant_id])
}

/// The associated data a pending authorization's sealed PKCE verifier is
/// bound to.
pub(super) fn verifier_aad(kek_id: &str, state_hash: &str) -> Vec<u8> {
    aad(&["warrant/vault/pkce-verifier/v1", kek_id, state_hash])
}

/// Parts joined with NUL, which none of them may hold (ids are printable),
/// so two different lists never make the same bytes.
fn aad(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

/// `nonce ‖ AES-256-GCM(key, plaintext, aad)`.
pub(super) fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let key = less_safe_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| EnvelopeError::Randomness)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
        .map_err(|_| EnvelopeError::Randomness)?;
    out.extend_from_slice(&in_out);
    Ok(out)
}

/// The plaintext of `sealed`, if it was sealed with `key` and `aad`.
pub(super) fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Truncated(sealed.len()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Forged)?;
    let key = less_safe_key(key)?;
    let mut in_out = Zeroizing::new(ciphertext.to_vec());
    let plaintext = key.open_in_place(nonce, Aad::from(aad), &mut in_out).map_err(|_| EnvelopeError::Forged)?;
    Ok(Zeroizing::new(plaintext.to_vec()))
}

fn less_safe_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey, EnvelopeError> {
    // INVARIANT: a 32-byte key is what AES-256-GCM takes; the error is
    // unreachable, and reported as a forgery rather than a panic.
    UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| EnvelopeError::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ver:1-hint:42-ETMsDgAAAZb…refresh";

    #[test]
    fn a_token_opens_only_as_the_grant_and_field_it_was_sealed_for() {
        let key = DataKey::generate().unwrap();
        let sealed = key.seal("g1", Field::Refresh, TOKEN).unwrap();
        assert_eq!(key.open("g1", Field::Refresh, &sealed).unwrap().as_str(), TOKEN);
        assert!(!sealed.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the token is not in clear");
        assert_eq!(key.open("g2", Field::Refresh, &sealed), Err(EnvelopeError::Forged), "another grant's row");
        assert_eq!(key.open("g1", Field::Access, &sealed), Err(EnvelopeError::Forged), "another column");
        let other = DataKey::generate().unwrap();
        assert_eq!(other.open("g1", Field::Refresh, &sealed), Err(EnvelopeError::Forged), "another key");
    }

    #[test]
    fn altered_or_truncated_ciphertexts_do_not_open() {
        let key = DataKey::generate().unwrap();
        let sealed = key.seal("g1", Field::Access, TOKEN).unwrap();
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert_eq!(key.open("g1", Field::Access, &altered), Err(EnvelopeError::Forged), "byte {i}");
        }
        assert_eq!(key.open("g1", Field::Access, &sealed[..20]), Err(EnvelopeError::Truncated(20)));
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let key = DataKey::generate().unwrap();
        let (a, b) = (key.seal("g", Field::Access, TOKEN).unwrap(), key.seal("g", Field::Access, TOKEN).unwrap());
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(a.len(), NONCE_LEN + TOKEN.len() + TAG_LEN);
    }

    #[test]
    fn associated_data_parts_cannot_run_into_each_other() {
        assert_ne!(aad(&["a", "bc"]), aad(&["ab", "c"]));
    }

    #[test]
    fn a_data_key_never_prints() {
        let key = DataKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "DataKey(…)");
    }
}
