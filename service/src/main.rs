//! The `warrant` binary: parse flags, run the subcommand, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = warrant_service::config::Cli::parse();
    warrant_service::cli::run(cli)
}
