//! The `warrant` binary: parse flags, run the subcommand, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;

/// Decisions allocate many small, short-lived objects (Cedar values, JSON);
/// mimalloc handles that pattern better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = warrant_service::config::Cli::parse();
    warrant_service::cli::run(cli)
}
