//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, generated from
//! the handlers' `#[utoipa::path]` annotations and their types' `ToSchema`
//! derives, so that changing a handler's types changes the document.
//! `tests/e2e/openapi.rs` checks every route is in it; `tests/openapi/run`
//! fuzzes a live service against it.
//!
//! The responses that cross-cutting layers produce are added here, the way
//! the layers themselves are added in `mod.rs` rather than in each handler:
//! 401 and 403 on every operation with a security requirement (`guard.rs`);
//! 400, 413 and 415 on every operation with a JSON body (`json.rs`). Each
//! guarded operation names the scope it needs three ways: the scopes of its
//! `bearer` requirement (OpenAPI 3.1 allows role names there for non-OAuth
//! schemes), an `x-required-scope` extension, and its description.
//!
//! The response shapes that handlers build with `json!` are described by the
//! documentation-only types below; the e2e suite and the fuzzer hold them to
//! the real answers.

// The shapes below are never built: they only describe JSON built elsewhere.
#![expect(dead_code, reason = "documentation-only types describe JSON the handlers build with `json!`")]

use std::sync::LazyLock;

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::SchemaFormat;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Object, ObjectBuilder, Ref, RefOr, Required, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use super::authorize::AuthorizeResponse;
use super::authzen::Answer;
use crate::credentials::Credential;
use crate::state::AppState;
use crate::tokens::{TokenEventKind, TokenState};

/// The name of the API-key security scheme.
pub const BEARER: &str = "bearer";

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
        super::tokens::record,
        super::audit::events,
        super::audit::export,
        super::audit::verify_log,
        super::audit::checkpoint,
        super::audit::inclusion,
        super::audit::consistency,
        super::audit::digest,
        super::entities::list,
        super::entities::replace,
        super::policies::show,
        super::policies::replace,
    ),
    components(schemas(ApiErrorBody, AuditRecord, WebhookEvent, WebhookAccepted)),
    modifiers(&Conventions, &Webhooks),
    tags(
        (name = "authzen", description = "AuthZEN Authorization API 1.0: evaluation, search, metadata"),
        (name = "native", description = "Cedar requests, always explained"),
        (name = "credentials", description = "Which credential a query runs under"),
        (name = "tokens", description = "Token lifecycle events"),
        (name = "webhooks", description = "Signed inbound deliveries from identity providers"),
        (name = "audit", description = "The auditor's API: query, export, verify, checkpoints, proofs"),
        (name = "entities", description = "The stored Cedar entities"),
        (name = "policies", description = "The active policy bundle"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// A `u64` query parameter the service accepts whole: without utoipa's
/// default `int64` format, which would cap it at 2^63 - 1.
pub fn unsigned() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::Custom("uint64".to_owned())))
        .minimum(Some(0))
        .build()
}

/// Adds the bearer scheme and the responses of the cross-cutting layers.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("wrnt_<id>_<secret>")
                    .description(Some(
                        "An API key minted with `warrant keys create --scope SCOPE…`. Each operation \
                         names the scope it needs (`decide`, `events:write`, `audit:read`, \
                         `policy:admin`).",
                    ))
                    .build(),
            ),
        );
        for (name, description) in ERRORS {
            components.responses.insert((*name).to_owned(), RefOr::T(error_response(description)));
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
        "malformed JSON, a wrong type, a missing field or a failed validation; `error.field` names the \
         field when there is one",
    ),
    ("Unauthorized", "no API key, or one that is malformed, unknown, expired or revoked"),
    ("Forbidden", "the API key lacks the scope this operation needs"),
    ("PayloadTooLarge", "the body is larger than the limit"),
    ("UnsupportedMediaType", "the body is not JSON (`Content-Type: application/json`)"),
];

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
        .build()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
}

fn conventions(operation: &mut Operation) {
    let scopes: Vec<String> = operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|value| value.get(BEARER).cloned())
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
        add("415", "UnsupportedMediaType");
    }
    if operation.security.is_some() {
        add("401", "Unauthorized");
        add("403", "Forbidden");
    }
    if let Some(scope) = scopes.first() {
        let needs = format!("Requires an API key with the `{scope}` scope.");
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{needs}"),
            _ => needs,
        });
        operation.extensions.get_or_insert_with(Default::default).insert("x-required-scope".to_owned(), json!(scope));
    }
}

/// `POST /v1/webhooks/{source}`, whose handler belongs to the webhooks
/// module: authenticated by a signature over the raw body, not an API key.
struct Webhooks;

impl Modify for Webhooks {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let source = ParameterBuilder::new()
            .name("source")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("a source configured in the webhooks file"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let error = |name: &str| RefOr::Ref(Ref::from_response_name(name));
        let plain = |description: &str| RefOr::T(error_response(description));
        let accepted = ResponseBuilder::new()
            .description("applied and audited as `webhook.received`")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("WebhookAccepted"))).build(),
            )
            .build();
        let operation = OperationBuilder::new()
            .tag("webhooks")
            .summary(Some("Receive a signed delivery (no API key)"))
            .description(Some(
                "Authenticated by its signature: Standard Webhooks (`webhook-id`, `webhook-timestamp`, \
                 `webhook-signature`) or an HMAC-SHA256 of the body (`x-signature-256` or \
                 `x-hub-signature-256`), as the source is configured. Payloads: `token.revoked`, \
                 `token.refreshed`, `user.deprovisioned` (`{\"type\", \"data\"}`). Every refusal is \
                 audited as `webhook.rejected`.",
            ))
            .operation_id(Some("receive_webhook"))
            .parameter(source)
            .parameter(header("webhook-id", "Standard Webhooks: the delivery id"))
            .parameter(header("webhook-timestamp", "Standard Webhooks: Unix seconds, within 5 minutes"))
            .parameter(header("webhook-signature", "Standard Webhooks: `v1,<base64 HMAC>`…"))
            .parameter(header("x-signature-256", "`sha256=<hex HMAC of the body>`"))
            .parameter(header("x-hub-signature-256", "`sha256=<hex HMAC of the body>` (GitHub's name)"))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("WebhookEvent"))).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ))
            .response("200", accepted)
            .response("400", plain("missing or malformed signature headers, or an unsupported payload"))
            .response("401", plain("a bad signature, or a timestamp more than 5 minutes off"))
            .response("404", plain("no such source (`unknown_source`)"))
            .response("409", plain("a replayed delivery (`replayed`), or one the token's state contradicts"))
            .response("413", error("PayloadTooLarge"))
            .build();
        doc.paths.add_path_operation("/v1/webhooks/{source}", vec![HttpMethod::Post], operation);
    }
}

// ---- Errors ----------------------------------------------------------------

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ApiErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case (`invalid_body`, `unauthorized`, `not_found`, …).
    code: String,
    message: String,
    /// The offending field, as a JSON path (`subject.type`, `evaluations[2].action`).
    field: Option<String>,
    /// Located problems of a refused policy bundle.
    diagnostics: Option<Vec<Diagnostic>>,
}

/// One problem found in a bundle.
#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnostic {
    /// Bundle-relative path of the file at fault.
    file: String,
    /// 1-based line.
    line: Option<u64>,
    /// 1-based column, in characters.
    column: Option<u64>,
    message: String,
}

// ---- Shared ----------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// What one custom rule said about a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleVerdict {
    /// The rule's name in `rules/manifest.json`.
    rule: String,
    mode: RuleMode,
    verdict: RuleOutcome,
    /// The rule's reason code (`token_too_old`); for an `error`, the failure:
    /// `out_of_fuel`, `timeout`, `memory_limit`, `trap` or `instantiate`.
    reason: Option<String>,
    /// For an `error`: what happened.
    error: Option<String>,
}

/// `enforce`: a deny or failure denies the request. `observe`: reported only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    Enforce,
    Observe,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleOutcome {
    Allow,
    Deny,
    Abstain,
    Error,
}

// ---- Health and metadata ---------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    status: String,
    /// The active bundle's digest.
    policy_digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unready {
    /// `unavailable`.
    status: String,
    reason: String,
}

/// AuthZEN PDP metadata: absolute endpoint URLs.
#[derive(Debug, Serialize, ToSchema)]
pub struct PdpMetadata {
    policy_decision_point: String,
    access_evaluation_endpoint: String,
    access_evaluations_endpoint: String,
    search_subject_endpoint: String,
    search_resource_endpoint: String,
    search_action_endpoint: String,
}

// ---- Decisions -------------------------------------------------------------

/// A batch answer, or one decision when the request had no `evaluations`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EvaluationsResponse {
    Batch(Evaluations),
    Single(Answer),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Evaluations {
    /// One per evaluation, in order; fewer if `evaluations_semantic` stopped the batch.
    evaluations: Vec<Answer>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchEntity {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchAction {
    name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageInfo {
    /// Pass as `page.token` for the next page; empty on the last page.
    next_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitySearchResults {
    results: Vec<SearchEntity>,
    page: PageInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<SearchContext>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionSearchResults {
    results: Vec<SearchAction>,
    page: PageInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<SearchContext>,
}

/// Present only when there is something to say about the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchContext {
    /// E.g. a given subject that is not in the entity store (nothing can be
    /// listed for it).
    warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// One per request, in order.
    results: Vec<BatchResult>,
    /// The digest of the bundle every request was decided against.
    policy_digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Decided(AuthorizeResponse),
    Failed(BatchFailure),
}

/// A request of the batch that could not be decided: a deny with the reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchFailure {
    decision: Verdict,
    error: ItemError,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    code: String,
    message: String,
    #[schema(required = true)]
    field: Option<String>,
}

/// `credential` when allowed; the deny `reasons` otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resolution {
    decision: Verdict,
    credential: Option<Credential>,
    reasons: Vec<String>,
}

// ---- Tokens and webhooks ---------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEventRecorded {
    /// The audit record's `seq`.
    seq: u64,
    /// The audit record's `mac`.
    mac: String,
    kind: TokenEventKind,
    /// The token's state after the event (null for `token.used`).
    #[schema(required = true)]
    token: Option<TokenState>,
}

/// A webhook payload (Standard Webhooks' `{type, timestamp?, data}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEvent {
    /// `token.revoked`, `token.refreshed` or `user.deprovisioned`.
    #[serde(rename = "type")]
    type_name: String,
    /// `token_id`, `owner`, `connection`, `expires_at`, `role`, as the type needs.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// Tokens whose state changed.
    applied: u64,
    /// The `webhook.received` record's `seq`.
    seq: u64,
}

// ---- Audit -----------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    events: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<u64>,
}

/// One sealed audit record (also one line of the export).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    seq: u64,
    /// RFC 3339 UTC.
    ts: String,
    kind: String,
    actor: String,
    /// The token id's keyed digest.
    token_id: Option<String>,
    token_owner: Option<String>,
    connection: Option<String>,
    project: Option<String>,
    decision: Option<Verdict>,
    reasons: Option<Vec<String>>,
    policy_digest: Option<String>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    key_id: String,
    /// The previous record's `mac` (zeros for seq 1).
    prev_mac: String,
    mac: String,
}

/// A signed tree head.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Checkpoint)]
pub struct CheckpointDoc {
    /// Records covered: seq 1..=tree_size.
    tree_size: u64,
    /// RFC 9162 root, 64 hex digits.
    root: String,
    /// When it was signed, RFC 3339 UTC.
    ts: String,
    key_id: String,
    mac: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    seq: u64,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    root: String,
    proof: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    from: u64,
    to: u64,
    root_from: String,
    root_to: String,
    proof: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Digest {
    /// `hmac-sha256:<hex>`.
    digest: String,
}

// ---- Entities and policies -------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitiesStored {
    stored: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BundleOrigin {
    /// Read from the policies directory (at start or on SIGHUP).
    Disk,
    /// Uploaded with `PUT /v1/policies`.
    Api,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyBundle {
    digest: String,
    /// The schema's namespace, if it has one.
    #[schema(required = true)]
    namespace: Option<String>,
    /// How many policies.
    policies: u64,
    origin: BundleOrigin,
    /// RFC 3339 UTC.
    activated_at: String,
    files: Vec<PolicyFile>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyFile {
    path: String,
    bytes: u64,
    sha256: String,
    /// The text, with `?content=true`.
    content: Option<String>,
}
