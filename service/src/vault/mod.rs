//! The token vault (docs/vault.md): warrant holds each user's OAuth grant,
//! refreshes and revokes it at the identity provider, and hands a token
//! only to a request Cedar allows.
//!
//! `envelope.rs` seals tokens under a per-grant data key, `kek.rs` wraps
//! data keys under key-encryption keys kept outside the database,
//! `config.rs` reads which provider serves each connection, `provider.rs`
//! makes the OAuth calls (discovery, PKCE authorization, exchange,
//! refresh, revocation), `grant.rs` makes, imports and revokes grants, and
//! `refresh.rs` hands out a grant's access token, refreshing it one caller
//! at a time.

pub mod config;
pub mod envelope;
mod grant;
pub mod kek;
pub mod provider;
mod refresh;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::config::{ConnectionConfig, VaultConfig};
use self::envelope::{DataKey, EnvelopeError, Field};
use self::kek::{UnwrapError, VaultKeys, WrappedKey};
use self::provider::{DiscoveryError, Provider, ProviderError};
use crate::audit::{AuditLog, GrantJobError};
use crate::store::{Grant, Store, StoreError};

pub use grant::{Connected, NewTokens, Started};
pub use refresh::Revealed;

/// How long a pending authorization waits for the provider's callback.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Pending authorizations a user may have at once.
pub const MAX_PENDING_FLOWS: u32 = 5;
/// The access token's lifetime when the provider does not say.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(3600);

/// The vault, ready: its keys, its providers (discovered), and which
/// provider serves each connection.
pub struct Vault {
    keys: VaultKeys,
    providers: BTreeMap<String, Provider>,
    connections: BTreeMap<String, ConnectionConfig>,
    /// One refresh per grant at a time in this process: callers of a grant
    /// queue on its lock, and those after the first find its token fresh.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Grants whose provider failed transiently, and when to try again.
    backoff: refresh::Backoff,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("keys", &self.keys)
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("connections", &self.connections.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What went wrong in a vault operation, sorted by who can act on it.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("connection `{0}` has no vault provider (see the `--vault` file's `connections`)")]
    UnknownConnection(String),
    #[error("no grant `{0}`")]
    UnknownGrant(String),
    #[error("`{0}` already has {MAX_PENDING_FLOWS} pending authorizations; finish or let them expire (10 minutes)")]
    TooManyFlows(String),
    #[error("the authorization is unknown, used or expired; start again")]
    UnknownState,
    /// The user refused at the provider, or the provider refused the code.
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("grant `{id}` needs the user to connect again: {reason}")]
    ReauthRequired { id: String, reason: String },
    #[error("grant `{0}` is revoked")]
    Revoked(String),
    /// Another instance changed the grant meanwhile; nothing was stored.
    #[error("grant `{0}` changed meanwhile; try again")]
    Changed(String),
    /// The token store refused the grant's token event.
    #[error("{0}")]
    Conflict(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    #[error("vault storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the audit log could not record the change: {0}")]
    Audit(String),
    /// A ciphertext did not open: a wrong or missing key, or damage.
    #[error("a sealed value did not open: {0}")]
    Sealed(String),
}

impl From<EnvelopeError> for VaultError {
    fn from(e: EnvelopeError) -> Self {
        Self::Sealed(e.to_string())
    }
}

impl From<UnwrapError> for VaultError {
    fn from(e: UnwrapError) -> Self {
        Self::Sealed(e.to_string())
    }
}

impl From<GrantJobError> for VaultError {
    fn from(e: GrantJobError) -> Self {
        match e {
            GrantJobError::Changed(id) => Self::Changed(id),
            GrantJobError::Refused(why) => Self::Conflict(why),
            GrantJobError::Audit(e) => Self::Audit(e.to_string()),
        }
    }
}

impl From<ProviderError> for VaultError {
    /// Only the provider's classification crosses: never a token.
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Transient(why) => Self::Unavailable(why),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl Vault {
    /// Connects every provider of `config` (discovery), with `redirect_uri`
    /// as warrant's callback.
    pub async fn open(config: VaultConfig, keys: VaultKeys, redirect_uri: &str) -> Result<Self, DiscoveryError> {
        let http = provider::http_client()?;
        let mut providers = BTreeMap::new();
        for (name, p) in &config.providers {
            providers.insert(name.clone(), Provider::connect(name, p, redirect_uri, &http).await?);
        }
        Ok(Self {
            keys,
            providers,
            connections: config.connections,
            refreshing: Mutex::default(),
            backoff: refresh::Backoff::default(),
        })
    }

    pub fn keys(&self) -> &VaultKeys {
        &self.keys
    }

    /// The connection's configuration and its provider.
    fn provider_of(&self, connection: &str) -> Result<(&ConnectionConfig, &Provider), VaultError> {
        let config =
            self.connections.get(connection).ok_or_else(|| VaultError::UnknownConnection(connection.into()))?;
        let provider =
            self.providers.get(&config.provider).ok_or_else(|| VaultError::UnknownConnection(connection.into()))?;
        Ok((config, provider))
    }

    /// The grant's data key, unwrapped.
    fn data_key(&self, grant: &Grant) -> Result<DataKey, VaultError> {
        let wrapped = WrappedKey { kek_id: grant.kek_id.clone(), bytes: grant.data_key.clone() };
        Ok(self.keys.unwrap(&grant.id, &wrapped)?)
    }

    /// The grant's lock in this process.
    fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks nobody holds or waits on are dropped as the map grows, so
        // it stays as large as the grants being refreshed at once.
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }
}

/// Seals a grant's tokens under its data key: (access, refresh).
fn seal_tokens(
    key: &DataKey,
    id: &str,
    access: &str,
    refresh: Option<&str>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), VaultError> {
    let access = key.seal(id, Field::Access, access)?;
    let refresh = refresh.map(|r| key.seal(id, Field::Refresh, r)).transpose()?;
    Ok((access, refresh))
}

/// What every vault call works with: the store it reads grants from, and
/// the audit log whose writer changes them.
#[derive(Debug, Clone, Copy)]
pub struct Backing<'a> {
    pub store: &'a Store,
    pub audit: &'a AuditLog,
}
