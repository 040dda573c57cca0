//! AuthZEN search: `POST /access/v1/search/resource`, `/search/subject`,
//! `/search/action`. Answers are computed per request from the live store
//! (never cached across principals). The searched-for entity has a `type`
//! (an `id`, if sent, is ignored) and optional `properties` that apply to
//! every candidate; an unknown type has no results. `properties` and
//! `action.properties` count exactly as in an evaluation: a search lists
//! what one evaluation per candidate would allow with the same inputs.
//! Pages are keyset-based: `page.next_token` is the opaque position after the
//! last result, stable while entities change.
//!
//! A search is usually a partial evaluation and an index lookup, but the
//! first one on a new store version builds the index, one the index cannot
//! answer decides every candidate, and custom rules run per result: each
//! search runs on a bounded slot off the async workers, like a decision that
//! runs rules.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use warrant_engine::{EntityRef, Search, Timestamp};

use super::authzen::{Action, Entity};
use super::error::ApiError;
use super::json::{ApiJson, shallow_object};
use super::limits::MAX_NAME;
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/access/v1/search/resource", post(resources))
        .route("/access/v1/search/subject", post(subjects))
        .route("/access/v1/search/action", post(actions))
}

/// The searched-for side: a type, no id.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct Typed {
    #[serde(rename = "type")]
    #[garde(length(min = 1, max = MAX_NAME))]
    #[schema(min_length = 1, max_length = 256)]
    type_name: String,
    /// Attributes merged over every candidate, as an evaluation of that
    /// candidate with these `properties` would merge them.
    #[serde(default)]
    #[garde(custom(shallow_object))]
    properties: Option<Map<String, Value>>,
}

/// Which page: `token` is a previous answer's `page.next_token`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[schema(as = PageRequest)]
pub struct Page {
    #[serde(default)]
    #[garde(inner(length(max = 2048)))]
    #[schema(max_length = 2048)]
    token: Option<String>,
    #[serde(default)]
    #[garde(inner(range(min = 1, max = MAX_LIMIT)))]
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct ResourceSearch {
    #[garde(dive)]
    subject: Entity,
    #[garde(dive)]
    action: Action,
    #[garde(dive)]
    resource: Typed,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    #[garde(dive)]
    page: Option<Page>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SubjectSearch {
    #[garde(dive)]
    subject: Typed,
    #[garde(dive)]
    action: Action,
    #[garde(dive)]
    resource: Entity,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    #[garde(dive)]
    page: Option<Page>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct ActionSearch {
    #[garde(dive)]
    subject: Entity,
    #[garde(dive)]
    resource: Entity,
    #[serde(default)]
    #[garde(custom(shallow_object))]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    #[garde(dive)]
    page: Option<Page>,
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

fn entity_ref(e: &Entity) -> EntityRef {
    EntityRef { type_name: e.type_name.clone(), id: e.id.clone(), properties: e.properties.clone() }
}

fn typed(t: &Typed) -> EntityRef {
    EntityRef { type_name: t.type_name.clone(), id: String::new(), properties: t.properties.clone() }
}

/// One page of `items` (sorted, unique) after the token's position.
fn paginate(items: Vec<String>, page: Option<&Page>) -> Result<(Vec<String>, String), ApiError> {
    let limit = page.and_then(|p| p.limit).unwrap_or(DEFAULT_LIMIT);
    let after = match page.and_then(|p| p.token.as_deref()).filter(|t| !t.is_empty()) {
        Some(token) => Some(hex::decode(token).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_field", "`page.token` is not a token this service issued")
                .with_field("page.token")
        })?),
        None => None,
    };
    let start = after.map_or(0, |a| items.partition_point(|id| *id <= a));
    let rest = items.get(start..).unwrap_or_default();
    let taken: Vec<String> = rest.iter().take(limit).cloned().collect();
    let next = if rest.len() > limit { taken.last().map(hex::encode).unwrap_or_default() } else { String::new() };
    Ok((taken, next))
}

/// One page of `items` as the parts of an AuthZEN search answer, each item
/// rendered by `render`. `unknown` names given entities missing from the
/// store: Cedar reads a missing entity's attributes as errors, so nothing is
/// listed for it, and the answer says why in `context.warnings` rather than
/// looking like a genuine empty listing.
fn respond<T>(
    items: Vec<String>,
    page: Option<&Page>,
    unknown: Vec<String>,
    render: impl Fn(String) -> T,
) -> Result<(Vec<T>, PageInfo, Option<SearchContext>), ApiError> {
    let (items, next_token) = paginate(items, page)?;
    let results = items.into_iter().map(render).collect();
    let context = (!unknown.is_empty()).then(|| SearchContext {
        warnings: unknown.into_iter().map(|e| format!("{e} is not in the entity store")).collect(),
    });
    Ok((results, PageInfo { next_token }, context))
}

/// The given entities whose type is declared but which
/// are not stored, as `Type::"id"`.
fn unknown(snapshot: &crate::state::Snapshot, given: &[&Entity]) -> Vec<String> {
    given
        .iter()
        .filter_map(|e| {
            let ty = snapshot.bundle.entity_type(&e.type_name)?;
            (!snapshot.entities.contains(&ty, &e.id)).then(|| format!("{}::{:?}", e.type_name, e.id))
        })
        .collect()
}

#[utoipa::path(
    post,
    path = "/access/v1/search/resource",
    operation_id = "search_resources",
    tag = "authzen",
    summary = "Resources of a type the subject may act on (AuthZEN Resource Search API)",
    description = "An unknown resource type has no results.",
    request_body = ResourceSearch,
    responses((status = 200, description = "one page of resources, sorted by id", body = EntitySearchResults)),
    security(("bearer" = ["decide"]))
)]
async fn resources(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResourceSearch>,
) -> Result<Json<EntitySearchResults>, ApiError> {
    let search = Search {
        subject: entity_ref(&body.subject),
        action: body.action.name.clone(),
        action_properties: body.action.properties.clone(),
        resource: typed(&body.resource),
        context: body.context.clone().unwrap_or_default(),
        undeclared: state.undeclared(),
    };
    let listed = Listed { side: Side::Resources, type_name: &body.resource.type_name, given: &body.subject };
    entities(&state, &search, listed, body.page.as_ref()).await
}

#[utoipa::path(
    post,
    path = "/access/v1/search/subject",
    operation_id = "search_subjects",
    tag = "authzen",
    summary = "Subjects of a type that may act on the resource (AuthZEN Subject Search API)",
    description = "An unknown subject type has no results.",
    request_body = SubjectSearch,
    responses((status = 200, description = "one page of subjects, sorted by id", body = EntitySearchResults)),
    security(("bearer" = ["decide"]))
)]
async fn subjects(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SubjectSearch>,
) -> Result<Json<EntitySearchResults>, ApiError> {
    let search = Search {
        subject: typed(&body.subject),
        action: body.action.name.clone(),
        action_properties: body.action.properties.clone(),
        resource: entity_ref(&body.resource),
        context: body.context.clone().unwrap_or_default(),
        undeclared: state.undeclared(),
    };
    let listed = Listed { side: Side::Subjects, type_name: &body.subject.type_name, given: &body.resource };
    entities(&state, &search, listed, body.page.as_ref()).await
}

/// Which side of the request a resource or subject search lists.
#[derive(Debug, Clone, Copy)]
enum Side {
    Resources,
    Subjects,
}

/// What a resource or subject search lists: entities of `type_name` on
/// `side`, for the `given` entity on the other side.
#[derive(Debug, Clone, Copy)]
struct Listed<'a> {
    side: Side,
    type_name: &'a str,
    given: &'a Entity,
}

/// A resource or subject search: the ids `search` allows, one page of them.
async fn entities(
    state: &AppState,
    search: &Search,
    listed: Listed<'_>,
    page: Option<&Page>,
) -> Result<Json<EntitySearchResults>, ApiError> {
    let snapshot = state.snapshot();
    let now = Timestamp::now();
    let ids = state
        .rules()
        .run(|| match listed.side {
            Side::Resources => snapshot.bundle.search_resources(&snapshot.entities, search, now),
            Side::Subjects => snapshot.bundle.search_subjects(&snapshot.entities, search, now),
        })
        .await??;
    let (results, page, context) = respond(ids, page, unknown(&snapshot, &[listed.given]), |id| SearchEntity {
        type_name: listed.type_name.to_owned(),
        id,
    })?;
    Ok(Json(EntitySearchResults { results, page, context }))
}

#[utoipa::path(
    post,
    path = "/access/v1/search/action",
    operation_id = "search_actions",
    tag = "authzen",
    summary = "Actions the subject may take on the resource (AuthZEN Action Search API)",
    request_body = ActionSearch,
    responses((status = 200, description = "one page of action names, sorted", body = ActionSearchResults)),
    security(("bearer" = ["decide"]))
)]
async fn actions(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ActionSearch>,
) -> Result<Json<ActionSearchResults>, ApiError> {
    let snapshot = state.snapshot();
    let search = Search {
        subject: entity_ref(&body.subject),
        resource: entity_ref(&body.resource),
        context: body.context.clone().unwrap_or_default(),
        undeclared: state.undeclared(),
        ..Search::default()
    };
    let names =
        state.rules().run(|| snapshot.bundle.search_actions(&snapshot.entities, &search, Timestamp::now())).await??;
    let unknown = unknown(&snapshot, &[&body.subject, &body.resource]);
    let (results, page, context) = respond(names, body.page.as_ref(), unknown, |name| SearchAction { name })?;
    Ok(Json(ActionSearchResults { results, page, context }))
}
