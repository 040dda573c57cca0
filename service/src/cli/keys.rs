//! `warrant keys create|list|revoke`. Creation and revocation are audited.

use std::process::ExitCode;

use warrant_engine::Timestamp;

use crate::audit::{AuditError, AuditLog, Event, Kind};
use crate::auth::{LifetimeError, MintError, Scope, mint, parse_lifetime};
use crate::config::{AuditLogArgs, KeysCommand};
use crate::keys::{AuditKeys, KeyError};
use crate::store::{Store, StoreError};

/// Why `warrant keys …` could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum KeysCommandError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot open `{url}`: {error}")]
    Open { url: String, error: StoreError },
    #[error(transparent)]
    Lifetime(#[from] LifetimeError),
    #[error(transparent)]
    Mint(#[from] MintError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("no active key `{0}`")]
    NoActiveKey(String),
}

pub fn run(command: KeysCommand) -> Result<ExitCode, KeysCommandError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(KeysCommandError::Runtime)?;
    runtime.block_on(async {
        match command {
            KeysCommand::Create { log, scopes, expires_in, description } => {
                create(log, &scopes, &expires_in, &description).await
            }
            KeysCommand::List { log } => list(log).await,
            KeysCommand::Revoke { log, id } => revoke(log, &id).await,
        }
    })
}

async fn open(log: &AuditLogArgs) -> Result<(Store, AuditKeys), KeysCommandError> {
    let keys = AuditKeys::load(log.audit_key_file.as_deref())?;
    let store = Store::open(&log.database_url)
        .await
        .map_err(|error| KeysCommandError::Open { url: log.database_url.clone(), error })?;
    Ok((store, keys))
}

async fn create(
    log: AuditLogArgs,
    scopes: &[Scope],
    expires_in: &str,
    description: &str,
) -> Result<ExitCode, KeysCommandError> {
    let lifetime = parse_lifetime(expires_in)?;
    let (store, keys) = open(&log).await?;
    let minted = mint(scopes, lifetime, description, Timestamp::now())?;
    store.insert_api_key(&minted.stored).await?;
    let mut event = Event::new(Kind::ApiKeyCreated, "cli");
    event.details.insert("key_id".into(), serde_json::json!(minted.stored.id));
    event.details.insert("scopes".into(), serde_json::json!(minted.stored.scopes));
    event.details.insert("expires_at".into(), serde_json::json!(minted.stored.expires_at));
    AuditLog::append_direct(&store, &keys, event).await?;
    eprintln!(
        "created key {} with scopes {} (expires {}); it is shown once:",
        minted.stored.id,
        minted.stored.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        minted.stored.expires_at
    );
    println!("{}", minted.key);
    Ok(ExitCode::SUCCESS)
}

async fn list(log: AuditLogArgs) -> Result<ExitCode, KeysCommandError> {
    let (store, _) = open(&log).await?;
    let now = Timestamp::now();
    for key in store.api_keys().await? {
        let state = if key.revoked_at.is_some() {
            "revoked"
        } else if key.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        println!(
            "{}  {:8}  {:40}  expires {}  {}",
            key.id,
            state,
            key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
            key.expires_at,
            key.description
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(log: AuditLogArgs, id: &str) -> Result<ExitCode, KeysCommandError> {
    let (store, keys) = open(&log).await?;
    if !store.revoke_api_key(id, Timestamp::now()).await? {
        return Err(KeysCommandError::NoActiveKey(id.to_owned()));
    }
    let mut event = Event::new(Kind::ApiKeyRevoked, "cli");
    event.details.insert("key_id".into(), serde_json::json!(id));
    AuditLog::append_direct(&store, &keys, event).await?;
    eprintln!("revoked key {id}; running services stop accepting it within a second");
    Ok(ExitCode::SUCCESS)
}
