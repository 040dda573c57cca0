//! `warrant new rule|test`: scaffolds, so that a first rule or a first
//! policy test starts from files that already build, load and pass.
//!
//! - [`rule`]: a Rust rule crate in the guest workspace, its manifest entry
//!   and its cases (`warrant new rule NAME --guests DIR`);
//! - [`policy_test`]: a policy test file for a bundle, from the bundle's own
//!   names (`warrant new test NAME --bundle DIR`).
//!
//! Both refuse a name that is invalid or already taken before writing
//! anything, and never overwrite a file.

mod error;
mod name;
mod policy_test;
mod rule;
mod schema_types;
mod written;

use std::process::ExitCode;

use crate::config::NewCommand;

pub use error::NewCommandError;

pub fn run(command: NewCommand) -> Result<ExitCode, NewCommandError> {
    match command {
        NewCommand::Rule { name, guests } => rule::run(&name, &guests),
        NewCommand::Test { name, bundle, action } => policy_test::run(&name, &bundle, action.as_deref()),
    }
}
