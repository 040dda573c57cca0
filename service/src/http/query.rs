//! `ApiQuery<T>`: query-string parameters whose rejection is an [`ApiError`]
//! (axum's own is plain text).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa::openapi::schema::SchemaFormat;
use utoipa::openapi::{Object, ObjectBuilder, Type};

use warrant_engine::Timestamp;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query parameters: {}", e.body_text())))
    }
}

/// The schema of a `u64` query parameter the service accepts whole: without
/// utoipa's default `int64` format, which would cap it at 2^63 - 1.
pub fn unsigned() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::Custom("uint64".to_owned())))
        .minimum(Some(0))
        .build()
}

/// An optional RFC 3339 query parameter `field` as a time; a 400 naming the
/// parameter when it is not one.
pub fn utc(field: &str, value: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            Timestamp::parse(&v).map_err(|_| {
                ApiError::bad_request("invalid_query", format!("`{field}`: `{v}` is not an RFC 3339 time"))
                    .with_field(field)
            })
        })
        .transpose()
}
