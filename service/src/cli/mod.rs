//! Subcommands, one module each. Each returns the process exit code.

mod audit;
mod check;
mod keys;
mod serve;
mod test;

use std::process::ExitCode;

use crate::config::{Cli, Command};

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check { dir } => check::run(&dir),
        Command::Test { dir } => test::run(&dir),
        Command::Audit { command } => audit::run(command),
        Command::Keys { command } => keys::run(command),
    }
}
