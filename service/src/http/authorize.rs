//! The native decision API: `POST /v1/authorize` and `/v1/authorize/batch`,
//! always explained (reasons, determining policies, errors, ids).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use warrant_engine::{EntityRef, Query};

use super::decision::{Decided, RuleVerdict, Verdict, decide, record_decisions};
use super::error::{ApiError, ItemError};
use super::json::{ApiJson, shallow_object};
use super::limits::{MAX_EVALUATIONS, MAX_ID, MAX_NAME, printable};
use crate::state::AppState;

/// Most request-carried entities in one request.
const MAX_REQUEST_ENTITIES: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/authorize", post(authorize)).route("/v1/authorize/batch", post(batch))
}

/// A Cedar entity uid.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct EntityId {
    #[serde(rename = "type")]
    #[garde(length(min = 1, max = MAX_NAME))]
    #[schema(min_length = 1, max_length = 256)]
    type_name: String,
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    id: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct AuthorizeRequest {
    #[garde(dive)]
    principal: EntityId,
    /// The action id (`view_notebook`) or full uid (`Analytics::Action::"view_notebook"`).
    #[garde(length(min = 1, max = MAX_NAME))]
    #[schema(min_length = 1, max_length = 256)]
    action: String,
    #[garde(dive)]
    resource: EntityId,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
    /// Cedar entities JSON seen only by this request (upserted over the store).
    #[serde(default)]
    #[garde(length(max = MAX_REQUEST_ENTITIES))]
    #[schema(max_items = 1000)]
    entities: Vec<Value>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct BatchRequest {
    #[garde(length(min = 1, max = MAX_EVALUATIONS), dive)]
    #[schema(min_items = 1, max_items = 1000)]
    requests: Vec<AuthorizeRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeResponse {
    decision: Verdict,
    /// The `@reason` annotations of the determining forbids, or `no_permit`.
    reasons: Vec<String>,
    /// Ids of the determining policies.
    policies: Vec<String>,
    errors: Vec<String>,
    /// What each custom Wasm rule for the action said (consulted only when
    /// Cedar allows; an enforcing deny or failure makes the decision a deny).
    rules: Vec<RuleVerdict>,
    /// Context keys the schema does not declare, which the decision did not
    /// see (absent when there are none; refused under `--strict-context`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored: Vec<String>,
    decision_id: String,
    policy_digest: String,
}

impl From<Decided> for AuthorizeResponse {
    fn from(d: Decided) -> Self {
        Self {
            decision: Verdict::of(d.decision.allowed),
            reasons: d.decision.reasons,
            policies: d.decision.policies,
            errors: d.decision.errors,
            rules: d.decision.rules.into_iter().map(RuleVerdict::from).collect(),
            ignored: d.decision.ignored,
            decision_id: d.decision_id,
            policy_digest: d.policy_digest,
        }
    }
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
    /// Always `deny`.
    decision: Verdict,
    error: ItemError,
}

fn query(state: &AppState, r: &AuthorizeRequest) -> Query {
    Query {
        principal: EntityRef { type_name: r.principal.type_name.clone(), id: r.principal.id.clone(), properties: None },
        action: r.action.clone(),
        action_properties: None,
        resource: EntityRef { type_name: r.resource.type_name.clone(), id: r.resource.id.clone(), properties: None },
        context: r.context.clone().unwrap_or_default(),
        entities: r.entities.clone(),
        undeclared: state.undeclared(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/authorize",
    operation_id = "authorize",
    tag = "native",
    summary = "Decide one Cedar request, explained",
    description = "A deny is a 200 with `\"decision\": \"deny\"`.",
    request_body = AuthorizeRequest,
    responses((status = 200, description = "the decision with its reasons, policies, errors and ids", body = AuthorizeResponse)),
    security(("bearer" = ["decide"]))
)]
async fn authorize(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AuthorizeRequest>,
) -> Result<Json<AuthorizeResponse>, ApiError> {
    let snapshot = state.snapshot();
    let q = query(&state, &body);
    let decided = decide(&state, &snapshot, &q).await?;
    record_decisions(&state, &[(&decided, &q)]).await?;
    Ok(Json(decided.into()))
}

/// Every request is decided against the same snapshot; a failing one gets an
/// `error` in its place and the others are still answered.
#[utoipa::path(
    post,
    path = "/v1/authorize/batch",
    operation_id = "authorize_batch",
    tag = "native",
    summary = "Decide up to 1000 Cedar requests against one policy snapshot",
    description = "A request that cannot be decided is answered in its place with a deny and an `error`.",
    request_body = BatchRequest,
    responses((status = 200, description = "one result per request, in order", body = BatchAnswer)),
    security(("bearer" = ["decide"]))
)]
async fn batch(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BatchRequest>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let snapshot = state.snapshot();
    let queries: Vec<Query> = body.requests.iter().map(|r| query(&state, r)).collect();
    let mut outcomes = Vec::with_capacity(queries.len());
    for q in &queries {
        outcomes.push(decide(&state, &snapshot, q).await);
    }
    let pairs: Vec<(&Decided, &Query)> =
        outcomes.iter().zip(&queries).filter_map(|(o, q)| o.as_ref().ok().map(|d| (d, q))).collect();
    record_decisions(&state, &pairs).await?;
    let results = outcomes
        .into_iter()
        .map(|o| match o {
            Ok(d) => BatchResult::Decided(d.into()),
            Err(e) => BatchResult::Failed(BatchFailure { decision: Verdict::Deny, error: e.into() }),
        })
        .collect();
    Ok(Json(BatchAnswer { results, policy_digest: snapshot.bundle.digest().to_owned() }))
}
