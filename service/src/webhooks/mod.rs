//! Webhooks, both ways (docs/audit.md#webhooks).
//!
//! - Inbound, `POST /v1/webhooks/{source}` (`http/webhooks.rs`): an identity
//!   provider or warehouse tells us a token was revoked or refreshed, or a
//!   user deprovisioned. The raw body is [`verify`]d (Standard Webhooks or
//!   `sha256=`), the delivery id is refused if seen before, then the event is
//!   applied to the token store ([`inbound`]) and audited as
//!   `webhook.received`; anything refused is audited as `webhook.rejected`
//!   with its body redacted, and nothing of it is applied.
//! - Outbound ([`deliver`]): subscribers receive the audit records they
//!   subscribed to, signed the Standard Webhooks way, from the audit log
//!   itself as the persisted outbox.
//!
//! Sources, subscriptions and their secrets come from a file ([`config`]),
//! never from the database.

pub mod config;
pub mod deliver;
pub mod inbound;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

pub use config::{ConfigError, ParseError, Scheme, SecretError, Source, Subscription, UrlError, WebhookConfig};

use crate::audit::AuditLog;
use crate::store::Store;

/// The loaded configuration, as request handlers see it (through
/// `AppState::webhooks`; the default has
/// no sources, so every source is unknown).
#[derive(Debug, Clone, Default)]
pub struct Webhooks(Arc<WebhookConfig>);

impl Webhooks {
    pub fn new(config: WebhookConfig) -> Self {
        Self(Arc::new(config))
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.0.sources.get(name)
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.0
    }
}

/// Loads the webhooks file (none: no sources, no subscriptions) and starts
/// a delivery worker per subscription.
pub fn start(path: Option<&Path>, store: &Store, audit: &AuditLog) -> Result<Webhooks, ConfigError> {
    let config = match path {
        Some(p) => WebhookConfig::load(p)?,
        None => WebhookConfig::default(),
    };
    if !config.sources.is_empty() {
        let names: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        tracing::info!(sources = ?names, "webhook sources configured");
    }
    deliver::spawn(store, audit, &config.subscriptions);
    Ok(Webhooks::new(config))
}
