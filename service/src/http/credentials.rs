//! `POST /v1/credentials/resolve` (shape: docs/http.md#credentials; logic:
//! docs/domain.md#credential-resolution).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Extension, Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::decision::Verdict;
use super::error::{ApiError, ErrorBody};
use super::guard::Caller;
use super::json::ApiJson;
use super::limits::{MAX_ID, MAX_NAME, printable};
use crate::audit::{Event, Kind};
use crate::credentials::{Ask, Credential, CredentialKind, Refresher, ResolveError, resolve};
use crate::pack::{Reason, Surface};
use crate::scope::Scope;
use crate::state::AppState;
use crate::vault::VaultError;
use warrant_engine::Timestamp;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/credentials/resolve", post(handle))
}

/// The identity asking: a `User` or a `Service`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[schema(as = CredentialPrincipal)]
pub struct Principal {
    #[serde(rename = "type")]
    #[garde(length(min = 1, max = MAX_NAME))]
    #[schema(min_length = 1, max_length = 256)]
    type_name: String,
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    id: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct ResolveRequest {
    #[garde(dive)]
    principal: Principal,
    /// The project's entity id.
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    project: String,
    /// The connection's entity id.
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    connection: String,
    #[garde(skip)]
    surface: Surface,
    #[serde(default)]
    #[garde(inner(length(max = 256)))]
    #[schema(max_length = 256)]
    purpose: Option<String>,
    /// Also hand out the credential's access token, when the vault holds
    /// it and Cedar allows (scope `credentials:reveal`). A token due for
    /// refresh is refreshed first.
    #[serde(default)]
    #[garde(skip)]
    reveal: bool,
}

/// `credential` when allowed; the deny `reasons` otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resolution {
    decision: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<Revealed>,
    reasons: Vec<String>,
}

/// The credential, with its access token when one was revealed.
#[derive(Serialize, ToSchema)]
#[schema(as = Credential)]
pub struct Revealed {
    kind: CredentialKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<String>,
    /// Cache partition: one user's cached results never reach another.
    cache_key: String,
    /// The vault grant's access token (`"reveal": true` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// When `access_token` expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
}

/// Never the token.
impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revealed").field("kind", &self.kind).field("token_id", &self.token_id).finish_non_exhaustive()
    }
}

/// Why a revealing resolution denied although Cedar allowed: the vault
/// could not hand out a token now.
const PROVIDER_UNAVAILABLE: &str = "provider_unavailable";
const NOT_IN_VAULT: &str = "not_in_vault";

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Request(r) => r.into(),
            ResolveError::Store(s) => s.into(),
            ResolveError::PrincipalType(_) => {
                ApiError::bad_request("invalid_field", e.to_string()).with_field("principal.type")
            }
            // Not the caller's mistake, and not a crash: the operator loaded
            // a bundle without what resolution needs (logged when it loaded).
            ResolveError::Incomplete(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "bundle_incomplete", e.to_string())
            }
            ResolveError::Vault(v) => v.into(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/credentials/resolve",
    operation_id = "resolve_credential",
    tag = "credentials",
    summary = "Which credential a query runs under",
    description = "The project owner's token, the principal's own token or the service account; \
        or a deny with the reasons collected (a 200). Every resolution is audited as `token.used`.",
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "the credential (with its access token when revealed), or a deny with reasons", body = Resolution),
        (status = 404, description = "`reveal` on a service that runs no vault (`vault_disabled`)", body = ErrorBody),
        (status = 409, description = "`reveal`: another instance changed the grant meanwhile (`grant_changed`); retry", body = ErrorBody),
        (status = 502, description = "`reveal`: the provider refused warrant's refresh (`provider_refused`): its configuration", body = ErrorBody),
        (status = 503, description = "the active bundle's schema lacks an entity type, action or context key \
            resolution relies on (`bundle_incomplete`, naming them); or, with `reveal`, the provider is unavailable \
            (`provider_unavailable`)", body = ErrorBody),
    ),
    security(("bearer" = ["decide"]))
)]
async fn handle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<Resolution>, ApiError> {
    let reveal = body.reveal;
    // Who refreshes, in a refresh's record: only a revealing call needs it.
    let actor = if reveal { caller.actor() } else { String::new() };
    let vault = if reveal {
        // The route needs `decide`; a token needs `credentials:reveal` too.
        let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let checked = state
            .auth()
            .check(state.store(), header, Scope::CredentialsReveal, Timestamp::now())
            .await
            .map_err(ApiError::internal)?;
        if let Err((refusal, _)) = checked {
            return Err(
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("`reveal`: {refusal}")).with_field("reveal")
            );
        }
        Some(state.vault().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "vault_disabled",
                "`reveal`: this service runs no token vault (`serve --vault FILE`)",
            )
            .with_field("reveal")
        })?)
    } else {
        None
    };
    let snapshot = state.snapshot();
    let ask = Ask {
        principal_type: body.principal.type_name,
        principal_id: body.principal.id,
        project: body.project,
        connection: body.connection,
        surface: body.surface,
        purpose: body.purpose,
    };
    // Resolution may run rules between store reads: hold a rule slot throughout.
    let _slot = if snapshot.bundle.rules().is_empty() { None } else { Some(state.rules().slot().await?) };
    let refresher = vault.map(|v| Refresher { vault: v, backing: state.backing(), actor: &actor });
    let mut resolution = resolve(&snapshot, state.store(), state.keys(), &ask, Timestamp::now(), refresher).await?;
    // The token itself, once Cedar allowed its use; a grant that cannot
    // serve turns the answer into a deny that says why.
    let mut revealed = None;
    if let (Some(vault), Some(token_id)) = (vault, resolution.credential.as_ref().and_then(|c| c.token_id.clone())) {
        match vault.reveal(state.backing(), &token_id, &actor).await {
            Ok(r) => revealed = Some(r),
            Err(e) => {
                let reason = match &e {
                    VaultError::ReauthRequired { .. } | VaultError::Revoked(_) => Reason::ReauthRequired.as_str(),
                    VaultError::UnknownGrant(_) => NOT_IN_VAULT,
                    VaultError::Unavailable(_) => PROVIDER_UNAVAILABLE,
                    _ => return Err(e.into()),
                };
                resolution.credential = None;
                resolution.token_owner = None;
                resolution.reasons = vec![reason.to_owned()];
            }
        }
    }
    crate::metrics::METRICS
        .vault_reveals
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: match (&revealed, vault) {
                (Some(r), _) if r.refreshed => "refreshed",
                (Some(_), _) => "fresh",
                (None, Some(_)) => "refused",
                (None, None) => "none",
            },
        })
        .inc();
    let outcome = crate::metrics::outcome(resolution.credential.is_some());
    crate::metrics::METRICS.resolutions.get_or_create(&outcome).inc();
    // Every resolution is a token use on the record, allowed or not.
    let mut event = Event::new(Kind::TokenUsed, format!("{}::{}", ask.principal_type, ask.principal_id));
    event.token_id = resolution.credential.as_ref().and_then(|c| c.token_id.clone());
    event.token_owner = resolution.token_owner.clone();
    event.connection = Some(ask.connection.clone());
    event.project = Some(ask.project.clone());
    event.decision = Some(resolution.credential.is_some());
    event.reasons = Some(resolution.reasons.clone());
    event.policy_digest = Some(snapshot.bundle.digest().to_owned());
    event.details.insert("surface".into(), json!(ask.surface));
    if let Some(purpose) = &ask.purpose {
        event.details.insert("purpose".into(), json!(purpose));
    }
    if let Some(c) = &resolution.credential {
        event.details.insert("credential".into(), json!(c.kind));
        event.details.insert("cache_key".into(), json!(c.cache_key));
    }
    if reveal {
        event.details.insert("revealed".into(), json!(revealed.is_some()));
    }
    state.audit().append(event).await?;
    Ok(Json(match resolution.credential {
        Some(credential) => {
            let (access_token, expires_at) = match revealed {
                Some(r) => (Some(r.access_token.to_string()), Some(r.expires_at)),
                None => (None, None),
            };
            let Credential { kind, token_id, cache_key } = credential;
            let credential = Revealed { kind, token_id, cache_key, access_token, expires_at };
            Resolution { decision: Verdict::Allow, credential: Some(credential), reasons: Vec::new() }
        }
        None => Resolution { decision: Verdict::Deny, credential: None, reasons: resolution.reasons },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{Action, Gap, Gaps, Requester};

    #[test]
    fn a_bundle_without_the_contract_is_a_503_naming_what_is_missing() {
        let gaps = Gaps::default();
        assert!(gaps.check(Requester::User).is_ok());
        let missing = crate::pack::Incomplete {
            requester: crate::pack::EntityType::User,
            gaps: Gaps::from_iter([Gap::Action(Action::UseToken)]),
        };
        let error = ApiError::from(ResolveError::from(missing));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code(), "bundle_incomplete");
        assert!(error.message().contains("action `use_token`"), "{}", error.message());
    }
}
