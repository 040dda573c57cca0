//! The pure core of warrant: no network, no database, no clock of its own.
//!
//! - [`bundle`] loads and validates a policy bundle and computes its digest.
//! - [`entities`] holds the entity store that decisions read, and the
//!   indexes searches build over it.
//! - [`request`] is a request as clients pose it, and why one is refused.
//! - [`decide`] turns a request into a decision with reasons, through what
//!   a bundle fixes for decisions (its `Decider`).
//! - `index` slices the policy set by action, so a decision evaluates only
//!   the policies that can apply to it.
//! - [`names`] resolves the type and action names clients send, once per bundle.
//! - [`search`] answers AuthZEN searches (which resources may this user browse).
//! - [`impact`] says what a new bundle would decide differently, over the
//!   store (`warrant diff`, dry-run uploads).
//! - [`cases`] runs a bundle's policy tests.
//! - [`audit`] seals and verifies the audit log: canonical records, the keyed
//!   chain, RFC 9162 Merkle proofs and checkpoints.
//! - [`rules`] runs custom rules, WebAssembly components, after Cedar:
//!   sandboxed, limited, failing closed.
//! - [`redact`] strips secrets from events before anything stores or logs them.
//! - [`diagnostic`] locates a problem in a bundle file (file, line, column).
//! - `cedar` turns Cedar's errors into our messages and builds uids.

pub mod audit;
pub mod bundle;
pub mod cases;
mod cedar;
pub mod decide;
pub mod diagnostic;
pub mod entities;
pub mod impact;
mod index;
pub mod names;
pub mod redact;
pub mod request;
pub mod rules;
pub mod search;
pub mod time;

pub use audit::{Checkpoint, Keyring, Record};
pub use bundle::{Bundle, BundleError, BundleSource};
pub use decide::Decision;
pub use diagnostic::Diagnostic;
pub use entities::{EntitiesError, EntitySet};
pub use redact::{RedactionConfig, Redactor};
pub use request::{EntityRef, Query, RequestError, Undeclared};
pub use rules::{RuleRuntime, RuleSet, RuleVerdict};
pub use search::{Found, Search, SearchMode, SearchPath, Searched};
pub use time::{Timestamp, TimestampError};
