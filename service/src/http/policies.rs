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
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};
use warrant_engine::BundleSource;

use super::error::ApiError;
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

#[utoipa::path(
    get,
    path = "/v1/policies",
    operation_id = "get_policies",
    tag = "policies",
    summary = "The active policy bundle",
    params(ShowParams),
    responses(
        (status = 200, description = "its digest, namespace, origin and files", body = super::openapi::PolicyBundle),
        (status = 400, description = "an invalid query parameter", body = super::openapi::ApiErrorBody),
    ),
    security(("bearer" = ["policy:admin"]))
)]
async fn show(State(state): State<AppState>, ApiQuery(params): ApiQuery<ShowParams>) -> Json<Value> {
    let snapshot = state.snapshot();
    let source = snapshot.bundle.source();
    let text = source.files().map(|(path, text)| (path, text.as_bytes(), None));
    // Rule components are binary: their content is shown base64-encoded, the
    // form `PUT /v1/policies` takes.
    let binary = source.binaries().map(|(path, bytes)| (path, bytes, Some("base64")));
    let mut files: Vec<Value> = text
        .chain(binary)
        .map(|(path, bytes, encoding)| {
            let mut file = json!({"path": path, "bytes": bytes.len(), "sha256": hex::encode(Sha256::digest(bytes))});
            if params.content
                && let Some(obj) = file.as_object_mut()
            {
                let content = match encoding {
                    Some(_) => BASE64.encode(bytes),
                    None => String::from_utf8_lossy(bytes).into_owned(),
                };
                obj.insert("content".into(), Value::String(content));
                if let Some(encoding) = encoding {
                    obj.insert("encoding".into(), json!(encoding));
                }
            }
            file
        })
        .collect();
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Json(json!({
        "digest": snapshot.bundle.digest(),
        "namespace": snapshot.bundle.namespace(),
        "policies": snapshot.bundle.policy_count(),
        "origin": snapshot.origin,
        "activated_at": snapshot.activated_at,
        "files": files,
    }))
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
