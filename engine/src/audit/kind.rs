//! The kinds of record warrant writes (docs/audit.md#records).
//!
//! A closed set where records are made, so that a misspelt kind is a
//! compile error rather than a record no filter or webhook subscription
//! finds. Records read back keep `kind` as the text stored
//! (`Record::kind`): a log may hold kinds this build
//! does not know (written by a later version, or by hand), and such a record
//! must still be read, exported and verified, never dropped. The MAC covers
//! the text, so [`Kind::as_str`] is exactly the spelling stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a record is about. Serialized as its [`as_str`](Self::as_str) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An AuthZEN evaluation or `/v1/authorize` decision.
    Decision,
    TokenIssued,
    TokenRefreshed,
    TokenRevoked,
    TokenExpired,
    /// A token event reported as a use, and every credential resolution.
    TokenUsed,
    /// A bundle activation (start, upload, SIGHUP).
    PolicyUpdated,
    /// The stored entities replaced (`PUT /v1/entities`).
    EntitiesReplaced,
    WebhookReceived,
    WebhookRejected,
    /// An outbound record a subscriber kept refusing, given up on.
    WebhookUndelivered,
    ApiKeyCreated,
    ApiKeyRevoked,
    /// A presented API key refused.
    ApiKeyRejected,
    /// The vault's data keys re-wrapped under a new key-encryption key
    /// (`warrant vault rewrap`).
    VaultRewrapped,
    /// A vault refresh the provider did not complete (unreachable, 5xx,
    /// or refused for a reason other than `invalid_grant`).
    VaultRefreshFailed,
}

impl Kind {
    /// Every kind, in the order of the table in docs/audit.md#records.
    pub const ALL: [Self; 16] = [
        Self::TokenIssued,
        Self::TokenRefreshed,
        Self::TokenRevoked,
        Self::TokenExpired,
        Self::TokenUsed,
        Self::Decision,
        Self::PolicyUpdated,
        Self::EntitiesReplaced,
        Self::WebhookReceived,
        Self::WebhookRejected,
        Self::WebhookUndelivered,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::ApiKeyRejected,
        Self::VaultRewrapped,
        Self::VaultRefreshFailed,
    ];

    /// The `kind` field's text, as stored and covered by the MAC.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Decision => "decision",
            Self::TokenIssued => "token.issued",
            Self::TokenRefreshed => "token.refreshed",
            Self::TokenRevoked => "token.revoked",
            Self::TokenExpired => "token.expired",
            Self::TokenUsed => "token.used",
            Self::PolicyUpdated => "policy.updated",
            Self::EntitiesReplaced => "entities.replaced",
            Self::WebhookReceived => "webhook.received",
            Self::WebhookRejected => "webhook.rejected",
            Self::WebhookUndelivered => "webhook.undelivered",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::ApiKeyRejected => "api_key.rejected",
            Self::VaultRewrapped => "vault.rewrapped",
            Self::VaultRefreshFailed => "vault.refresh_failed",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is none of the kinds warrant writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a record kind")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// The record field holds text: an entry takes a kind as its text.
impl From<Kind> for String {
    fn from(kind: Kind) -> Self {
        kind.as_str().to_owned()
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Kind> for str {
    fn eq(&self, other: &Kind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Kind> for String {
    fn eq(&self, other: &Kind) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_text() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
        let mut texts: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Kind::ALL.len(), "each kind has its own text");
    }

    #[test]
    fn the_stored_spellings_are_fixed() {
        // The MAC covers these bytes: changing one breaks every stored chain.
        let texts: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            texts,
            [
                "token.issued",
                "token.refreshed",
                "token.revoked",
                "token.expired",
                "token.used",
                "decision",
                "policy.updated",
                "entities.replaced",
                "webhook.received",
                "webhook.rejected",
                "webhook.undelivered",
                "api_key.created",
                "api_key.revoked",
                "api_key.rejected",
                "vault.rewrapped",
                "vault.refresh_failed",
            ]
        );
    }

    #[test]
    fn other_text_is_not_a_kind() {
        assert_eq!("token.*".parse::<Kind>(), Err(UnknownKind("token.*".into())));
        assert!("Decision".parse::<Kind>().is_err(), "kinds are case-sensitive");
        assert!(serde_json::from_str::<Kind>("\"bundle.loaded\"").is_err());
        assert_eq!(UnknownKind("x".into()).to_string(), "`x` is not a record kind");
    }
}
