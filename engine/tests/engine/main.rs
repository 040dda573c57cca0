//! The engine's integration tests, one binary made of modules (as
//! wasmtime's `tests/all/main.rs`): the crate and its dependencies are
//! linked once instead of once per test file, and helpers are shared as
//! ordinary modules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking; this covers the shared helpers too"
)]

mod common;

mod audit_chain;
mod bundle;
mod can_error;
mod canonical;
mod cases;
mod context_paths;
mod impact;
mod index_differential;
mod lint;
mod merkle_vectors;
mod redact;
mod rule_config;
mod rules;
mod search;
mod search_agrees;
mod search_differential;
mod slice;
