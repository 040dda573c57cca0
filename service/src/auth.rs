//! API keys and scopes.
//!
//! A key reads `wrnt_<id>_<secret>`: the id finds the stored record, the
//! secret is checked against its SHA-256 in constant time. Secrets are 256
//! random bits, so a fast hash is enough (no password stretching needed),
//! and only the hash is stored. Verified keys are cached for
//! [`CACHE_TTL`], so a revocation made from the CLI takes effect within it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use warrant_engine::Timestamp;

pub use crate::scope::Scope;
use crate::store::api_keys::StoredKey;
use crate::store::{Store, StoreError};

/// How long a verified key is trusted without looking at the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Keys expire after this long unless told otherwise (90 days by default; docs/cli.md#keys).
pub const DEFAULT_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(90);
const PREFIX: &str = "wrnt_";

/// Why a request's key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    Missing,
    #[error("malformed API key")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("the API key lacks the `{0}` scope")]
    Scope(&'static str),
}

impl KeyRefusal {
    /// A stable code for metrics and records.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_key",
            Self::Malformed => "malformed_key",
            Self::Unknown => "unknown_key",
            Self::Expired => "expired_key",
            Self::Revoked => "revoked_key",
            Self::Scope(_) => "missing_scope",
        }
    }

    /// 403 only when the key is valid but not allowed this; 401 otherwise.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Scope(_))
    }
}

/// A freshly minted key: `secret` is shown once and never stored.
#[derive(Debug)]
pub struct Minted {
    pub key: String,
    pub stored: StoredKey,
}

/// Why a key could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no randomness for a new key: {0}")]
    Randomness(getrandom::Error),
    #[error("the lifetime is too long")]
    LifetimeTooLong,
}

/// Why a key lifetime (`--expires-in`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("`{0}`: expected a number and a unit, like `90d`")]
    NotANumber(String),
    #[error("`{0}`: use a positive number of d, h, m or s")]
    OutOfRange(String),
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a key with `scopes`, valid for `lifetime` from `now`.
pub fn mint(
    scopes: &[Scope],
    lifetime: chrono::TimeDelta,
    description: &str,
    now: Timestamp,
) -> Result<Minted, MintError> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(MintError::Randomness)?;
    getrandom::fill(&mut secret).map_err(MintError::Randomness)?;
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    let mut names = scopes.to_vec();
    names.sort();
    names.dedup();
    let expires = now.checked_add(lifetime).ok_or(MintError::LifetimeTooLong)?;
    Ok(Minted {
        key: format!("{PREFIX}{id}_{secret}"),
        stored: StoredKey {
            id,
            secret_hash: hash(&secret),
            scopes: names,
            description: description.to_owned(),
            created_at: now,
            expires_at: expires,
            revoked_at: None,
        },
    })
}

/// Splits `wrnt_<id>_<secret>`.
pub fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_len = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_len(id, 16) && hex_len(secret, 64)).then_some((id, secret))
}

/// Checks keys against the store, with a short cache.
#[derive(Debug, Default)]
pub struct Authenticator {
    cache: Mutex<HashMap<String, (StoredKey, Instant)>>,
}

impl Authenticator {
    /// The key's id when `header` (the `Authorization` value) carries a valid,
    /// unexpired, unrevoked key with `scope`; why not otherwise. The id is
    /// returned with a refusal too when the key named one.
    pub async fn check(
        &self,
        store: &Store,
        header: Option<&str>,
        scope: Scope,
        now: Timestamp,
    ) -> Result<Result<String, (KeyRefusal, Option<String>)>, StoreError> {
        let Some(header) = header else { return Ok(Err((KeyRefusal::Missing, None))) };
        let token = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).unwrap_or("").trim();
        let Some((id, secret)) = parse(token) else { return Ok(Err((KeyRefusal::Malformed, None))) };
        let key = match self.cached(id) {
            Some(k) => k,
            None => match store.api_key(id).await? {
                Some(k) => {
                    if let Ok(mut c) = self.cache.lock() {
                        c.insert(id.to_owned(), (k.clone(), Instant::now()));
                    }
                    k
                }
                None => return Ok(Err((KeyRefusal::Unknown, Some(id.to_owned())))),
            },
        };
        let refuse = |r: KeyRefusal| Ok(Err((r, Some(id.to_owned()))));
        // Constant time over the hashes: the comparison leaks nothing about the secret.
        if !bool::from(hash(secret).as_bytes().ct_eq(key.secret_hash.as_bytes())) {
            return refuse(KeyRefusal::Unknown);
        }
        if key.revoked_at.is_some() {
            return refuse(KeyRefusal::Revoked);
        }
        if key.expires_at <= now {
            return refuse(KeyRefusal::Expired);
        }
        if !key.scopes.contains(&scope) {
            return refuse(KeyRefusal::Scope(scope.as_str()));
        }
        Ok(Ok(id.to_owned()))
    }

    fn cached(&self, id: &str) -> Option<StoredKey> {
        let cache = self.cache.lock().ok()?;
        let (key, at) = cache.get(id)?;
        (at.elapsed() < CACHE_TTL).then(|| key.clone())
    }
}

/// `90d`, `12h`, `30m`, `45s`.
pub fn parse_lifetime(text: &str) -> Result<chrono::TimeDelta, LifetimeError> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| LifetimeError::NotANumber(text.to_owned()))?;
    let delta = match unit {
        "d" => chrono::TimeDelta::try_days(n),
        "h" => chrono::TimeDelta::try_hours(n),
        "m" => chrono::TimeDelta::try_minutes(n),
        "s" => chrono::TimeDelta::try_seconds(n),
        _ => None,
    };
    delta.filter(|d| *d > chrono::TimeDelta::zero()).ok_or_else(|| LifetimeError::OutOfRange(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_and_store_only_a_hash() {
        let m =
            mint(&[Scope::Decide, Scope::Decide, Scope::AuditRead], DEFAULT_LIFETIME, "ci", Timestamp::now()).unwrap();
        let (id, secret) = parse(&m.key).unwrap();
        assert_eq!(id, m.stored.id);
        assert_eq!(m.stored.secret_hash, hash(secret));
        assert!(!m.stored.secret_hash.contains(secret));
        assert_eq!(m.stored.scopes, vec!["audit:read", "decide"]);
        assert!(parse("wrnt_short_x").is_none());
        assert!(parse(&m.key.replace("wrnt_", "")).is_none());
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("90d").unwrap(), chrono::TimeDelta::days(90));
        assert_eq!(parse_lifetime("12h").unwrap(), chrono::TimeDelta::hours(12));
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("d").is_err());
        assert!(parse_lifetime("5w").is_err());
    }
}
