//! `GET /v1/entities` and `PUT /v1/entities`: the stored entity set, replaced
//! whole and atomically after validation against the active schema.

use axum::Extension;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::guard::Caller;
use super::json::ApiJson;
use crate::state::AppState;

/// Most entities in one upload.
const MAX_ENTITIES: usize = 1_000_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/entities", get(list).put(replace))
}

#[utoipa::path(
    get,
    path = "/v1/entities",
    operation_id = "get_entities",
    tag = "entities",
    summary = "The stored entities (Cedar entities JSON)",
    responses((status = 200, description = "every stored entity", body = Vec<Object>)),
    security(("bearer" = ["policy:admin"]))
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.store().entities().await?))
}

/// The body is a Cedar entities JSON array (the format Cedar's tools read).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(transparent)]
#[schema(as = EntitiesUpload, value_type = Vec<Object>)]
struct Upload(#[garde(length(max = MAX_ENTITIES))] Vec<Value>);

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitiesStored {
    /// How many entities are stored now.
    stored: usize,
}

#[utoipa::path(
    put,
    path = "/v1/entities",
    operation_id = "put_entities",
    tag = "entities",
    summary = "Replace the stored entities",
    description = "Validated against the active schema, then swapped in whole and atomically; \
        refused entities leave the stored set unchanged.",
    request_body = Upload,
    responses((status = 200, description = "how many entities are now stored", body = EntitiesStored)),
    security(("bearer" = ["policy:admin"]))
)]
async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(Upload(docs)): ApiJson<Upload>,
) -> Result<Json<EntitiesStored>, ApiError> {
    let stored = state.replace_entities(docs, &caller.actor()).await?;
    Ok(Json(EntitiesStored { stored }))
}
