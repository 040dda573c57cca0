//! `warrant witness`: load the cosigner key, open the state, serve the
//! witness API until SIGTERM/SIGINT; `warrant witness public-key`: print the
//! key logs and clients are given.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::serve::{init_logging, serve_until_stopped};
use crate::config::{WitnessArgs, WitnessCommand, WitnessRunArgs};
use crate::http::transport::{self, TransportLimits};
use crate::witness::key::{self, WitnessKeyError};
use crate::witness::state::{StateError, WitnessState};
use crate::witness::{self, FollowError, Witness};

/// Why `warrant witness` could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum WitnessCommandError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Key(WitnessKeyError),
    /// `public-key` could not read the key (an offline command).
    #[error(transparent)]
    PublicKey(WitnessKeyError),
    #[error(transparent)]
    Follow(#[from] FollowError),
    #[error("cannot open the witness state `{path}`: {error}")]
    State { path: String, error: StateError },
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    #[error("server error: {0}")]
    Server(std::io::Error),
}

impl WitnessCommandError {
    /// 2 when `public-key` cannot read the key, as for the other offline
    /// commands; 1 when the witness cannot start.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::PublicKey(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

pub fn run(args: WitnessArgs) -> Result<ExitCode, WitnessCommandError> {
    match args.command {
        Some(WitnessCommand::PublicKey { key_file }) => {
            let key = key::open(key_file.as_deref()).map_err(WitnessCommandError::PublicKey)?;
            println!("{}", key.verifier());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            init_logging(args.run.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(WitnessCommandError::Runtime)?;
            runtime.block_on(serve(args.run))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: WitnessRunArgs) -> Result<(), WitnessCommandError> {
    let logs = witness::followed_logs(&args.logs)?;
    let key = key::load(args.key_file.as_deref(), args.name.as_deref()).map_err(WitnessCommandError::Key)?;
    let state = WitnessState::open(&args.state)
        .await
        .map_err(|error| WitnessCommandError::State { path: args.state.display().to_string(), error })?;
    for log in &logs {
        let latest = state.latest(&log.origin).await.ok().flatten().map(|c| c.tree_size);
        let keys: Vec<String> = log.verifiers.iter().map(ToString::to_string).collect();
        tracing::info!(origin = log.origin, ?keys, latest_size = latest, "following log");
    }
    tracing::info!(key = %key.verifier(), "witness cosigner key");
    let witness = Arc::new(Witness::new(key, logs, state));
    let app = witness::http::app(witness, Duration::from_secs(args.request_timeout_secs.max(1)));

    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| WitnessCommandError::Listen { addr: args.listen, error })?;
    let addr = listener.local_addr().map_err(WitnessCommandError::LocalAddr)?;
    tracing::info!(%addr, "listening");
    transport::raise_descriptor_limit();
    let limits = TransportLimits {
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        max_connections: transport::connection_cap(args.max_connections.max(1)),
    };
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let result = serve_until_stopped(listener, app, limits, None, grace).await.map_err(WitnessCommandError::Server);
    tracing::info!("stopped");
    result
}
