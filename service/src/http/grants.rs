//! The token vault's grants over HTTP (docs/vault.md): start an
//! authorization, the provider's callback, import, read and disconnect.
//! Tokens never appear in an answer here; only `POST /v1/credentials/resolve`
//! with `"reveal": true` hands one out.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use garde::Validate;
use serde::Deserialize;
use utoipa::ToSchema;
use warrant_engine::Timestamp;
use zeroize::Zeroizing;

use super::error::{ApiError, ErrorBody};
use super::guard::Caller;
use super::json::ApiJson;
use super::limits::{MAX_ID, printable};
use crate::state::AppState;
use crate::vault::{Connected, Started, Vault, VaultError};

/// The routes a platform's backend calls (`events:write`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/grants/{connection}/start", post(start))
        .route("/v1/grants/import", post(import))
        .route("/v1/grants/{id}", get(read).delete(disconnect))
}

/// The provider's redirect: no API key (the `state` it carries is the
/// credential, single-use and short-lived).
pub fn callback_router() -> Router<AppState> {
    Router::new().route("/v1/grants/callback", get(callback))
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        let message = e.to_string();
        match e {
            VaultError::UnknownConnection(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_connection", message),
            VaultError::UnknownGrant(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_grant", message),
            VaultError::TooManyFlows(..) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_pending", message).retry_after(60)
            }
            VaultError::UnknownState => ApiError::bad_request("unknown_state", message).with_field("state"),
            // The provider refused warrant's own request (a refresh or a
            // revocation): the operator's configuration, not the caller.
            VaultError::Refused(_) => ApiError::new(StatusCode::BAD_GATEWAY, "provider_refused", message),
            VaultError::ReauthRequired { .. } => ApiError::conflict("reauth_required", message),
            VaultError::Revoked(_) => ApiError::conflict("grant_revoked", message),
            VaultError::Changed(_) => ApiError::conflict("grant_changed", message),
            VaultError::Conflict(_) => ApiError::conflict("token_conflict", message),
            VaultError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable", message).retry_after(5)
            }
            // Never the secret: the error names the grant and the key id.
            VaultError::Store(_) | VaultError::Audit(_) | VaultError::Sealed(_) | VaultError::MissingKek { .. } => {
                ApiError::internal(message)
            }
        }
    }
}

/// The vault, or 404 `vault_disabled`.
fn vault(state: &AppState) -> Result<&Vault, ApiError> {
    state.vault().map(AsRef::as_ref).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "vault_disabled",
            "this service runs no token vault (`serve --vault FILE`)",
        )
    })
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The user the grant will belong to (their entity id).
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    owner: String,
}

#[utoipa::path(
    post,
    path = "/v1/grants/{connection}/start",
    operation_id = "start_grant",
    tag = "vault",
    summary = "Start a user's authorization at the connection's provider",
    description = "Answers the provider's authorization URL (authorization code with PKCE and `state`) \
        to send the user to. The pending authorization lasts 10 minutes; a user may have 5 at once.",
    params(("connection" = String, Path, description = "the connection's entity id")),
    request_body = StartRequest,
    responses(
        (status = 201, description = "where to send the user", body = Started),
        (status = 404, description = "no vault, or no provider for the connection", body = ErrorBody),
        (status = 429, description = "the user already has 5 pending authorizations", body = ErrorBody),
    ),
    security(("bearer" = ["events:write"]))
)]
async fn start(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    ApiJson(body): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let started = vault(&state)?.start(state.backing(), &connection, &body.owner).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// What the provider sends back (RFC 6749 §4.1.2, §4.1.2.1).
#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/grants/callback",
    operation_id = "grant_callback",
    tag = "vault",
    summary = "The provider's redirect after the user's authorization",
    description = "Consumes the pending authorization named by `state` (once), exchanges the code \
        with its PKCE verifier, and stores the grant, sealed. No API key: `state` is the credential.",
    params(CallbackParams),
    responses(
        (status = 200, description = "the grant made (never its tokens)", body = Connected),
        (status = 400, description = "unknown, used or expired `state`; or the user or provider refused", body = ErrorBody),
        (status = 404, description = "this service runs no vault (`vault_disabled`)", body = ErrorBody),
        (status = 503, description = "the provider is unavailable (`provider_unavailable`); retry", body = ErrorBody),
    )
)]
async fn callback(
    State(state): State<AppState>,
    Query(params): Query<CallbackParams>,
) -> Result<Json<Connected>, ApiError> {
    let vault = vault(&state)?;
    let Some(flow_state) = params.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Err(ApiError::bad_request("invalid_field", "`state` is missing").with_field("state"));
    };
    let flow_state = Zeroizing::new(flow_state);
    if let Some(error) = params.error {
        // The user (or the provider) said no: the pending authorization is
        // used up, so its `state` cannot be replayed.
        vault.abandon(state.backing(), &flow_state).await?;
        let why = params.error_description.map(|d| format!("{error}: {d}")).unwrap_or(error);
        return Err(ApiError::bad_request("authorization_refused", format!("the provider answered `{why}`")));
    }
    let Some(code) = params.code.filter(|c| !c.is_empty() && c.len() <= 4096).map(Zeroizing::new) else {
        return Err(ApiError::bad_request("invalid_field", "`code` is missing").with_field("code"));
    };
    match vault.callback(state.backing(), &flow_state, &code).await {
        Ok(connected) => Ok(Json(connected)),
        // A code the provider refuses is the browser's input, not ours.
        Err(VaultError::Refused(why)) => Err(ApiError::bad_request("provider_refused", why)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The connection's entity id (one the vault file names).
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    connection: String,
    /// The user the grant belongs to.
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    owner: String,
    #[garde(length(min = 1, max = 16384))]
    #[schema(min_length = 1, max_length = 16384)]
    access_token: String,
    #[serde(default)]
    #[garde(inner(length(min = 1, max = 16384)))]
    #[schema(min_length = 1, max_length = 16384)]
    refresh_token: Option<String>,
    /// RFC 3339: when the access token expires.
    #[garde(length(max = 64))]
    #[schema(format = DateTime, max_length = 64)]
    expires_at: String,
    /// Granted scopes, space-separated.
    #[serde(default)]
    #[garde(inner(length(max = 4096)))]
    #[schema(max_length = 4096)]
    scopes: Option<String>,
}

/// Only the shape: the tokens are secrets.
impl std::fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field("connection", &self.connection)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[utoipa::path(
    post,
    path = "/v1/grants/import",
    operation_id = "import_grant",
    tag = "vault",
    summary = "Store a grant a platform already holds",
    description = "The tokens are sealed at once; the answer never repeats them. Records `token.issued`.",
    request_body = ImportRequest,
    responses(
        (status = 201, description = "the grant made", body = Connected),
        (status = 404, description = "no vault, or no provider for the connection", body = ErrorBody),
    ),
    security(("bearer" = ["events:write"]))
)]
async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ImportRequest>,
) -> Result<(StatusCode, Json<Connected>), ApiError> {
    let vault = vault(&state)?;
    let expires_at = Timestamp::parse(&body.expires_at).map_err(|_| {
        ApiError::bad_request("invalid_field", format!("`expires_at`: `{}` is not an RFC 3339 time", body.expires_at))
            .with_field("expires_at")
    })?;
    let ImportRequest { connection, owner, access_token, refresh_token, scopes, .. } = body;
    let tokens = crate::vault::NewTokens {
        access: Zeroizing::new(access_token),
        refresh: refresh_token.map(Zeroizing::new),
        expires_at,
        scopes: scopes.unwrap_or_default(),
    };
    let connected = vault.import(state.backing(), &connection, &owner, tokens, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(connected)))
}

#[utoipa::path(
    get,
    path = "/v1/grants/{id}",
    operation_id = "read_grant",
    tag = "vault",
    summary = "A grant's state (never its tokens)",
    params(("id" = String, Path, description = "the grant id (also its token id)")),
    responses(
        (status = 200, description = "the grant", body = Connected),
        (status = 404, description = "no vault, or no such grant", body = ErrorBody),
    ),
    security(("bearer" = ["events:write"]))
)]
async fn read(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Connected>, ApiError> {
    Ok(Json(vault(&state)?.read(state.backing(), &id).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/grants/{id}",
    operation_id = "disconnect_grant",
    tag = "vault",
    summary = "Disconnect a grant: revoke it at the provider and here",
    description = "Revokes the refresh token at the provider (RFC 7009), then marks the grant and its \
        token revoked, whatever the provider answered (recorded in `token.revoked`'s `at_provider`).",
    params(("id" = String, Path, description = "the grant id")),
    responses(
        (status = 200, description = "the grant, revoked", body = Connected),
        (status = 404, description = "no vault, or no such grant", body = ErrorBody),
        (status = 409, description = "another instance changed the grant meanwhile (`grant_changed`); retry", body = ErrorBody),
    ),
    security(("bearer" = ["events:write"]))
)]
async fn disconnect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Connected>, ApiError> {
    let connected = vault(&state)?.disconnect(state.backing(), &id, &caller.actor(), "disconnected").await?;
    Ok(Json(connected))
}
