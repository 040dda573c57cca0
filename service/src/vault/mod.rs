//! The token vault (docs/vault.md): warrant holds each user's OAuth grant,
//! refreshes and revokes it at the identity provider, and hands a token
//! only to a request Cedar allows. Being built (issue 23); so far:
//! `envelope.rs` seals tokens under a per-grant data key, `kek.rs` wraps
//! data keys under key-encryption keys kept outside the database,
//! `config.rs` reads which provider serves each connection, and
//! `provider.rs` makes the OAuth calls (discovery, PKCE authorization,
//! exchange, refresh, revocation).

pub mod config;
pub mod envelope;
pub mod kek;
pub mod provider;
