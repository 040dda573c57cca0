//! Token lifecycle: how `token.*` events change a token's state, which token
//! of a user counts for a connection, and the `Token` entity decisions see.
//! Changes reach the store through the audit log's writer
//! (`AuditLog::apply_tokens` in `audit/`), with their records.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warrant_engine::Timestamp;
use warrant_engine::audit::Kind;

use crate::pack::EntityType;

/// The lifecycle events (`token.used` changes no state; it is audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TokenEventKind {
    #[serde(rename = "token.issued")]
    Issued,
    #[serde(rename = "token.refreshed")]
    Refreshed,
    #[serde(rename = "token.revoked")]
    Revoked,
    #[serde(rename = "token.expired")]
    Expired,
    #[serde(rename = "token.used")]
    Used,
}

impl TokenEventKind {
    /// The wire name, which is also the kind of the event's audit record.
    pub fn as_str(self) -> &'static str {
        Kind::from(self).as_str()
    }
}

/// A token event is recorded under its own name.
impl From<TokenEventKind> for Kind {
    fn from(kind: TokenEventKind) -> Self {
        match kind {
            TokenEventKind::Issued => Self::TokenIssued,
            TokenEventKind::Refreshed => Self::TokenRefreshed,
            TokenEventKind::Revoked => Self::TokenRevoked,
            TokenEventKind::Expired => Self::TokenExpired,
            TokenEventKind::Used => Self::TokenUsed,
        }
    }
}

/// A token's state as last reported (stored as its lowercase name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// The stored name back; `None` for anything the schema's CHECK allows not.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "active" => Some(Self::Active),
            "expired" => Some(Self::Expired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests and logs compare with the wire name.
impl PartialEq<&str> for TokenStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A token as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenState {
    pub token_id: String,
    pub owner: String,
    pub connection: String,
    /// As last reported; see [`TokenState::status_at`] for the one that holds now.
    pub status: TokenStatus,
    pub role: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When the user last authenticated for this token (the `token.issued`
    /// event's `issued_at`, or its arrival). Unknown for tokens first seen
    /// through another event.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub issued_at: Option<Timestamp>,
}

impl TokenState {
    /// The status that holds at `now`: an active token past its expiry is expired.
    pub fn status_at(&self, now: Timestamp) -> TokenStatus {
        match self.status {
            TokenStatus::Revoked => TokenStatus::Revoked,
            TokenStatus::Active if self.expires_at > now => TokenStatus::Active,
            _ => TokenStatus::Expired,
        }
    }

    /// The Cedar entity (`Token` in the bundle's namespace). Its attributes
    /// are the schema's `Token` (docs/domain.md#cedar-contract); Cedar checks them against the
    /// schema with every decision that carries one.
    pub fn entity(&self, namespace: Option<&str>) -> Value {
        let q = |ty: EntityType| match namespace {
            Some(ns) => format!("{ns}::{ty}"),
            None => ty.as_str().to_owned(),
        };
        json!({
            "uid": {"type": q(EntityType::Token), "id": self.token_id},
            "attrs": {
                "owner": {"__entity": {"type": q(EntityType::User), "id": self.owner}},
                "connection": {"__entity": {"type": q(EntityType::Connection), "id": self.connection}},
                "status": self.status.as_str(),
                "role": self.role,
                "expires_at": {"__extn": {"fn": "datetime", "arg": self.expires_at}},
            },
            "parents": []
        })
    }
}

/// What an event says about a token.
#[derive(Debug, Clone)]
pub struct TokenChange {
    pub kind: TokenEventKind,
    pub token_id: String,
    pub owner: String,
    pub connection: String,
    pub role: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// For `token.issued`; defaults to `now`.
    pub issued_at: Option<Timestamp>,
}

/// What a change came to: the token's state after it (`None`: the event
/// changes no state), or the conflict that refused it.
pub type Applied = Result<Option<TokenState>, TokenConflict>;

/// An event that contradicts the token's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConflict {
    #[error("token `{0}` is revoked and cannot be refreshed")]
    RefreshRevoked(String),
    /// Revocation is final: a new grant comes with a new token id.
    #[error("token `{0}` is revoked and cannot be issued again; a new grant needs a new token id")]
    IssueRevoked(String),
    #[error("token `{token}` belongs to `{owner}` on `{connection}`; the event names another owner or connection")]
    Mismatch { token: String, owner: String, connection: String },
}

/// The state after `change`, from the state before it (if the token is known).
/// Events about an unknown token register it: a revoke must never be lost
/// because its issue was.
pub fn apply(
    before: Option<&TokenState>,
    change: &TokenChange,
    now: Timestamp,
) -> Result<Option<TokenState>, TokenConflict> {
    if let Some(b) = before
        && (b.owner != change.owner || b.connection != change.connection)
    {
        return Err(TokenConflict::Mismatch {
            token: b.token_id.clone(),
            owner: b.owner.clone(),
            connection: b.connection.clone(),
        });
    }
    let mut next = before.cloned().unwrap_or_else(|| TokenState {
        token_id: change.token_id.clone(),
        owner: change.owner.clone(),
        connection: change.connection.clone(),
        status: TokenStatus::Active,
        role: String::new(),
        expires_at: now,
        updated_at: now,
        issued_at: None,
    });
    if let Some(role) = &change.role {
        next.role = role.clone();
    }
    match change.kind {
        TokenEventKind::Issued => {
            if before.is_some_and(|b| b.status == TokenStatus::Revoked) {
                return Err(TokenConflict::IssueRevoked(change.token_id.clone()));
            }
            next.status = TokenStatus::Active;
            // A refresh continues the same grant; only an issue (the user
            // authenticating again) restarts the token's age.
            next.issued_at = Some(change.issued_at.unwrap_or(now));
            if let Some(e) = change.expires_at {
                next.expires_at = e;
            }
        }
        TokenEventKind::Refreshed => {
            if before.is_some_and(|b| b.status == TokenStatus::Revoked) {
                return Err(TokenConflict::RefreshRevoked(change.token_id.clone()));
            }
            next.status = TokenStatus::Active;
            if let Some(e) = change.expires_at {
                next.expires_at = e;
            }
        }
        TokenEventKind::Revoked => next.status = TokenStatus::Revoked,
        TokenEventKind::Expired => {
            if next.status != TokenStatus::Revoked {
                next.status = TokenStatus::Expired;
            }
        }
        TokenEventKind::Used => return Ok(None),
    }
    next.updated_at = now;
    Ok(Some(next))
}

/// The token that counts for a user on a connection: an active one (latest
/// expiry first), else the most recently changed.
pub fn best(tokens: &[TokenState], now: Timestamp) -> Option<&TokenState> {
    tokens
        .iter()
        .filter(|t| t.status_at(now) == TokenStatus::Active)
        .max_by(|a, b| a.expires_at.cmp(&b.expires_at))
        .or_else(|| tokens.iter().max_by(|a, b| a.updated_at.cmp(&b.updated_at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The n-th minute of 2026-06-01: distinct arrival times.
    fn n(minute: u32) -> Timestamp {
        t(&format!("2026-06-01T00:{minute:02}:00Z"))
    }

    fn t(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn change(kind: TokenEventKind) -> TokenChange {
        TokenChange {
            kind,
            token_id: "t1".into(),
            owner: "ann".into(),
            connection: "snow".into(),
            role: Some("ANALYST".into()),
            expires_at: Some(t("2030-01-01T00:00:00.000Z")),
            issued_at: None,
        }
    }

    #[test]
    fn only_an_issue_restarts_the_token_age() {
        let issued = apply(None, &change(TokenEventKind::Issued), n(1)).unwrap().unwrap();
        assert_eq!(issued.issued_at, Some(n(1)), "an issue without a time is stamped on arrival");
        let refreshed = apply(Some(&issued), &change(TokenEventKind::Refreshed), n(2)).unwrap().unwrap();
        assert_eq!(refreshed.issued_at, Some(n(1)), "a refresh continues the same grant");
        let mut reissue = change(TokenEventKind::Issued);
        reissue.issued_at = Some(t("2026-05-01T00:00:00.000Z"));
        let again = apply(Some(&refreshed), &reissue, n(3)).unwrap().unwrap();
        assert_eq!(again.issued_at, Some(t("2026-05-01T00:00:00.000Z")));
        let unknown = apply(None, &change(TokenEventKind::Revoked), n(4)).unwrap().unwrap();
        assert_eq!(unknown.issued_at, None, "first seen revoked: no issue time");
    }

    fn now() -> Timestamp {
        t("2026-06-01T00:00:00Z")
    }

    #[test]
    fn each_event_is_recorded_under_its_wire_name() {
        use TokenEventKind::{Expired, Issued, Refreshed, Revoked, Used};
        for kind in [Issued, Refreshed, Revoked, Expired, Used] {
            let wire = serde_json::to_value(kind).unwrap();
            assert_eq!(wire, Kind::from(kind).as_str());
            assert_eq!(kind.as_str(), Kind::from(kind).as_str());
        }
    }

    #[test]
    fn lifecycle() {
        let issued = apply(None, &change(TokenEventKind::Issued), n(1)).unwrap().unwrap();
        assert_eq!(issued.status_at(now()), "active");
        let revoked = apply(Some(&issued), &change(TokenEventKind::Revoked), n(2)).unwrap().unwrap();
        assert_eq!(revoked.status_at(now()), "revoked");
        assert_eq!(
            apply(Some(&revoked), &change(TokenEventKind::Refreshed), n(3)),
            Err(TokenConflict::RefreshRevoked("t1".into()))
        );
        assert_eq!(
            apply(Some(&revoked), &change(TokenEventKind::Issued), n(3)),
            Err(TokenConflict::IssueRevoked("t1".into())),
            "revocation is final"
        );
        let expired = apply(Some(&revoked), &change(TokenEventKind::Expired), n(3)).unwrap().unwrap();
        assert_eq!(expired.status, "revoked", "expiry does not un-revoke");
        assert_eq!(apply(Some(&issued), &change(TokenEventKind::Used), n(4)).unwrap(), None);
        let mut other = change(TokenEventKind::Revoked);
        other.owner = "bob".into();
        assert!(matches!(apply(Some(&issued), &other, n(5)), Err(TokenConflict::Mismatch { .. })));
    }

    #[test]
    fn past_expiry_is_expired_and_best_prefers_active() {
        let mut old = apply(None, &change(TokenEventKind::Issued), t("2026-01-01T00:00:00Z")).unwrap().unwrap();
        old.expires_at = t("2026-05-01T00:00:00Z");
        assert_eq!(old.status_at(now()), "expired");
        let mut fresh = old.clone();
        fresh.token_id = "t2".into();
        fresh.expires_at = t("2026-07-01T00:00:00Z");
        fresh.updated_at = t("2025-01-01T00:00:00Z");
        let tokens = [old.clone(), fresh];
        assert_eq!(best(&tokens, now()).unwrap().token_id, "t2");
        assert_eq!(best(&tokens[..1], now()).unwrap().token_id, old.token_id);
        assert!(best(&[], now()).is_none());
    }
}
