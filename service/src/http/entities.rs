//! `GET /v1/entities` and `PUT /v1/entities`: the stored entity set, replaced
//! whole and atomically after validation against the active schema.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use garde::Validate;
use serde::Deserialize;

use super::error::ApiError;
use super::json::ApiJson;
use crate::state::AppState;

/// Most entities in one upload.
const MAX_ENTITIES: usize = 1_000_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/entities", get(list).put(replace))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.store().entities().await.map_err(ApiError::internal)?))
}

/// The body is a Cedar entities JSON array (the format Cedar's tools read).
#[derive(Debug, Deserialize, Validate)]
#[serde(transparent)]
struct Upload(#[garde(length(max = MAX_ENTITIES))] Vec<Value>);

async fn replace(
    State(state): State<AppState>,
    ApiJson(Upload(docs)): ApiJson<Upload>,
) -> Result<Json<Value>, ApiError> {
    let count = state.replace_entities(docs).await?;
    Ok(Json(json!({ "stored": count })))
}
