//! `warrant serve --demo`: the small workspace every example in the README
//! runs against, so a first decision answers something other than "no such
//! user". The data (`service/demo/`: a group, users, two projects, a
//! warehouse connection, schemas, two OAuth tokens) fits the pack in
//! `policies/`; it goes into a database of its own, `warrant-demo/`, made
//! afresh at each start so every example answers as printed, through the
//! same paths the API uses (entities replaced, token events applied and
//! recorded). An API key holding every scope is written to
//! `warrant-demo/api-key` (mode 0600) for the examples to read.

use std::path::{Path, PathBuf};

use clap::ValueEnum as _;
use garde::Validate as _;
use warrant_engine::Timestamp;

use crate::audit::{Event, Kind};
use crate::auth::{MintError, mint};
use crate::http::tokens::{TokenEvent, record};
use crate::scope::Scope;
use crate::state::{AppState, ChangeError};
use crate::store::StoreError;

/// Where the demo keeps its database and API key, under the working directory.
pub const DIR: &str = "warrant-demo";
const DATABASE: &str = "warrant.db";
const API_KEY: &str = "api-key";

/// The demo's entities (Cedar entities JSON) and token events.
const ENTITIES: &str = include_str!("../demo/entities.json");
const TOKENS: &str = include_str!("../demo/tokens.json");

/// How long the demo key lives: the demo's data does not outlive a restart.
const KEY_LIFETIME_DAYS: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("`--demo` keeps its own database in `{DIR}/`; drop `--database-url` (or `WARRANT_DATABASE_URL`)")]
    DatabaseGiven,
    #[error("cannot make `{path}` afresh: {error}")]
    Reset { path: String, error: std::io::Error },
    #[error("the demo data does not parse: {0}")]
    Data(#[from] serde_json::Error),
    #[error("the demo entities do not fit the policy bundle (`--demo` is made for the pack in `policies/`): {0}")]
    Entities(ChangeError),
    #[error("demo token event for `{token}` refused: {message}")]
    Token { token: String, message: String },
    #[error("cannot mint the demo API key: {0}")]
    Mint(#[from] MintError),
    #[error("cannot store the demo API key: {0}")]
    Store(#[from] StoreError),
    #[error("cannot record the demo API key: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("cannot write `{path}`: {error}")]
    Write { path: String, error: std::io::Error },
}

/// Before the store opens: the demo database's URL, its previous files (and
/// the previous key's file) removed. `given` is the `--database-url` in
/// force, which must be the default: the demo never writes into a real
/// database.
pub fn database(given: &str) -> Result<String, DemoError> {
    if given != crate::config::DEFAULT_DATABASE_URL {
        return Err(DemoError::DatabaseGiven);
    }
    let dir = Path::new(DIR);
    for name in [DATABASE, "warrant.db-wal", "warrant.db-shm", API_KEY] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(DemoError::Reset { path: path.display().to_string(), error }),
        }
    }
    Ok(format!("sqlite://./{DIR}/{DATABASE}"))
}

/// Once the service has started on the demo database: loads the entities,
/// applies the token events, mints the key. Returns the key file's path.
pub async fn seed(state: &AppState) -> Result<PathBuf, DemoError> {
    let entities: Vec<serde_json::Value> = serde_json::from_str(ENTITIES)?;
    state.replace_entities(entities, "serve --demo").await.map_err(DemoError::Entities)?;
    let events: Vec<TokenEvent> = serde_json::from_str(TOKENS)?;
    for event in events {
        let token = event.token_id().to_owned();
        event.validate().map_err(|e| DemoError::Token { token: token.clone(), message: e.to_string() })?;
        record(state, event).await.map_err(|e| DemoError::Token { token, message: e.message().to_owned() })?;
    }

    let minted = mint(
        Scope::value_variants(),
        chrono::TimeDelta::days(KEY_LIFETIME_DAYS),
        "serve --demo: every scope",
        Timestamp::now(),
    )?;
    state.store().insert_api_key(&minted.stored).await?;
    let mut event = Event::new(Kind::ApiKeyCreated, "serve --demo");
    event.details.insert("key_id".into(), serde_json::json!(minted.stored.id));
    event.details.insert("scopes".into(), serde_json::json!(minted.stored.scopes));
    event.details.insert("expires_at".into(), serde_json::json!(minted.stored.expires_at));
    state.audit().append(event).await?;

    let path = Path::new(DIR).join(API_KEY);
    // Removed at start (`database`): a file still there is someone else's.
    match crate::keys::create_private(&path, &format!("{}\n", minted.key)) {
        Ok(true) => Ok(path),
        Ok(false) => Err(DemoError::Write {
            path: path.display().to_string(),
            error: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        }),
        Err(error) => Err(DemoError::Write { path: path.display().to_string(), error }),
    }
}
