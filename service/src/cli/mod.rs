//! Subcommands, one module each. Each returns the process exit code, or
//! why it could not do its work; [`run`] turns the latter into a message
//! and an exit code, here and nowhere else.

mod audit;
mod check;
mod keys;
mod serve;
mod test;
mod witness;

use std::process::ExitCode;

use crate::config::{Cli, Command};

pub use audit::AuditCommandError;
pub use keys::KeysCommandError;
pub use serve::ServeError;
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
}

impl CliError {
    /// 1 when `serve` cannot start or a key to revoke is not there, 2 when an
    /// offline command cannot run (so scripts tell it from a failed check).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Serve(_) | Self::Keys(KeysCommandError::NoActiveKey(_)) => ExitCode::FAILURE,
            Self::Audit(_) | Self::Keys(_) => ExitCode::from(2),
            Self::Witness(e) => e.exit_code(),
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(*args).map_err(CliError::from),
        Command::Check { dir } => Ok(check::run(&dir)),
        Command::Test { dir } => Ok(test::run(&dir)),
        Command::Audit { command } => audit::run(command).map_err(CliError::from),
        Command::Keys { command } => keys::run(command).map_err(CliError::from),
        Command::Witness(args) => witness::run(*args).map_err(CliError::from),
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
