//! AuthZEN Authorization API 1.0: `POST /access/v1/evaluation`,
//! `POST /access/v1/evaluations` and the PDP metadata document.
//!
//! A deny is a 200 `{"decision": false}`. Answers carry only `decision`
//! unless the caller sets `options.explain` (interop harnesses compare batch
//! answers as exact JSON); explained answers add a `context` with reasons,
//! determining policies, errors, `decision_id` and `policy_digest`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use warrant_engine::{EntityRef, Query};

use super::decision::{Decided, RuleVerdict, decide, record_decisions, rule_verdicts};
use super::error::{ApiError, ItemError};
use super::json::{ApiJson, shallow_object};
use super::limits::{MAX_EVALUATIONS, MAX_ID, MAX_NAME, printable};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/access/v1/evaluation", post(evaluation)).route("/access/v1/evaluations", post(evaluations))
}

/// The PDP metadata document: public, like health. Its URLs start with
/// `base`: `--public-url` when the operator set one, otherwise the address
/// the service listens on. Never the request's `Host` header, which anyone
/// can set (a poisoned cache would send clients elsewhere).
pub fn metadata_router(base: String) -> Router<AppState> {
    Router::new().route("/.well-known/authzen-configuration", get(move || configuration(base.clone())))
}

/// An AuthZEN subject or resource.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
pub struct Entity {
    /// A Cedar entity type, qualified or resolved in the bundle's namespace.
    #[serde(rename = "type")]
    #[garde(length(min = 1, max = MAX_NAME))]
    #[schema(min_length = 1, max_length = 256)]
    pub type_name: String,
    #[garde(length(min = 1, max = MAX_ID), custom(printable))]
    #[schema(min_length = 1, max_length = 1024)]
    pub id: String,
    /// Attributes, merged over the stored entity of that id.
    #[serde(default)]
    #[garde(custom(shallow_object))]
    pub properties: Option<Map<String, Value>>,
}

impl Entity {
    fn to_ref(&self) -> EntityRef {
        EntityRef { type_name: self.type_name.clone(), id: self.id.clone(), properties: self.properties.clone() }
    }
}

#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
pub struct Action {
    /// The Cedar action id.
    #[garde(length(min = 1, max = MAX_NAME))]
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// Reach Cedar as the context's `action` record (`context.action.soft`),
    /// the attributes the action's context declares for it; others are
    /// ignored (or refused under `--strict-context`).
    #[serde(default)]
    #[garde(custom(shallow_object))]
    pub properties: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
pub struct Options {
    #[serde(default)]
    #[garde(skip)]
    pub evaluations_semantic: Semantic,
    /// Non-standard: add reasons, policies and ids to each answer's `context`.
    #[serde(default)]
    #[garde(skip)]
    pub explain: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct EvaluationRequest {
    #[garde(dive)]
    subject: Entity,
    #[garde(dive)]
    action: Action,
    #[garde(dive)]
    resource: Entity,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    #[garde(dive)]
    options: Option<Options>,
}

/// Defaults (`subject`, `action`, `resource`, `context`) and the batch.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct EvaluationsRequest {
    #[serde(default)]
    #[garde(dive)]
    subject: Option<Entity>,
    #[serde(default)]
    #[garde(dive)]
    action: Option<Action>,
    #[serde(default)]
    #[garde(dive)]
    resource: Option<Entity>,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
    /// Without it (or empty), the defaults are one evaluation.
    #[serde(default)]
    #[garde(length(max = MAX_EVALUATIONS), dive)]
    #[schema(max_items = 1000)]
    evaluations: Option<Vec<EvaluationItem>>,
    #[serde(default)]
    #[garde(dive)]
    options: Option<Options>,
}

/// One batch item: each object present replaces the default whole.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct EvaluationItem {
    #[serde(default)]
    #[garde(dive)]
    subject: Option<Entity>,
    #[serde(default)]
    #[garde(dive)]
    action: Option<Action>,
    #[serde(default)]
    #[garde(dive)]
    resource: Option<Entity>,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
}

/// A decision: `true` permits. `context` comes with `options.explain`, or
/// with an `error` for a batch item that could not be decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct Answer {
    decision: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<AnswerContext>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AnswerContext {
    Explained(Explanation),
    Failed(Failed),
}

/// Why the decision is what it is (`options.explain`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    decision_id: String,
    /// The digest of the bundle the request was decided against.
    policy_digest: String,
    /// The `@reason` annotations of the determining forbids, or `no_permit`.
    reasons: Vec<String>,
    /// Ids of the determining policies.
    policies: Vec<String>,
    errors: Vec<String>,
    rules: Vec<RuleVerdict>,
    /// Context keys and properties the schema does not declare: not seen
    /// by the decision (`context.ip`, `subject.properties.dept`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored: Vec<String>,
}

/// A batch item that could not be decided (its `decision` is `false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Failed {
    error: ItemError,
}

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

fn query(
    state: &AppState,
    subject: &Entity,
    action: &Action,
    resource: &Entity,
    context: Option<&Map<String, Value>>,
) -> Query {
    Query {
        principal: subject.to_ref(),
        action: action.name.clone(),
        action_properties: action.properties.clone(),
        resource: resource.to_ref(),
        context: context.cloned().unwrap_or_default(),
        entities: Vec::new(),
        undeclared: state.undeclared(),
    }
}

fn answer(decided: &Decided, explain: bool) -> Answer {
    let context = explain.then(|| {
        AnswerContext::Explained(Explanation {
            decision_id: decided.decision_id.clone(),
            policy_digest: decided.policy_digest.clone(),
            reasons: decided.decision.reasons.clone(),
            policies: decided.decision.policies.clone(),
            errors: decided.decision.errors.clone(),
            rules: rule_verdicts(&decided.decision.rules),
            ignored: decided.decision.ignored.clone(),
        })
    });
    Answer { decision: decided.decision.allowed, context }
}

#[utoipa::path(
    post,
    path = "/access/v1/evaluation",
    operation_id = "access_evaluation",
    tag = "authzen",
    summary = "Decide one access request (AuthZEN Access Evaluation API)",
    description = "A deny is a 200 with `\"decision\": false`.",
    request_body = EvaluationRequest,
    responses((status = 200, description = "the decision", body = Answer)),
    security(("bearer" = ["decide"]))
)]
async fn evaluation(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EvaluationRequest>,
) -> Result<Json<Answer>, ApiError> {
    let snapshot = state.snapshot();
    let q = query(&state, &body.subject, &body.action, &body.resource, body.context.as_ref());
    let decided = decide(&state, &snapshot, &q).await?;
    record_decisions(&state, &[(&decided, &q)]).await?;
    Ok(Json(answer(&decided, body.options.is_some_and(|o| o.explain))))
}

#[utoipa::path(
    post,
    path = "/access/v1/evaluations",
    operation_id = "access_evaluations",
    tag = "authzen",
    summary = "Decide a batch of access requests (AuthZEN Access Evaluations API)",
    description = "Each item's `subject`, `action`, `resource` and `context` default to the request's. \
        With no `evaluations`, the answer is a single decision. `options.evaluations_semantic` may \
        stop the batch at the first deny or permit; an item that cannot be decided is a deny with \
        `context.error`.",
    request_body = EvaluationsRequest,
    responses((status = 200, description = "the decisions, in request order", body = EvaluationsResponse)),
    security(("bearer" = ["decide"]))
)]
async fn evaluations(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EvaluationsRequest>,
) -> Result<Json<EvaluationsResponse>, ApiError> {
    let snapshot = state.snapshot();
    let options = body.options.clone().unwrap_or_default();
    let items = match &body.evaluations {
        Some(items) if !items.is_empty() => items,
        // No evaluations: the request is a single evaluation of the defaults.
        _ => {
            let (Some(subject), Some(action), Some(resource)) = (&body.subject, &body.action, &body.resource) else {
                let missing = [
                    ("subject", body.subject.is_none()),
                    ("action", body.action.is_none()),
                    ("resource", body.resource.is_none()),
                ]
                .iter()
                .find(|(_, m)| *m)
                .map_or("evaluations", |(f, _)| f);
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("`{missing}` is required when `evaluations` is empty"),
                )
                .with_field(missing));
            };
            let q = query(&state, subject, action, resource, body.context.as_ref());
            let decided = decide(&state, &snapshot, &q).await?;
            record_decisions(&state, &[(&decided, &q)]).await?;
            return Ok(Json(EvaluationsResponse::Single(answer(&decided, options.explain))));
        }
    };

    let mut answers = Vec::with_capacity(items.len());
    let mut decided_items: Vec<(Decided, Query)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let subject = item.subject.as_ref().or(body.subject.as_ref());
        let action = item.action.as_ref().or(body.action.as_ref());
        let resource = item.resource.as_ref().or(body.resource.as_ref());
        let context = item.context.as_ref().or(body.context.as_ref());
        let outcome = match (subject, action, resource) {
            (Some(s), Some(a), Some(r)) => {
                let q = query(&state, s, a, r, context);
                decide(&state, &snapshot, &q)
                    .await
                    .map_err(ItemError::from)
                    .inspect(|d| decided_items.push((d.clone(), q)))
            }
            _ => {
                let missing = if subject.is_none() {
                    "subject"
                } else if action.is_none() {
                    "action"
                } else {
                    "resource"
                };
                Err(ApiError::bad_request(
                    "invalid_body",
                    format!("`{missing}` is missing from this evaluation and from the defaults"),
                )
                .with_field(format!("evaluations[{index}].{missing}"))
                .into_item())
            }
        };
        let (allowed, rendered) = match outcome {
            Ok(decided) => (decided.decision.allowed, answer(&decided, options.explain)),
            // A failing item is a deny that says why; the batch goes on.
            Err(error) => (false, Answer { decision: false, context: Some(AnswerContext::Failed(Failed { error })) }),
        };
        answers.push(rendered);
        let stop = match options.evaluations_semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !allowed,
            Semantic::PermitOnFirstPermit => allowed,
        };
        if stop {
            break;
        }
    }
    let pairs: Vec<(&Decided, &Query)> = decided_items.iter().map(|(d, q)| (d, q)).collect();
    record_decisions(&state, &pairs).await?;
    Ok(Json(EvaluationsResponse::Batch(Evaluations { evaluations: answers })))
}

/// PDP metadata (AuthZEN 1.0 §"Policy Decision Point Metadata").
#[utoipa::path(
    get,
    path = "/.well-known/authzen-configuration",
    operation_id = "authzen_configuration",
    tag = "authzen",
    summary = "The PDP metadata document (public)",
    responses((status = 200, description = "endpoints, absolute, under `--public-url` or the listening address", body = PdpMetadata))
)]
async fn configuration(base: String) -> Json<PdpMetadata> {
    let base = base.trim_end_matches('/');
    Json(PdpMetadata {
        policy_decision_point: base.to_owned(),
        access_evaluation_endpoint: format!("{base}/access/v1/evaluation"),
        access_evaluations_endpoint: format!("{base}/access/v1/evaluations"),
        search_subject_endpoint: format!("{base}/access/v1/search/subject"),
        search_resource_endpoint: format!("{base}/access/v1/search/resource"),
        search_action_endpoint: format!("{base}/access/v1/search/action"),
    })
}
