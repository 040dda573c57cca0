//! The token vault (docs/vault.md): warrant holds each user's OAuth grant,
//! refreshes and revokes it at the identity provider, and hands a token
//! only to a request Cedar allows.
//!
//! `envelope.rs` seals tokens under a per-grant data key, `kek.rs` wraps
//! data keys under key-encryption keys kept outside the database,
//! `config.rs` reads which provider serves each connection, `provider.rs`
//! makes the OAuth calls (discovery, PKCE authorization, exchange,
//! refresh, revocation), `grant.rs` makes, imports and revokes grants, and
//! `refresh.rs` hands out a grant's access token, refreshing it one caller
//! at a time, and `rewrap.rs` moves every data key under a new
//! key-encryption key.

pub mod backoff;
pub mod config;
pub mod envelope;
pub mod error;
mod grant;
pub mod kek;
pub mod open;
pub mod provider;
mod refresh;
pub mod rewrap;

pub use error::VaultError;
pub use grant::{Connected, NewTokens, Started};
pub use open::{Backing, Vault};
pub use refresh::{Revealed, refresh_loop};
