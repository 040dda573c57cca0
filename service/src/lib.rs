//! The warrant service: an HTTP policy decision point (AuthZEN 1.0 and a
//! native API) over the engine, with a SQL store.
//!
//! - [`config`]: flags and `WARRANT_*` environment variables.
//! - [`cli`]: one module per subcommand.
//! - [`http`]: one module per resource, each with its `router()`.
//! - [`store`]: persistence (SQLite embedded by default).
//! - [`state`]: the active policy bundle and entities, swapped atomically.
//! - [`pack`]: the names the service and the Cedar pack share, checked
//!   when a bundle loads.

pub mod audit;
pub mod auth;
pub mod checkpoints;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod demo;
mod error_chain;
pub mod http;
pub mod ids;
pub mod keys;
pub mod log_keys;
pub mod metrics;
pub mod pack;
pub mod rules;
pub mod scope;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod vault;
pub mod webhooks;
pub mod witness;
pub mod witnessing;

pub use http::app;
pub use state::AppState;
