//! The one error type every handler returns, rendered as
//! `{"error": {"code", "message", "field"?, "diagnostics"?}}`.
//!
//! Client mistakes are 4xx and say what is wrong; anything internal is a 500
//! with a generic message, logged in full with the request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warrant_engine::{BundleError, Diagnostic, RequestError};

use crate::state::ChangeError;

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    diagnostics: Vec<Diagnostic>,
    close_connection: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [Diagnostic],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, diagnostics: Vec::new(), close_connection: false }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        if !field.is_empty() {
            self.field = Some(field);
        }
        self
    }

    /// Tells the client this connection will be closed (`Connection: close`).
    pub fn closing_connection(mut self) -> Self {
        self.close_connection = true;
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// A server-side failure: logged here, hidden from the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the service log")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                diagnostics: &self.diagnostics,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.close_connection {
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let field = e.field().unwrap_or_default();
        Self::bad_request(e.code(), e.to_string()).with_field(field)
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::internal(e)
    }
}

impl From<BundleError> for ApiError {
    fn from(e: BundleError) -> Self {
        let diagnostics = e.diagnostics();
        let mut error = Self::bad_request("invalid_bundle", e.to_string());
        error.diagnostics = diagnostics;
        error
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Bundle(b) => b.into(),
            ChangeError::EntitiesVsSchema(inner) => Self::bad_request(
                "entities_do_not_fit_schema",
                format!("the stored entities do not conform to this bundle's schema: {inner}"),
            ),
            ChangeError::Entities(inner) => Self::bad_request("invalid_entities", inner.to_string()),
            ChangeError::Store(inner) => Self::internal(inner),
            ChangeError::Audit(inner) => Self::internal(inner),
        }
    }
}
