//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, generated from
//! the handlers' `#[utoipa::path]` annotations and their types' `ToSchema`
//! derives, so that changing a handler's types changes the document.
//! `tests/e2e/openapi.rs` checks every route is in it; `tests/openapi/run`
//! fuzzes a live service against it.
//!
//! The responses that cross-cutting layers produce are added here, the way
//! the layers themselves are added in `mod.rs` rather than in each handler:
//! 401 and 403 on every operation with a security requirement (`guard.rs`);
//! 400 and 413 on every operation with a JSON body (`json.rs`). Each
//! guarded operation names the scope it needs three ways: the scopes of its
//! `bearer` requirement (OpenAPI 3.1 allows role names there for non-OAuth
//! schemes), an `x-required-scope` extension, and its description.
//!
//! This module only gathers: each response type is defined, and returned,
//! by the handler that answers with it; `service/tests/openapi_responses.rs`
//! holds every documented response to the real one.

use std::sync::LazyLock;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::audit::AuditRecord;
use super::error::{self, ErrorBody};
use super::guard;
use super::webhooks::{Document as WebhookDocument, WebhookAccepted};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    summary = "This document (public)",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object))
)]
async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&*DOCUMENT)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "warrant",
        description = "A policy decision point: AuthZEN Authorization API 1.0 and a native Cedar API, \
            credential resolution, token lifecycle events, and a verifiable audit log.\n\n\
            Every operation but health, metadata, this document and webhooks needs \
            `Authorization: Bearer <api key>` with the scope it names. Errors are \
            `{\"error\": {\"code\", \"message\", \"field\"?, \"diagnostics\"?}}`; a deny is a 200."
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::console::index,
        super::console::file,
        super::authzen::configuration,
        document,
        super::authzen::evaluation,
        super::authzen::evaluations,
        super::search::resources,
        super::search::subjects,
        super::search::actions,
        super::authorize::authorize,
        super::authorize::batch,
        super::credentials::handle,
        super::tokens::record_event,
        super::grants::start,
        super::grants::callback,
        super::grants::import,
        super::grants::read,
        super::grants::disconnect,
        super::audit::events,
        super::audit::export,
        super::audit::verify_log,
        super::audit::checkpoint,
        super::audit::inclusion,
        super::audit::consistency,
        super::audit::digest,
        super::overview::overview,
        super::log::checkpoint,
        super::log::tile,
        super::log::entries,
        super::entities::list,
        super::entities::replace,
        super::policies::show,
        super::policies::replace,
    ),
    // The schemas no operation's `#[utoipa::path]` names: the error body is
    // referenced by the responses `Conventions` adds, `AuditRecord` by the
    // export's description, `WebhookAccepted` by the webhook operation.
    components(schemas(ErrorBody, AuditRecord, WebhookAccepted)),
    modifiers(&Conventions, &WebhookDocument),
    tags(
        (name = "authzen", description = "AuthZEN Authorization API 1.0: evaluation, search, metadata"),
        (name = "native", description = "Cedar requests, always explained"),
        (name = "credentials", description = "Which credential a query runs under"),
        (name = "tokens", description = "Token lifecycle events"),
        (name = "vault", description = "The token vault: users' OAuth grants, held, refreshed and revoked by warrant"),
        (name = "webhooks", description = "Signed inbound deliveries from identity providers"),
        (name = "audit", description = "The auditor's API: query, export, verify, checkpoints, proofs"),
        (name = "entities", description = "The stored Cedar entities"),
        (name = "policies", description = "The active policy bundle"),
        (name = "health", description = "Liveness and readiness"),
        (name = "console", description = "The auditor's console: a page whose data needs an `audit:read` key"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme and the responses of the cross-cutting layers.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(guard::SCHEME, guard::security_scheme());
        for (name, description) in ERRORS {
            components.responses.insert((*name).to_owned(), RefOr::T(error::documented(description)));
        }
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                conventions(operation);
            }
        }
    }
}

/// The reusable error responses: component name and description.
const ERRORS: &[(&str, &str)] = &[
    (
        "BadRequest",
        "a body not labelled `Content-Type: application/json`, malformed JSON, a wrong type, a missing \
         field or a failed validation; `error.field` names the field when there is one",
    ),
    ("Unauthorized", "no API key, or one that is malformed, unknown, expired or revoked"),
    ("Forbidden", "the API key lacks the scope this operation needs"),
    ("PayloadTooLarge", "the body is larger than the limit"),
    (
        "TooManyRequests",
        "a rate limit is exceeded (this address's refusals, its requests, or the API key's requests); \
         `Retry-After` says when to retry",
    ),
];

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
}

fn conventions(operation: &mut Operation) {
    let scopes: Vec<String> = operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|value| value.get(guard::SCHEME).cloned())
        .filter_map(|scopes| serde_json::from_value::<Vec<String>>(scopes).ok())
        .flatten()
        .collect();
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, name: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if operation.request_body.is_some() {
        add("400", "BadRequest");
        add("413", "PayloadTooLarge");
    }
    if operation.security.is_some() {
        add("401", "Unauthorized");
        add("403", "Forbidden");
    }
    add("429", "TooManyRequests");
    if let Some(scope) = scopes.first() {
        let needs = format!("Requires an API key with the `{scope}` scope.");
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{needs}"),
            _ => needs,
        });
        operation.extensions.get_or_insert_with(Default::default).insert("x-required-scope".to_owned(), json!(scope));
    }
}
