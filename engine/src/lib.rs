//! The pure core of warrant: no network, no database, no clock of its own.
//!
//! - [`bundle`] loads and validates a policy bundle and computes its digest.
//! - [`entities`] holds the entity store that decisions read.
//! - [`decide`] turns a request into a decision with reasons.
//! - `index` slices the policy set by action, so a decision evaluates only
//!   the policies that can apply to it.
//! - [`names`] resolves the type and action names clients send, once per bundle.
//! - [`search`] answers AuthZEN searches (which resources may this user browse).
//! - [`cases`] runs a bundle's policy tests.
//! - [`audit`] seals and verifies the audit log: canonical records, the keyed
//!   chain, RFC 9162 Merkle proofs and checkpoints.
//! - [`rules`] runs custom rules, WebAssembly components, after Cedar:
//!   sandboxed, limited, failing closed.
//! - [`redact`] strips secrets from events before anything stores or logs them.

pub mod audit;
pub mod bundle;
pub mod cases;
pub mod decide;
pub mod entities;
mod index;
pub mod names;
pub mod redact;
pub mod rules;
pub mod search;
mod time;

pub use audit::{Checkpoint, Keyring, Record};
pub use bundle::{Bundle, BundleError, BundleSource, Diagnostic};
pub use decide::{Decision, EntityRef, Query, RequestError};
pub use entities::{EntitiesError, EntitySet};
pub use redact::{RedactionConfig, Redactor};
pub use rules::{RuleRuntime, RuleSet, RuleVerdict};
pub use search::{Found, Search, SearchMode, SearchPath, Searched};
