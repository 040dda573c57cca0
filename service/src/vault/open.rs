//! The vault, opened: its keys, its providers (discovered), which provider
//! serves each connection, and the per-grant locks and backoff its
//! refreshes share; what every vault operation (`grant.rs`, `refresh.rs`)
//! works with.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use warrant_engine::Timestamp;

use super::backoff::Backoff;
use super::config::{ConnectionConfig, VaultConfig};
use super::envelope::{DataKey, Field};
use super::error::VaultError;
use super::kek::{VaultKeys, WrappedKey};
use super::provider::{self, DiscoveryError, Provider};
use crate::audit::AuditLog;
use crate::store::{Grant, Store};

/// How long a pending authorization waits for the provider's callback.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Pending authorizations a user may have at once.
pub const MAX_PENDING_FLOWS: u32 = 5;
/// The access token's lifetime when the provider does not say.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(3600);

/// The vault, ready: its keys, its providers (discovered), and which
/// provider serves each connection.
pub struct Vault {
    /// Replaced whole by [`Vault::replace_keys`] (SIGHUP).
    keys: RwLock<Arc<VaultKeys>>,
    providers: BTreeMap<String, Provider>,
    connections: BTreeMap<String, ConnectionConfig>,
    /// One refresh per grant at a time in this process: callers of a grant
    /// queue on its lock, and those after the first find its token fresh.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Grants whose provider failed transiently, and when to try again.
    pub(super) backoff: Backoff,
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
            keys: RwLock::new(Arc::new(keys)),
            providers,
            connections: config.connections,
            refreshing: Mutex::default(),
            backoff: Backoff::default(),
        })
    }

    /// The key-encryption keys in use now.
    pub fn keys(&self) -> Arc<VaultKeys> {
        Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Uses `keys` from now on (a rotation's first step: a key file with a
    /// new last line, re-read on SIGHUP), unless a grant in `store` is
    /// wrapped under a key `keys` lacks: then the keys in use stay, and the
    /// answer names the missing key.
    pub async fn replace_keys(&self, keys: VaultKeys, store: &Store) -> Result<(), VaultError> {
        check_keys(&keys, store).await?;
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }

    /// The connection's configuration and its provider.
    pub(super) fn provider_of(&self, connection: &str) -> Result<(&ConnectionConfig, &Provider), VaultError> {
        let config =
            self.connections.get(connection).ok_or_else(|| VaultError::UnknownConnection(connection.into()))?;
        let provider =
            self.providers.get(&config.provider).ok_or_else(|| VaultError::UnknownConnection(connection.into()))?;
        Ok((config, provider))
    }

    /// The longest refresh skew of any provider.
    pub fn longest_skew(&self) -> Duration {
        self.providers.values().map(Provider::refresh_skew).max().unwrap_or_default()
    }

    /// The grant's data key, unwrapped.
    pub(super) fn data_key(&self, grant: &Grant) -> Result<DataKey, VaultError> {
        let wrapped = WrappedKey { kek_id: grant.kek_id.clone(), bytes: grant.data_key.clone() };
        Ok(self.keys().unwrap(&grant.id, &wrapped)?)
    }

    /// The grant's lock in this process.
    pub(super) fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks nobody holds or waits on are dropped as the map grows, so
        // it stays as large as the grants being refreshed at once.
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }
}

/// Refuses `keys` if some grant in `store` is wrapped under a key it lacks
/// (those grants could not be read): at start and on every key reload.
pub async fn check_keys(keys: &VaultKeys, store: &Store) -> Result<(), VaultError> {
    for (kek_id, grants) in store.grants_per_kek().await? {
        if !keys.has(&kek_id) {
            return Err(VaultError::MissingKek { kek_id, grants });
        }
    }
    Ok(())
}

/// Seals a grant's tokens under its data key: (access, refresh).
pub(super) fn seal_tokens(
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

/// `now + wait`, or `now` if that is not a time.
pub(super) fn after(now: Timestamp, wait: Duration) -> Timestamp {
    chrono::TimeDelta::from_std(wait).ok().and_then(|d| now.checked_add(d)).unwrap_or(now)
}
