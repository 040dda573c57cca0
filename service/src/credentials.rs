//! Credential resolution (docs/domain.md#credential-resolution): which
//! credential a query runs under.
//!
//! In order: a `Service` → the service account (R16); the project owner's
//! token when `use_owner_credentials` allows and the token passes `use_token`
//! for its owner (an `owner_token_expired` deny ends there: no fallback); otherwise the principal's own token if
//! `use_token` allows; otherwise deny with the reasons collected. The
//! identity whose token will run the query must also pass `run_query` (R8).
//! Every decision here is Cedar's; this module only gathers the facts
//! (token state) and follows the order.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use warrant_engine::{Decision, EntityRef, EntitySet, Query, RequestError};

use crate::keys::Keyring;
use crate::state::Snapshot;
use crate::store::{Store, StoreError};
use crate::tokens::{TokenState, best};

/// What the caller asks.
#[derive(Debug, Clone)]
pub struct Ask {
    pub principal_type: String,
    pub principal_id: String,
    pub project: String,
    pub connection: String,
    pub surface: String,
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
}

fn allow(credential: Credential, token_owner: Option<String>) -> Resolution {
    Resolution { credential: Some(credential), reasons: Vec::new(), token_owner }
}

fn deny(reasons: Vec<String>) -> Resolution {
    Resolution { credential: None, reasons, token_owner: None }
}

struct Decider<'a> {
    snapshot: &'a Snapshot,
    now: DateTime<Utc>,
}

impl Decider<'_> {
    fn decide(
        &self,
        principal: (&str, &str),
        action: &str,
        resource: (&str, &str),
        context: Map<String, Value>,
        entities: Vec<Value>,
    ) -> Result<Decision, RequestError> {
        let entity = |(t, id): (&str, &str)| EntityRef { type_name: t.into(), id: id.into(), properties: None };
        let query = Query {
            principal: entity(principal),
            action: action.into(),
            resource: entity(resource),
            context,
            entities,
        };
        let bundle = &self.snapshot.bundle;
        if bundle.action_has_rules(action) {
            crate::rules::offload(|| bundle.decide(&self.snapshot.entities, &query, self.now))
        } else {
            bundle.decide(&self.snapshot.entities, &query, self.now)
        }
    }
}

/// `use_token`'s context: the token's issue time, for rules such as
/// `token-max-age`, when known and the bundle's schema declares it.
fn token_context(snapshot: &Snapshot, token: &TokenState) -> Map<String, Value> {
    match &token.issued_at {
        Some(at) if snapshot.bundle.context_has_datetime("use_token", "token_issued_at") => {
            context(&[("token_issued_at", at)])
        }
        _ => Map::new(),
    }
}

fn context(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()
}

pub async fn resolve(
    snapshot: &Snapshot,
    store: &Store,
    keys: &Keyring,
    ask: &Ask,
    now: DateTime<Utc>,
) -> Result<Resolution, ResolveError> {
    let d = Decider { snapshot, now };
    let connection = ("Connection", ask.connection.as_str());
    match ask.principal_type.rsplit("::").next().unwrap_or_default() {
        "Service" => {
            let purpose = ask.purpose.as_deref().unwrap_or_default();
            let decision = d.decide(
                ("Service", &ask.principal_id),
                "use_service_account",
                connection,
                context(&[("purpose", purpose)]),
                Vec::new(),
            )?;
            return Ok(if decision.allowed {
                let cache_key = format!("service:{}", ask.connection);
                allow(Credential { kind: CredentialKind::ServiceAccount, token_id: None, cache_key }, None)
            } else {
                deny(decision.reasons)
            });
        }
        "User" => {}
        other => return Err(ResolveError::PrincipalType(other.to_owned())),
    }
    let user = ("User", ask.principal_id.as_str());

    // 2. The owner's credentials, with the owner's token state as context.
    let project_type = snapshot.bundle.entity_type("Project").unwrap_or_default();
    let owner = snapshot
        .entities
        .attribute(&project_type, &ask.project, "owner")
        .and_then(EntitySet::reference_id)
        .map(str::to_owned);
    let owner_token = match &owner {
        Some(o) => best(&store.tokens_of(o, &ask.connection).await?, now).cloned(),
        None => None,
    };
    let owner_status = owner_token.as_ref().map_or("none", |t| t.status_at(now).as_str());
    let shared = d.decide(
        user,
        "use_owner_credentials",
        ("Project", &ask.project),
        context(&[("surface", &ask.surface), ("owner_token_status", owner_status)]),
        Vec::new(),
    )?;
    if shared.allowed
        && let (Some(owner), Some(token)) = (&owner, &owner_token)
    {
        // The owner's token must itself pass R6 (blocked admin roles, the
        // connection's fixed role, expiry) for its owner: sharing never hands
        // out a token its owner could not use.
        let entity = token.entity(snapshot.bundle.namespace());
        let usable = d.decide(
            ("User", owner),
            "use_token",
            ("Token", &token.token_id),
            token_context(snapshot, token),
            vec![entity],
        )?;
        if !usable.allowed {
            return Ok(deny(usable.reasons));
        }
        let run = d.decide(("User", owner), "run_query", connection, context(&[]), Vec::new())?;
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
    if shared.reasons.iter().any(|r| r == "owner_token_expired") {
        // Sharing applies and the owner must re-authenticate: no fallback.
        return Ok(deny(vec!["owner_token_expired".into()]));
    }

    // 3. The principal's own token.
    let Some(own) = best(&store.tokens_of(&ask.principal_id, &ask.connection).await?, now).cloned() else {
        return Ok(deny(vec!["reauth_required".into()]));
    };
    own_token(&d, snapshot, keys, ask, &own)
}

fn own_token(
    d: &Decider<'_>,
    snapshot: &Snapshot,
    keys: &Keyring,
    ask: &Ask,
    own: &TokenState,
) -> Result<Resolution, ResolveError> {
    let user = ("User", ask.principal_id.as_str());
    let token_entity = own.entity(snapshot.bundle.namespace());
    let use_token =
        d.decide(user, "use_token", ("Token", &own.token_id), token_context(snapshot, own), vec![token_entity])?;
    if !use_token.allowed {
        return Ok(deny(use_token.reasons));
    }
    let run = d.decide(user, "run_query", ("Connection", &ask.connection), context(&[]), Vec::new())?;
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
