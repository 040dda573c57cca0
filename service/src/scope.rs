//! What an API key may do: the closed set of scopes, stored by name.

use serde::{Deserialize, Serialize};

/// What a key may do. Variants are in the order of their names, so a
/// sorted list of scopes is sorted by name too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scope {
    /// Read, export and verify the audit log.
    #[value(name = "audit:read")]
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Receive vault access tokens (`POST /v1/credentials/resolve` with
    /// `"reveal": true`): for the services that run queries, only.
    #[value(name = "credentials:reveal")]
    #[serde(rename = "credentials:reveal")]
    CredentialsReveal,
    /// Ask for decisions, searches and credential resolutions.
    #[value(name = "decide")]
    #[serde(rename = "decide")]
    Decide,
    /// Report token lifecycle events.
    #[value(name = "events:write")]
    #[serde(rename = "events:write")]
    EventsWrite,
    /// Read and change policies and entities.
    #[value(name = "policy:admin")]
    #[serde(rename = "policy:admin")]
    PolicyAdmin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditRead => "audit:read",
            Self::CredentialsReveal => "credentials:reveal",
            Self::Decide => "decide",
            Self::EventsWrite => "events:write",
            Self::PolicyAdmin => "policy:admin",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests compare with the wire name.
impl PartialEq<&str> for Scope {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
