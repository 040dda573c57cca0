//! End-to-end tests: the real `warrant` binary, spawned per test on a free
//! loopback port with a temporary database, driven over HTTP.
//!
//! Build the binary first: `cargo build -p warrant-service` (or point
//! `WARRANT_BIN` at one); `tests/run` does both.

// clippy.toml allows panicking in `#[test]` functions; the helpers they call
// (spawning servers, reading fixtures) fail the same way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test code, helpers included, fails by panicking"
)]

mod abuse;
mod auth;
mod server;

mod audit;
mod authoring;
mod authzen;
mod bad_input;
mod certification;
mod check;
mod credentials;
mod entities;
mod health_and_cli;
mod impact;
mod native;
mod new_rule;
mod openapi;
mod pack;
mod policies;
mod postgres;
mod readme;
mod rules;
mod search;
mod tls;
mod vault;
mod verify_ranges;
mod webhooks;
mod witness;
