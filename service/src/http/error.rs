//! The one error type every handler returns, rendered as [`ErrorBody`]:
//! `{"error": {"code", "message", "field"?, "diagnostics"?}}`.
//!
//! Client mistakes are 4xx and say what is wrong; anything internal is a 500
//! with a generic message. Building an error does nothing else: the detail
//! of an internal one travels in the response's extensions ([`Failure`]) to
//! the one layer that logs it with the request id (`mod.rs`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Ref};
use warrant_engine::{BundleError, RequestError};

use crate::audit::AuditError;
use crate::rules::RulesBusy;
use crate::state::ChangeError;
use crate::store::StoreError;
use crate::tokens::TokenConflict;

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    diagnostics: Vec<Diagnostic>,
    close_connection: bool,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u16>,
    /// Refuses a request that proved no secret ([`Outsider`]).
    outsider: bool,
    /// For a 5xx: what really happened, for the log only.
    failure: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case (`invalid_body`, `unauthorized`, `not_found`, …).
    code: &'static str,
    message: String,
    /// The offending field, as a JSON path (`subject.type`, `evaluations[2].action`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// Located problems of a refused policy bundle.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    diagnostics: Vec<Diagnostic>,
}

/// One finding in a bundle, with how much it matters: the errors of a
/// refused upload (400 `invalid_bundle`) and the warnings of an accepted
/// one (docs/cli.md#check).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Diagnostic {
    severity: Severity,
    /// Bundle-relative path of the file at fault.
    file: String,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    /// 1-based column, in characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    message: String,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DiagnosticSeverity)]
pub enum Severity {
    /// Refuses the bundle: a syntax or type error, a forbid that can never
    /// apply, a rule that rejects its configuration.
    Error,
    /// Probably a mistake, refusing nothing: a permit that can never apply,
    /// a condition that can never hold where it could only have allowed more.
    Warning,
}

impl Diagnostic {
    /// A finding of a bundle that loads anyway.
    pub fn warning(d: warrant_engine::Diagnostic) -> Self {
        Self { severity: Severity::Warning, ..Self::from(d) }
    }
}

/// An error: what the engine reports when a bundle does not load.
impl From<warrant_engine::Diagnostic> for Diagnostic {
    fn from(d: warrant_engine::Diagnostic) -> Self {
        let warrant_engine::Diagnostic { file, line, column, message } = d;
        Self { severity: Severity::Error, file, line, column, message }
    }
}

/// A batch item that could not be decided: its error, in its answer's place
/// (`field` is always present, null when no one field is at fault).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemError {
    code: &'static str,
    message: String,
    #[schema(required = true)]
    field: Option<String>,
}

/// The detail of a server-side failure, carried in the response's
/// extensions to the layer that logs it; never sent.
#[derive(Debug, Clone)]
pub struct Failure(pub String);

/// Marks a response refusing a request that proved no secret (a malformed
/// or unknown API key, an unsigned webhook delivery), for the throttle.
#[derive(Debug, Clone, Copy)]
pub struct Outsider;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            diagnostics: Vec::new(),
            close_connection: false,
            retry_after: None,
            outsider: false,
            failure: None,
        }
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

    /// Marks the refusal of a request that proved no secret ([`Outsider`]).
    pub fn from_outsider(mut self) -> Self {
        self.outsider = true;
        self
    }

    /// Adds `Retry-After: <seconds>`.
    pub fn retry_after(mut self, seconds: u16) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A server-side failure: the client is told only that it happened; the
    /// detail goes to the log with the response (see [`Failure`]).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the service log");
        e.failure = Some(error.to_string());
        e
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

    /// The body of a refusal in a batch, when the batch goes on without it.
    pub fn into_item(self) -> ItemError {
        ItemError { code: self.code, message: self.message, field: self.field }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                diagnostics: self.diagnostics,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.close_connection {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.outsider {
            response.extensions_mut().insert(Outsider);
        }
        if let Some(failure) = self.failure {
            response.extensions_mut().insert(Failure(failure));
        }
        response
    }
}

/// A documented error response: `description`, with the [`ErrorBody`] schema.
pub fn documented(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
        .build()
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let field = e.field().unwrap_or_default();
        Self::bad_request(e.code(), e.to_string()).with_field(field)
    }
}

impl From<RequestError> for ItemError {
    fn from(e: RequestError) -> Self {
        ApiError::from(e).into_item()
    }
}

/// No custom-rule slot within the wait: 503, retry in a second.
impl From<RulesBusy> for ApiError {
    fn from(e: RulesBusy) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "rules_busy", e.to_string()).retry_after(1)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        Self::internal(e)
    }
}

impl From<TokenConflict> for ApiError {
    fn from(conflict: TokenConflict) -> Self {
        let code = match conflict {
            TokenConflict::RefreshRevoked(_) | TokenConflict::IssueRevoked(_) => "token_revoked",
            TokenConflict::Mismatch { .. } => "token_mismatch",
        };
        Self::conflict(code, conflict.to_string())
    }
}

impl From<BundleError> for ApiError {
    fn from(e: BundleError) -> Self {
        let diagnostics = e.diagnostics().into_iter().map(Diagnostic::from).collect();
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
            ChangeError::Store(inner) => inner.into(),
            ChangeError::Audit(inner) | ChangeError::Internal(inner) => Self::internal(inner),
            ChangeError::TooManyNewPermits { max, impact } => Self::conflict(
                "too_many_new_permits",
                format!(
                    "the change newly permits {} request(s) over the stored entities, more than `max_new_permits={max}`; \
                     nothing changed (see `dry_run=true` for the requests)",
                    impact.newly_permitted
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An internal error's detail goes to the log layer, never to the client.
    #[tokio::test]
    async fn an_internal_error_keeps_its_detail_out_of_the_body() {
        let response = ApiError::internal("disk `/var/lib/warrant` is full").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let failure = response.extensions().get::<Failure>().map(|f| f.0.clone());
        assert_eq!(failure.as_deref(), Some("disk `/var/lib/warrant` is full"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "internal", "message": "internal error; see the service log"}})
        );
    }
}
