//! `warrant vault rewrap`: a key rotation's second step
//! (docs/vault.md#rotating-the-key-encryption-key), run beside the service
//! against its database, and audited as `vault.rewrapped`.

use std::process::ExitCode;

use serde_json::json;

use crate::audit::{AuditError, AuditLog, Event, Kind};
use crate::config::VaultCommand;
use crate::keys::{AuditKeys, KeyError};
use crate::store::{Store, StoreError};
use crate::vault::kek::{KekError, VaultKeys};
use crate::vault::rewrap::rewrap_all;

/// Why `warrant vault …` could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum VaultCommandError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    VaultKeys(#[from] KekError),
    #[error("cannot open `{url}`: {error}")]
    Open { url: String, error: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

pub fn run(command: VaultCommand) -> Result<ExitCode, VaultCommandError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(VaultCommandError::Runtime)?;
    runtime.block_on(async {
        match command {
            VaultCommand::Rewrap { log, vault_key_file } => {
                let audit_keys = AuditKeys::load(log.audit_key_file.as_deref())?;
                let keys = VaultKeys::load(vault_key_file.as_deref())?;
                let store = Store::open_existing(&log.database_url)
                    .await
                    .map_err(|error| VaultCommandError::Open { url: log.database_url.clone(), error })?;
                rewrap(&store, &audit_keys, &keys).await
            }
        }
    })
}

async fn rewrap(store: &Store, audit_keys: &AuditKeys, keys: &VaultKeys) -> Result<ExitCode, VaultCommandError> {
    let done = rewrap_all(store, keys).await?;
    let mut event = Event::new(Kind::VaultRewrapped, "cli");
    for (name, value) in [
        ("current", json!(done.current)),
        ("rewrapped", json!(done.rewrapped)),
        ("unchanged", json!(done.unchanged)),
        ("busy", json!(done.busy.len())),
        ("failed", json!(done.failed.len())),
        ("before", json!(done.before)),
        ("after", json!(done.after)),
    ] {
        event.details.insert(name.into(), value);
    }
    AuditLog::append_direct(store, audit_keys, event).await?;

    let per_key = |counts: &std::collections::BTreeMap<String, i64>| {
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    };
    eprintln!(
        "re-wrapped {} grant(s) under vault key `{}`; {} already were",
        done.rewrapped, done.current, done.unchanged
    );
    eprintln!("grants per key before: {}; after: {}", per_key(&done.before), per_key(&done.after));
    for id in &done.busy {
        eprintln!("left for another run: grant `{id}` (a refresh in flight, or changing while re-wrapped)");
    }
    for (id, why) in &done.failed {
        eprintln!("not re-wrapped: grant `{id}`: {why}");
    }
    Ok(if done.complete() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
