//! Credential resolution (docs/domain.md#credential-resolution): which
//! credential a query runs under.
//!
//! In order: a `Service` → the service account (R16); the project owner's
//! token when `use_owner_credentials` allows and the token passes `use_token`
//! for its owner (an `owner_token_expired` deny ends there: no fallback); otherwise the principal's own token if
//! `use_token` allows; otherwise deny with the reasons collected. The
//! identity whose token will run the query must also pass `run_query` (R8).
//! Every decision here is Cedar's; this module only gathers the facts
//! (token state) and follows the order. The names it sends and the reasons
//! it reads are the pack's contract ([`crate::pack`]).

use serde::Serialize;
use serde_json::{Map, Value, json};
use warrant_engine::{Decision, EntityRef, EntitySet, Query, RequestError, Timestamp};

use crate::keys::AuditKeys;
use crate::pack::{
    Action, ContextKey, EntityType, Incomplete, OWNER_TOKEN_NONE, PROJECT_OWNER, Reason, Requester, Surface,
};
use crate::state::Snapshot;
use crate::store::{Store, StoreError};
use crate::tokens::{TokenState, TokenStatus, best};
use crate::vault::{Backing, Vault, VaultError};

/// What the caller asks.
#[derive(Debug, Clone)]
pub struct Ask {
    pub principal_type: String,
    pub principal_id: String,
    pub project: String,
    pub connection: String,
    pub surface: Surface,
    pub purpose: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    OwnerToken,
    OwnToken,
    ServiceAccount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Credential {
    pub kind: CredentialKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Cache partition: one user's cached results never reach another.
    pub cache_key: String,
}

/// The answer, plus what the audit record needs.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub credential: Option<Credential>,
    pub reasons: Vec<String>,
    /// Owner of the token that will run the query, when one will.
    pub token_owner: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`principal.type` must be `User` or `Service`, not `{0}`")]
    PrincipalType(String),
    /// The active bundle's schema lacks what this resolution asks of it.
    #[error(transparent)]
    Incomplete(#[from] Incomplete),
    /// A vault grant due for refresh could not be refreshed now.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// For a resolution that will hand out a vault token (`"reveal": true`):
/// the vault, and who asks. A grant-backed token that expires within its
/// provider's skew is refreshed before Cedar sees its state, so an expired
/// access token with a working refresh token is renewed, not denied; the
/// project owner's, only for a caller Cedar would let use it once fresh.
#[derive(Debug, Clone, Copy)]
pub struct Refresher<'a> {
    pub vault: &'a Vault,
    pub backing: Backing<'a>,
    pub actor: &'a str,
}

impl Refresher<'_> {
    /// `token` as it stands once refreshed, if it is a vault grant due for
    /// a refresh; as it is otherwise. A grant the provider refuses comes
    /// back with its new state (expired), for Cedar to deny.
    async fn freshen(
        &self,
        store: &Store,
        token: Option<TokenState>,
        connection: &str,
        now: Timestamp,
    ) -> Result<Option<TokenState>, ResolveError> {
        let Some(token) = token else { return Ok(None) };
        if !self.due(&token, connection, now) {
            return Ok(Some(token));
        }
        match self.vault.refresh(self.backing, &token.token_id, self.actor, false).await {
            Ok(_) | Err(VaultError::ReauthRequired { .. } | VaultError::Revoked(_)) => {}
            // Not a vault grant: a reported token, as it is.
            Err(VaultError::UnknownGrant(_)) => return Ok(Some(token)),
            Err(e) => return Err(e.into()),
        }
        let again = store.tokens_of(&token.owner, connection).await?;
        Ok(again.into_iter().find(|t| t.token_id == token.token_id).or(Some(token)))
    }

    /// Whether `token` would be refreshed by [`Refresher::freshen`] (if it
    /// is a vault grant): not revoked, and within its provider's skew of
    /// expiring.
    fn due(&self, token: &TokenState, connection: &str, now: Timestamp) -> bool {
        token.status != TokenStatus::Revoked && self.vault.due(connection, token.updated_at, token.expires_at, now)
    }
}

fn allow(credential: Credential, token_owner: Option<String>) -> Resolution {
    Resolution { credential: Some(credential), reasons: Vec::new(), token_owner }
}

fn deny(reasons: Vec<String>) -> Resolution {
    Resolution { credential: None, reasons, token_owner: None }
}

struct Decider<'a> {
    snapshot: &'a Snapshot,
    now: Timestamp,
}

impl Decider<'_> {
    fn decide(
        &self,
        principal: (EntityType, &str),
        action: Action,
        resource: (EntityType, &str),
        context: Map<String, Value>,
        entities: Vec<Value>,
    ) -> Result<Decision, RequestError> {
        let entity =
            |(t, id): (EntityType, &str)| EntityRef { type_name: t.as_str().into(), id: id.into(), properties: None };
        let query = Query {
            principal: entity(principal),
            action: action.as_str().into(),
            resource: entity(resource),
            context,
            entities,
            // The context is the service's own, built from what the schema declares.
            ..Query::default()
        };
        let bundle = &self.snapshot.bundle;
        if bundle.action_has_rules(action.as_str()) {
            crate::rules::offload(|| bundle.decide(&self.snapshot.entities, &query, self.now))
        } else {
            bundle.decide(&self.snapshot.entities, &query, self.now)
        }
    }
}

/// `use_token`'s context: the token's issue time, for rules such as
/// `token-max-age`, when known and the bundle's schema declares it.
fn token_context(snapshot: &Snapshot, token: &TokenState) -> Map<String, Value> {
    let key = ContextKey::TokenIssuedAt;
    match &token.issued_at {
        Some(at) if snapshot.bundle.context_has_datetime(Action::UseToken.as_str(), key.as_str()) => {
            context(&[(key, &at.to_string())])
        }
        _ => Map::new(),
    }
}

fn context(pairs: &[(ContextKey, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect()
}

fn deny_with(reason: Reason) -> Resolution {
    deny(vec![reason.as_str().to_owned()])
}

pub async fn resolve(
    snapshot: &Snapshot,
    store: &Store,
    keys: &AuditKeys,
    ask: &Ask,
    now: Timestamp,
    refresher: Option<Refresher<'_>>,
) -> Result<Resolution, ResolveError> {
    let d = Decider { snapshot, now };
    let connection = (EntityType::Connection, ask.connection.as_str());
    let Some(requester) = Requester::of(&ask.principal_type) else {
        let named = ask.principal_type.rsplit("::").next().unwrap_or_default();
        return Err(ResolveError::PrincipalType(named.to_owned()));
    };
    snapshot.pack.check(requester)?;
    if requester == Requester::Service {
        let purpose = ask.purpose.as_deref().unwrap_or_default();
        let decision = d.decide(
            (EntityType::Service, &ask.principal_id),
            Action::UseServiceAccount,
            connection,
            context(&[(ContextKey::Purpose, purpose)]),
            Vec::new(),
        )?;
        return Ok(if decision.allowed {
            let cache_key = format!("service:{}", ask.connection);
            allow(Credential { kind: CredentialKind::ServiceAccount, token_id: None, cache_key }, None)
        } else {
            deny(decision.reasons)
        });
    }
    let user = (EntityType::User, ask.principal_id.as_str());

    // 2. The owner's credentials, with the owner's token state as context.
    let project_type = snapshot.bundle.entity_type(EntityType::Project.as_str()).unwrap_or_default();
    let owner = snapshot
        .entities
        .attribute(&project_type, &ask.project, PROJECT_OWNER)
        .and_then(EntitySet::reference_id)
        .map(str::to_owned);
    let mut owner_token = match &owner {
        Some(o) => best(&store.tokens_of(o, &ask.connection).await?, now).cloned(),
        None => None,
    };
    let use_owner = |status: &str| {
        d.decide(
            user,
            Action::UseOwnerCredentials,
            (EntityType::Project, &ask.project),
            context(&[(ContextKey::Surface, ask.surface.as_str()), (ContextKey::OwnerTokenStatus, status)]),
            Vec::new(),
        )
    };
    if let Some(r) = &refresher
        && owner_token.as_ref().is_some_and(|t| r.due(t, &ask.connection, now))
        // Only a caller Cedar lets use the owner's credentials once they are
        // fresh makes the owner's grant refresh: one denied anyway does not
        // move someone else's grant at the provider.
        && use_owner(TokenStatus::Active.as_str())?.allowed
    {
        owner_token = r.freshen(store, owner_token, &ask.connection, now).await?;
    }
    let owner_status = owner_token.as_ref().map_or(OWNER_TOKEN_NONE, |t| t.status_at(now).as_str());
    let shared = use_owner(owner_status)?;
    if shared.allowed
        && let (Some(owner), Some(token)) = (&owner, &owner_token)
    {
        // The owner's token must itself pass R6 (blocked admin roles, the
        // connection's fixed role, expiry) for its owner: sharing never hands
        // out a token its owner could not use.
        let entity = token.entity(snapshot.bundle.namespace());
        let usable = d.decide(
            (EntityType::User, owner),
            Action::UseToken,
            (EntityType::Token, &token.token_id),
            token_context(snapshot, token),
            vec![entity],
        )?;
        if !usable.allowed {
            return Ok(deny(usable.reasons));
        }
        let run = d.decide((EntityType::User, owner), Action::RunQuery, connection, context(&[]), Vec::new())?;
        if !run.allowed {
            return Ok(deny(run.reasons));
        }
        let credential = Credential {
            kind: CredentialKind::OwnerToken,
            token_id: Some(token.token_id.clone()),
            cache_key: format!("shared:{}", ask.project),
        };
        return Ok(allow(credential, Some(owner.clone())));
    }
    if shared.reasons.iter().any(|r| r == Reason::OwnerTokenExpired.as_str()) {
        // Sharing applies and the owner must re-authenticate: no fallback.
        return Ok(deny_with(Reason::OwnerTokenExpired));
    }

    // 3. The principal's own token.
    let mut own = best(&store.tokens_of(&ask.principal_id, &ask.connection).await?, now).cloned();
    if let Some(r) = &refresher {
        own = r.freshen(store, own, &ask.connection, now).await?;
    }
    let Some(own) = own else {
        return Ok(deny_with(Reason::ReauthRequired));
    };
    own_token(&d, snapshot, keys, ask, &own)
}

fn own_token(
    d: &Decider<'_>,
    snapshot: &Snapshot,
    keys: &AuditKeys,
    ask: &Ask,
    own: &TokenState,
) -> Result<Resolution, ResolveError> {
    let user = (EntityType::User, ask.principal_id.as_str());
    let token_entity = own.entity(snapshot.bundle.namespace());
    let token = (EntityType::Token, own.token_id.as_str());
    let use_token = d.decide(user, Action::UseToken, token, token_context(snapshot, own), vec![token_entity])?;
    if !use_token.allowed {
        return Ok(deny(use_token.reasons));
    }
    let connection = (EntityType::Connection, ask.connection.as_str());
    let run = d.decide(user, Action::RunQuery, connection, context(&[]), Vec::new())?;
    if !run.allowed {
        return Ok(deny(run.reasons));
    }
    let digest = keys.digest(&own.token_id);
    let credential = Credential {
        kind: CredentialKind::OwnToken,
        token_id: Some(own.token_id.clone()),
        cache_key: format!("token:{}", digest.trim_start_matches("hmac-sha256:")),
    };
    Ok(allow(credential, Some(ask.principal_id.clone())))
}
