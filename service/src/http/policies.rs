//! `GET /v1/policies` (the active bundle) and `PUT /v1/policies` (a new one:
//! validated, then swapped atomically; a bad bundle is refused with located
//! diagnostics and the old one stays active).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use garde::Validate;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};
use warrant_engine::{BundleSource, Timestamp};

use super::error::{ApiError, ErrorBody};
use super::guard::Caller;
use super::json::ApiJson;
use super::query::ApiQuery;
use crate::state::{Activation, AppState};
use crate::store::BundleOrigin;

/// Most files in one uploaded bundle.
const MAX_FILES: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/policies", get(show).put(replace))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ShowParams {
    /// Include each file's text.
    #[serde(default)]
    content: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyBundle {
    digest: String,
    /// The schema's namespace, if it has one.
    #[schema(required = true)]
    namespace: Option<String>,
    /// How many policies.
    policies: usize,
    origin: Origin,
    #[schema(value_type = String, format = DateTime)]
    activated_at: Timestamp,
    /// Sorted by path.
    files: Vec<PolicyFile>,
}

/// Where the active bundle came from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = BundleOrigin)]
pub enum Origin {
    /// Read from the policies directory (at start or on SIGHUP).
    Disk,
    /// Uploaded with `PUT /v1/policies`.
    Api,
}

impl From<BundleOrigin> for Origin {
    fn from(origin: BundleOrigin) -> Self {
        match origin {
            BundleOrigin::Disk => Self::Disk,
            BundleOrigin::Api => Self::Api,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyFile {
    path: String,
    bytes: usize,
    sha256: String,
    /// The text, with `?content=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    /// How `content` is encoded when it is not the text itself: rule
    /// components are binary and shown as base64, the form `PUT` takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<Encoding>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Base64,
}

#[utoipa::path(
    get,
    path = "/v1/policies",
    operation_id = "get_policies",
    tag = "policies",
    summary = "The active policy bundle",
    params(ShowParams),
    responses(
        (status = 200, description = "its digest, namespace, origin and files", body = PolicyBundle),
        (status = 400, description = "an invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = ["policy:admin"]))
)]
async fn show(State(state): State<AppState>, ApiQuery(params): ApiQuery<ShowParams>) -> Json<PolicyBundle> {
    let snapshot = state.snapshot();
    let source = snapshot.bundle.source();
    let text = source.files().map(|(path, text)| (path, text.as_bytes(), None));
    // Rule components are binary: their content is shown base64-encoded, the
    // form `PUT /v1/policies` takes.
    let binary = source.binaries().map(|(path, bytes)| (path, bytes, Some(Encoding::Base64)));
    let mut files: Vec<PolicyFile> = text
        .chain(binary)
        .map(|(path, bytes, encoding)| {
            let content = params.content.then(|| match encoding {
                Some(Encoding::Base64) => BASE64.encode(bytes),
                None => String::from_utf8_lossy(bytes).into_owned(),
            });
            PolicyFile {
                path: path.to_owned(),
                bytes: bytes.len(),
                sha256: hex::encode(Sha256::digest(bytes)),
                encoding: encoding.filter(|_| content.is_some()),
                content,
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Json(PolicyBundle {
        digest: snapshot.bundle.digest().to_owned(),
        namespace: snapshot.bundle.namespace().map(str::to_owned),
        policies: snapshot.bundle.policy_count(),
        origin: snapshot.origin.into(),
        activated_at: snapshot.activated_at,
        files,
    })
}

/// `{"files": {"relative/path.cedar": "text", …}}`: the whole new bundle.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[schema(as = PolicyUpload)]
struct Upload {
    /// Bundle-relative path → file text: one `*.cedarschema`, the `*.cedar`
    /// policies, optionally `entities.json`, and optionally custom rules:
    /// `rules/manifest.json` with the `rules/*.wasm` components it names,
    /// base64-encoded.
    #[garde(length(min = 1, max = MAX_FILES))]
    files: BTreeMap<String, String>,
}

#[utoipa::path(
    put,
    path = "/v1/policies",
    operation_id = "put_policies",
    tag = "policies",
    summary = "Replace the policy bundle",
    description = "Validated, then swapped in atomically. A bad bundle is refused (400, \
        `invalid_bundle`, with located `diagnostics`) and the old one stays active.",
    request_body = Upload,
    responses((status = 200, description = "what the change did", body = Activation)),
    security(("bearer" = ["policy:admin"]))
)]
async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(upload): ApiJson<Upload>,
) -> Result<Json<Activation>, ApiError> {
    let source = BundleSource::from_files(upload.files)?;
    let activation = state.activate(source, BundleOrigin::Api, &caller.actor()).await?;
    tracing::info!(digest = %activation.digest, previous = %activation.previous_digest, "policy bundle uploaded");
    Ok(Json(activation))
}
