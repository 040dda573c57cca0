//! Subcommands, one module each. Each returns the process exit code, or
//! why it could not do its work; [`run`] turns the latter into a message
//! and an exit code, here and nowhere else.

mod audit;
mod check;
mod diff;
mod eval;
mod fmt;
mod keys;
mod new;
mod policies;
mod serve;
mod test;
mod vault;
mod witness;

use std::process::ExitCode;

use crate::config::{Cli, Command};

pub use audit::AuditCommandError;
pub use keys::KeysCommandError;
pub use new::NewCommandError;
pub use policies::PoliciesCommandError;
pub use serve::ServeError;
pub use vault::VaultCommandError;
pub use witness::WitnessCommandError;

/// Why a subcommand could not do its work. A negative answer (a log that
/// fails verification, a bundle with errors, a failing policy test) is an
/// exit code, not an error.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Audit(#[from] AuditCommandError),
    #[error(transparent)]
    Keys(#[from] KeysCommandError),
    #[error(transparent)]
    Witness(#[from] WitnessCommandError),
    #[error(transparent)]
    Vault(#[from] VaultCommandError),
    #[error(transparent)]
    New(#[from] NewCommandError),
    #[error(transparent)]
    Policies(#[from] PoliciesCommandError),
}

impl CliError {
    /// 1 when `serve` cannot start or a key to revoke is not there, 2 when an
    /// offline command cannot run (so scripts tell it from a failed check).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Serve(_) | Self::Keys(KeysCommandError::NoActiveKey(_)) => ExitCode::FAILURE,
            Self::Audit(_) | Self::Keys(_) | Self::Vault(_) | Self::New(_) | Self::Policies(_) => ExitCode::from(2),
            Self::Witness(e) => e.exit_code(),
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(*args).map_err(CliError::from),
        Command::Check { dir, deny_warnings } => Ok(check::run_with(&dir, deny_warnings)),
        Command::Fmt { dir, check } => Ok(fmt::run(&dir, check)),
        Command::Test { dir, filter } => Ok(test::run(&dir, filter.as_deref())),
        Command::Eval(args) => Ok(eval::run(&args)),
        Command::Diff(args) => Ok(diff::run(&args)),
        Command::Policies { command } => policies::run(command).map_err(CliError::from),
        Command::Audit { command } => audit::run(command).map_err(CliError::from),
        Command::Keys { command } => keys::run(command).map_err(CliError::from),
        Command::Vault { command } => vault::run(command).map_err(CliError::from),
        Command::Witness(args) => witness::run(*args).map_err(CliError::from),
        Command::New { command } => new::run(command).map_err(CliError::from),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            // Under `serve` the log is where operators look; the other
            // commands install no subscriber, so for them this does nothing.
            tracing::error!("{e}");
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
