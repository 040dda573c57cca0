//! `warrant serve`: open the store, load the bundle, serve HTTP until
//! SIGTERM/SIGINT; reload the policies directory on SIGHUP.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use warrant_engine::Undeclared;

use crate::checkpoints::{self, PublishError};
use crate::config::{LogFormat, ServeArgs};
use crate::http::transport::{self, TransportLimits};
use crate::http::{self, HttpConfig};
use crate::keys::{AuditKeys, KeyError};
use crate::log_keys::{LogKeyError, LogKeys};
use crate::rules::RuleHost;
use crate::state::{AppState, ChangeError};
use crate::store::{Store, StoreError};
use crate::tls::{ServerTls, TlsFileError};
use crate::webhooks::ConfigError;

/// Why `warrant serve` could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    LogKeys(#[from] LogKeyError),
    #[error("cannot publish the log's first checkpoint: {0}")]
    Publish(PublishError),
    #[error("cannot open the store: {0}")]
    Store(StoreError),
    /// One diagnostic per line, each `file:line:col: message`.
    #[error("cannot load the policy bundle `{}`:\n{}", path.display(), indented(error))]
    Bundle { path: PathBuf, error: warrant_engine::BundleError },
    #[error("cannot start: {0}")]
    Start(ChangeError),
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Webhooks(#[from] ConfigError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    #[error("server error: {0}")]
    Server(std::io::Error),
    #[error("cannot serve TLS: {0}")]
    Tls(Box<TlsFileError>),
    #[error(transparent)]
    Witness(#[from] crate::witnessing::WitnessArgError),
    #[error("token vault: {0}")]
    Vault(String),
    #[error("demo: {0}")]
    Demo(#[from] crate::demo::DemoError),
}

fn indented(error: &warrant_engine::BundleError) -> String {
    let lines: Vec<String> = error.diagnostics().iter().map(|d| format!("  {d}")).collect();
    lines.join("\n")
}

pub fn run(args: ServeArgs) -> Result<ExitCode, ServeError> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServeError::Runtime)?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(mut args: ServeArgs) -> Result<(), ServeError> {
    if args.demo {
        args.database_url = crate::demo::database(&args.database_url)?;
    }
    let (witnesses, quorum) = crate::witnessing::configure(&args.witnesses, args.witness_quorum)?;
    let keys = AuditKeys::load(args.audit_key_file.as_deref())?;
    let log_keys = Arc::new(LogKeys::load(args.log_key_file.as_deref(), args.log_origin.as_deref())?);
    let store = Store::open(&args.database_url).await.map_err(ServeError::Store)?;
    if keys.rotation_unbounded() {
        let next = store.audit_head().await.ok().flatten().map_or(1, |(seq, _)| seq + 1);
        tracing::warn!(
            key_id = keys.current_id(),
            "the current audit key has no `from=`, so retired keys can still sign: if it has signed nothing yet, append `from={next}` to its line in the key file; otherwise the seq of the first record it signed"
        );
    }
    let workers = args.rule_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let cache = args.rule_cache.clone().or_else(RuleHost::default_cache_dir);
    // Rules' log lines are redacted with the audit log's key, so a token a
    // rule logs has the digest an auditor searches the log for.
    let rules = RuleHost::new(cache, workers, Some(keys.redactor().clone()))
        .with_slot_wait(Duration::from_millis(args.rule_slot_wait_ms.max(1)))
        .with_cache_key(keys.derived("rule-cache"));
    let state = AppState::start(store, keys, args.policies.clone(), args.audit_decisions, rules).await.map_err(
        |e| match e {
            ChangeError::Bundle(error) => ServeError::Bundle { path: args.policies.clone(), error },
            other => ServeError::Start(other),
        },
    )?;
    if args.demo {
        let key = crate::demo::seed(&state).await?;
        tracing::info!(
            key_file = %key.display(),
            "serving the demo workspace (service/demo/) from {}, made afresh at this start; an API key with every scope is in {}: KEY=$(cat {})",
            crate::demo::DIR,
            key.display(),
            key.display()
        );
    } else if state.store().api_keys().await.map(|k| k.is_empty()).unwrap_or(false) {
        // Once, through the log: on a terminal with `--log-format text` it
        // reads as a sentence, and a JSON log keeps one line per event.
        tracing::warn!(
            "no API keys yet: every endpoint but /healthz, /readyz and metadata answers 401; create one with `warrant keys create --scope decide --scope events:write --scope audit:read --scope policy:admin`"
        );
    }
    let snapshot = state.snapshot();
    tracing::info!(
        digest = snapshot.bundle.digest(),
        policies = snapshot.bundle.policy_count(),
        entities = snapshot.entities.len(),
        "policy bundle active"
    );
    log_warnings(snapshot.bundle.warnings());

    // Registered before the socket is bound: a SIGHUP that arrives once we are
    // reachable must reload, never kill the process (the default action).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(ServeError::Signal)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(ServerTls::load(cert, key).map_err(ServeError::Tls)?)),
        _ => None,
    };
    tokio::spawn(reload_on_sighup(state.clone(), tls.clone(), hangups));
    tokio::spawn(sync_with_store(state.clone(), Duration::from_millis(args.sync_interval_ms.max(50))));
    // A checkpoint of the log as it stands before anyone can read one.
    checkpoints::publish(state.store(), state.audit(), &log_keys).await.map_err(ServeError::Publish)?;
    tracing::info!(origin = log_keys.origin(), key = %log_keys.current().verifier(), "log checkpoints signed");
    let interval = args.checkpoint_interval;
    tokio::spawn(checkpoints::publish_loop(state.store().clone(), state.audit().clone(), log_keys, interval));
    crate::witnessing::start(witnesses, state.store(), state.audit(), interval);
    let summaries = Duration::from_millis(args.rejection_summary_interval_ms.max(100));
    tokio::spawn(summarise_rejections(state.clone(), summaries));

    // Webhook sources for the handlers; a delivery worker per subscription.
    let webhooks = crate::webhooks::start(args.webhooks.as_deref(), state.store(), state.audit())?;
    let listener =
        TcpListener::bind(args.listen).await.map_err(|error| ServeError::Listen { addr: args.listen, error })?;
    let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            tracing::warn!(%addr, "listening on every interface without --public-url: the AuthZEN metadata names this unroutable address; set --public-url");
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    });
    let config = HttpConfig {
        max_body_bytes: args.max_body_bytes,
        max_bulk_body_bytes: args.max_bulk_body_bytes,
        public_url,
        refusals_per_address: args.refusals_per_address,
        rate_limit_per_address: args.rate_limit_per_address,
        rate_limit_per_key: args.rate_limit_per_key,
        log_read_scope: args.log_read_scope,
        witness_quorum: quorum,
    };
    let undeclared = if args.strict_context { Undeclared::Refuse } else { Undeclared::Ignore };
    let mut serving = state
        .clone()
        .with_webhooks(webhooks)
        .with_request_overrides(args.request_overrides)
        .with_undeclared(undeclared);
    if let Some(file) = &args.vault {
        let vault =
            Arc::new(open_vault(file, args.vault_key_file.as_deref(), &config.public_url, state.store()).await?);
        let (store, audit) = (state.store().clone(), state.audit().clone());
        let hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(ServeError::Signal)?;
        let key_file = args.vault_key_file.clone();
        tokio::spawn(reload_vault_keys_on_sighup(Arc::clone(&vault), key_file, store.clone(), hangups));
        tokio::spawn(crate::vault::refresh_loop(Arc::clone(&vault), store, audit, args.vault_refresh_every));
        serving = serving.with_vault(vault);
    }
    let app = http::app(serving, config);
    tracing::info!(%addr, tls = tls.is_some(), "listening");

    transport::raise_descriptor_limit();
    let limits = TransportLimits {
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
        max_connections: transport::connection_cap(args.max_connections.max(1)),
    };
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let result = serve_until_stopped(listener, app, limits, tls, grace).await.map_err(ServeError::Server);
    // What was refused since the last summary is recorded before we go.
    state.audit().flush_rejections().await;
    tracing::info!("stopped");
    result
}

/// The token vault of `--vault FILE`: its keys, and its providers, each
/// discovered now, so a misconfigured provider stops the start with the
/// reason rather than failing the first user.
async fn open_vault(
    file: &std::path::Path,
    key_file: Option<&std::path::Path>,
    public_url: &str,
    store: &crate::store::Store,
) -> Result<crate::vault::Vault, ServeError> {
    use crate::vault::{Vault, config::VaultConfig, kek::VaultKeys};
    let fail = |e: &dyn std::fmt::Display| ServeError::Vault(e.to_string());
    let config = VaultConfig::load(file).map_err(|e| fail(&e))?;
    let keys = VaultKeys::load(key_file).map_err(|e| fail(&e))?;
    crate::vault::open::check_keys(&keys, store).await.map_err(|e| fail(&e))?;
    let redirect_uri = config
        .redirect_uri
        .clone()
        .unwrap_or_else(|| format!("{}/v1/grants/callback", public_url.trim_end_matches('/')));
    let connections = config.connections.len();
    let vault = Vault::open(config, keys, &redirect_uri).await.map_err(|e| fail(&e))?;
    tracing::info!(connections, %redirect_uri, kek = vault.keys().current_id(), "token vault ready");
    Ok(vault)
}

/// Serves `app` until SIGTERM or SIGINT, then stops accepting and lets
/// in-flight requests finish, but not for longer than `grace` (the witness
/// serves the same way).
pub(super) async fn serve_until_stopped(
    listener: TcpListener,
    app: axum::Router,
    limits: TransportLimits,
    tls: Option<Arc<ServerTls>>,
    grace: Duration,
) -> std::io::Result<()> {
    let server = transport::serve(listener, app, limits, tls, shutdown_signal());
    tokio::select! {
        r = server => r,
        () = async { shutdown_signal().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}

/// SIGTERM or SIGINT (the witness stops on them too).
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

/// Re-reads the vault's keys on SIGHUP (a key rotation's first step: see
/// `warrant vault rewrap`); keys that would leave a grant unreadable are
/// refused and the ones in use stay.
async fn reload_vault_keys_on_sighup(
    vault: Arc<crate::vault::Vault>,
    key_file: Option<std::path::PathBuf>,
    store: crate::store::Store,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        let keys = match crate::vault::kek::VaultKeys::load(key_file.as_deref()) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(error = %e, "vault keys not reloaded; the previous ones stay in use");
                continue;
            }
        };
        let ids: Vec<String> = keys.ids().map(str::to_owned).collect();
        match vault.replace_keys(keys, &store).await {
            Ok(()) => tracing::info!(keys = ?ids, current = ids.last().map(String::as_str), "vault keys reloaded"),
            Err(e) => tracing::error!(error = %e, "vault keys not reloaded; the previous ones stay in use"),
        }
    }
}

async fn reload_on_sighup(state: AppState, tls: Option<Arc<ServerTls>>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the previous one is still served"),
            }
        }
        match state.reload_from_disk().await {
            Ok(a) if a.changed => {
                tracing::info!(digest = %a.digest, previous = %a.previous_digest, "policy bundle reloaded");
                log_warnings(&a.warnings);
            }
            Ok(a) => tracing::info!(digest = %a.digest, "policy bundle unchanged on reload"),
            Err(e) => {
                let diagnostics: Vec<String> = match &e {
                    ChangeError::Bundle(b) => b.diagnostics().iter().map(ToString::to_string).collect(),
                    other => vec![other.to_string()],
                };
                tracing::error!(?diagnostics, "policy reload refused; the active bundle stays");
            }
        }
    }
}

/// Records a summary of refused unauthenticated traffic every `every`.
async fn summarise_rejections(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        state.audit().flush_rejections().await;
    }
}

/// Picks up changes other instances made to the shared store.
async fn sync_with_store(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state.sync_from_store().await {
            tracing::error!(error = %e, "could not pick up changes from the store; keeping the active bundle");
        }
    }
}

/// `WARRANT_LOG` filters; JSON or text on standard error (the witness logs alike).
pub(super) fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("WARRANT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        // Colour only for a person at a terminal: escape codes in a file
        // or a pipe are noise to whoever reads or greps it.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A bundle's warnings (a permit that can never apply, …: docs/cli.md#check),
/// one log line each: they load, but their authors should hear of them.
fn log_warnings(warnings: &[warrant_engine::Diagnostic]) {
    for w in warnings {
        tracing::warn!(diagnostic = %w, "policy bundle warning");
    }
}
