//! Command-line flags and `WARRANT_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "warrant",
    version,
    about = "Policy decision point and audit trail for per-user OAuth data connections"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Validate a policy bundle (schema, policies, entities); exit 1 on any problem.
    Check {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// Run a bundle's policy tests (`DIR/tests/*.json`); exit 1 on any failure.
    Test {
        /// The bundle directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WARRANT_LISTEN", default_value = "127.0.0.1:8180")]
    pub listen: SocketAddr,

    /// Database URL (`sqlite://PATH`); the file and its directory are created.
    #[arg(long, env = "WARRANT_DATABASE_URL", default_value = "sqlite://./warrant-data/warrant.db")]
    pub database_url: String,

    /// Policy bundle directory, loaded at start and on SIGHUP.
    #[arg(long, env = "WARRANT_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,

    /// Audit key file (`<key-id> <hex secret>` per line, last one signs). Default:
    /// `$XDG_CONFIG_HOME/warrant/audit.key`, generated on first start.
    /// `WARRANT_AUDIT_KEY` (same format, `,` between keys) takes precedence.
    #[arg(long, env = "WARRANT_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,

    /// Largest request body accepted, in bytes (413 above it).
    #[arg(long, env = "WARRANT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest body for bulk uploads (`PUT /v1/entities`, `PUT /v1/policies`), in bytes.
    #[arg(long, env = "WARRANT_MAX_BULK_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_bulk_body_bytes: usize,

    /// Log format on standard error.
    #[arg(long, env = "WARRANT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "WARRANT_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}
