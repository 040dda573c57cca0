//! What can go wrong in a vault operation, sorted by who can act on it
//! (`http/grants.rs` turns each into its status and code). No variant
//! carries a secret: provider errors cross as their classification.

use super::envelope::EnvelopeError;
use super::kek::UnwrapError;
use super::provider::ProviderError;
use crate::audit::GrantJobError;
use crate::store::StoreError;

/// What went wrong in a vault operation, sorted by who can act on it.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("connection `{0}` has no vault provider (see the `--vault` file's `connections`)")]
    UnknownConnection(String),
    #[error("no grant `{0}`")]
    UnknownGrant(String),
    /// The user and how many pending authorizations they may have.
    #[error("`{0}` already has {1} pending authorizations; finish or let them expire (10 minutes)")]
    TooManyFlows(String, u32),
    #[error("the authorization is unknown, used or expired; start again")]
    UnknownState,
    /// The user refused at the provider, or the provider refused the code.
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("grant `{id}` needs the user to connect again: {reason}")]
    ReauthRequired { id: String, reason: String },
    #[error("grant `{0}` is revoked")]
    Revoked(String),
    /// Another instance changed the grant meanwhile; nothing was stored.
    #[error("grant `{0}` changed meanwhile; try again")]
    Changed(String),
    /// The token store refused the grant's token event.
    #[error("{0}")]
    Conflict(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    #[error("vault storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the audit log could not record the change: {0}")]
    Audit(String),
    /// Keys that would leave grants unreadable (a rotation's old key
    /// removed before `warrant vault rewrap` moved them off it).
    #[error(
        "{grants} grant(s) are wrapped under vault key `{kek_id}`, which the vault keys no longer hold: put it back, \
         and remove it only once `warrant vault rewrap` has moved every grant off it"
    )]
    MissingKek { kek_id: String, grants: i64 },
    /// A ciphertext did not open: a wrong or missing key, or damage.
    #[error("a sealed value did not open: {0}")]
    Sealed(String),
}

impl From<EnvelopeError> for VaultError {
    fn from(e: EnvelopeError) -> Self {
        Self::Sealed(e.to_string())
    }
}

impl From<UnwrapError> for VaultError {
    fn from(e: UnwrapError) -> Self {
        Self::Sealed(e.to_string())
    }
}

impl From<GrantJobError> for VaultError {
    fn from(e: GrantJobError) -> Self {
        match e {
            GrantJobError::Changed(id) => Self::Changed(id),
            GrantJobError::Refused(why) => Self::Conflict(why),
            GrantJobError::Audit(e) => Self::Audit(e.to_string()),
        }
    }
}

impl From<ProviderError> for VaultError {
    /// Only the provider's classification crosses: never a token.
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Transient(why) => Self::Unavailable(why),
            other => Self::Refused(other.to_string()),
        }
    }
}
