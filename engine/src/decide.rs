//! Deciding one request: names resolved, context completed, Cedar evaluated,
//! and the answer explained (reasons, determining policies, errors).

use std::borrow::Cow;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Effect, Request, RequestValidationError,
    RestrictedExpression,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::bundle::{Bundle, ContextShape};
use crate::entities::{EntitySet, cedar_message, collect_refs, uid, with_properties};
use crate::rules::{RuleRequest, RuleVerdict};
use crate::time;

/// Reason reported for a deny that no forbid determined.
pub const NO_PERMIT: &str = "no_permit";

/// Prefix of the reason reported when a forbid could not be evaluated: we
/// fail closed instead of skipping it as Cedar would.
pub const POLICY_ERROR: &str = "policy_error:";

/// An entity named in a request, with optional attributes to merge over the
/// stored entity of the same id.
#[derive(Debug, Clone, Default)]
pub struct EntityRef {
    pub type_name: String,
    pub id: String,
    pub properties: Option<Map<String, Value>>,
}

/// A request as clients pose it, before any name is resolved.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub principal: EntityRef,
    pub action: String,
    pub resource: EntityRef,
    pub context: Map<String, Value>,
    /// Extra Cedar entities JSON documents seen only by this request.
    pub entities: Vec<Value>,
}

/// The answer, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// For a deny: the `@reason`s of the determining forbids, `no_permit`, or
    /// `policy_error:<id>`. Empty for an allow.
    pub reasons: Vec<String>,
    /// Ids of the determining policies (the permits of an allow, the forbids
    /// of a deny).
    pub policies: Vec<String>,
    /// Evaluation errors, each naming its policy.
    pub errors: Vec<String>,
    /// What each custom rule for the action said (only when Cedar allowed:
    /// a rule can only turn an allow into a deny).
    pub rules: Vec<RuleVerdict>,
}

/// A request the bundle cannot answer because the request is wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("unknown entity type `{name}`")]
    UnknownEntityType { field: &'static str, name: String },
    #[error("unknown action `{name}`")]
    UnknownAction { name: String },
    #[error("invalid context: {0}")]
    InvalidContext(String),
    #[error("invalid entity: {message}")]
    InvalidEntity { field: &'static str, message: String },
    #[error("{0}")]
    NotApplicable(String),
}

impl RequestError {
    /// Stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownEntityType { .. } => "unknown_entity_type",
            Self::UnknownAction { .. } => "unknown_action",
            Self::InvalidContext(_) => "invalid_context",
            Self::InvalidEntity { .. } => "invalid_entity",
            Self::NotApplicable(_) => "invalid_request",
        }
    }

    /// The request field at fault (AuthZEN names), when one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::UnknownEntityType { field, .. } | Self::InvalidEntity { field, .. } => Some(field),
            Self::UnknownAction { .. } => Some("action"),
            Self::InvalidContext(_) => Some("context"),
            Self::NotApplicable(_) => None,
        }
    }
}

impl Bundle {
    /// Decides `query` against `entities`; `now` fills the context's `now`
    /// when the action takes one and the caller left it out.
    pub fn decide(&self, entities: &EntitySet, query: &Query, now: DateTime<Utc>) -> Result<Decision, RequestError> {
        let principal_type = self.names.entity_type(&query.principal.type_name).ok_or_else(|| {
            RequestError::UnknownEntityType { field: "subject.type", name: query.principal.type_name.clone() }
        })?;
        let resource_type = self.names.entity_type(&query.resource.type_name).ok_or_else(|| {
            RequestError::UnknownEntityType { field: "resource.type", name: query.resource.type_name.clone() }
        })?;
        let action = self
            .names
            .action(&query.action)
            .ok_or_else(|| RequestError::UnknownAction { name: query.action.clone() })?;
        let principal = uid(principal_type, &query.principal.id);
        let resource = uid(resource_type, &query.resource.id);

        let shape = self.contexts.get(action);
        let context_json = complete_context(shape, &query.context, now);
        // The common case (strings, booleans, integers, datetimes) skips
        // Cedar's JSON context parser, whose schema-directed parsing builds
        // and drops an error per attribute it tries (a tenth of a decision in
        // profiles). Anything else, or any failure, takes the JSON path, so
        // answers and error messages are exactly the JSON path's.
        let fast = fast_context(&context_json, shape.map(|s| s.datetime_keys.as_slice())).and_then(|c| {
            Request::new(principal.clone(), action.clone(), resource.clone(), c, Some(&self.schema)).ok()
        });
        let request = match fast {
            Some(request) => request,
            None => {
                let context = self.cedar_context(action, &context_json)?;
                Request::new(principal, action.clone(), resource, context, Some(&self.schema)).map_err(|e| match e {
                    RequestValidationError::InvalidContext(_) | RequestValidationError::TypeOfContext(_) => {
                        RequestError::InvalidContext(cedar_message(&e))
                    }
                    RequestValidationError::InvalidEnumEntity(_) => {
                        RequestError::InvalidEntity { field: "subject.id", message: cedar_message(&e) }
                    }
                    _ => RequestError::NotApplicable(cedar_message(&e)),
                })?
            }
        };

        let store = self.request_entities(entities, query, &context_json, principal_type, resource_type)?;
        let candidates = match (request.principal(), request.resource()) {
            (Some(p), Some(r)) => self.index.candidates(action, p, r, &store),
            _ => None,
        };
        let policies = candidates.as_deref().or_else(|| self.index.slice(action)).unwrap_or(&self.policies);
        let response = Authorizer::new().is_authorized(&request, policies, &store);
        let mut decision = self.explain(&response);
        if decision.allowed && self.rules.applies_to(action) {
            let principal = uid(principal_type, &query.principal.id);
            let resource = uid(resource_type, &query.resource.id);
            decision.rules = self.rule_verdicts(action, &principal, &resource, &context_json);
            let denials: Vec<String> = decision.rules.iter().filter_map(RuleVerdict::deny_reason).collect();
            if !denials.is_empty() {
                decision.allowed = false;
                decision.reasons = denials;
                decision.reasons.sort();
                decision.reasons.dedup();
                // The determining policies of a deny are forbids; no Cedar
                // policy determined this one.
                decision.policies.clear();
            }
        }
        Ok(decision)
    }

    /// The context as Cedar wants it: `now` filled in, datetimes normalised.
    pub(crate) fn context(
        &self,
        action: &cedar_policy::EntityUid,
        given: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(Context, Map<String, Value>), RequestError> {
        let context = complete_context(self.contexts.get(action), given, now);
        Ok((self.cedar_context(action, &context)?, context))
    }

    /// The verdicts of `action`'s custom rules on a request Cedar allowed.
    pub(crate) fn rule_verdicts(
        &self,
        action: &cedar_policy::EntityUid,
        principal: &cedar_policy::EntityUid,
        resource: &cedar_policy::EntityUid,
        context: &Map<String, Value>,
    ) -> Vec<RuleVerdict> {
        let principal_type = self.names.qualified(principal.type_name());
        let resource_type = self.names.qualified(resource.type_name());
        let action_type = self.names.qualified(action.type_name());
        let rule_request = RuleRequest {
            principal: (&principal_type, principal.id().unescaped()),
            action: (&action_type, action.id().unescaped()),
            resource: (&resource_type, resource.id().unescaped()),
            context_json: serde_json::to_string(context).unwrap_or_default(),
        };
        self.rules.evaluate(action, rule_request)
    }

    /// Parses a completed context through Cedar's schema-directed JSON parser.
    fn cedar_context(
        &self,
        action: &cedar_policy::EntityUid,
        context: &Map<String, Value>,
    ) -> Result<Context, RequestError> {
        Context::from_json_value(Value::Object(context.clone()), Some((&self.schema, action)))
            .map_err(|e| RequestError::InvalidContext(cedar_message(&e)))
    }

    /// The stored entities, or — when the request carries entities or
    /// properties — the slice of the store the request can reach with those
    /// upserted (see [`EntitySet::slice`]). Requests without either share the
    /// store untouched.
    fn request_entities<'a>(
        &self,
        entities: &'a EntitySet,
        query: &Query,
        context: &Map<String, Value>,
        principal_type: &cedar_policy::EntityTypeName,
        resource_type: &cedar_policy::EntityTypeName,
    ) -> Result<Cow<'a, cedar_policy::Entities>, RequestError> {
        let mut extra = Vec::new();
        for (entity, ty, field) in [
            (&query.principal, principal_type, "subject.properties"),
            (&query.resource, resource_type, "resource.properties"),
        ] {
            if let Some(properties) = &entity.properties
                && !properties.is_empty()
            {
                let doc = with_properties(entities, ty, &entity.id, properties);
                let parsed = self
                    .parse_entities(vec![doc])
                    .map_err(|e| RequestError::InvalidEntity { field, message: e.to_string() })?;
                extra.extend(parsed);
            }
        }
        if !query.entities.is_empty() {
            let parsed = self
                .parse_entities(query.entities.clone())
                .map_err(|e| RequestError::InvalidEntity { field: "entities", message: e.to_string() })?;
            extra.extend(parsed);
        }
        if extra.is_empty() {
            return Ok(Cow::Borrowed(&entities.cedar));
        }
        let mut roots = vec![
            (principal_type.to_string(), query.principal.id.clone()),
            (resource_type.to_string(), query.resource.id.clone()),
        ];
        collect_refs(&Value::Object(context.clone()), &mut roots);
        roots.extend(self.literal_refs.iter().cloned());
        let invalid = |message: String| RequestError::InvalidEntity { field: "entities", message };
        match entities.slice(roots, extra.clone(), &self.action_entities) {
            Some(slice) => slice.map(Cow::Owned).map_err(|e| invalid(e.to_string())),
            // Too much is reachable: copy the whole store instead.
            None => entities
                .cedar
                .clone()
                .upsert_entities(extra.into_iter().map(|(_, _, e)| e), Some(&self.schema))
                .map(Cow::Owned)
                .map_err(|e| invalid(cedar_message(&e))),
        }
    }

    pub(crate) fn explain(&self, response: &cedar_policy::Response) -> Decision {
        let mut policies: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        policies.sort();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        // A forbid that errored was skipped by Cedar; fail closed instead.
        let mut failed_forbids: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|AuthorizationError::PolicyEvaluationError(e)| e.policy_id())
            .filter(|id| self.facts.get(*id).is_some_and(|f| f.effect == Effect::Forbid))
            .map(|id| format!("{POLICY_ERROR}{id}"))
            .collect();
        failed_forbids.sort();
        failed_forbids.dedup();

        match response.decision() {
            CedarDecision::Allow if failed_forbids.is_empty() => {
                Decision { allowed: true, reasons: Vec::new(), policies, errors, rules: Vec::new() }
            }
            CedarDecision::Allow => {
                Decision { allowed: false, reasons: failed_forbids, policies: Vec::new(), errors, rules: Vec::new() }
            }
            CedarDecision::Deny => {
                let mut reasons: Vec<String> = response
                    .diagnostics()
                    .reason()
                    .map(|id| self.facts.get(id).and_then(|f| f.reason.clone()).unwrap_or_else(|| id.to_string()))
                    .collect();
                reasons.extend(failed_forbids);
                reasons.sort();
                reasons.dedup();
                if reasons.is_empty() {
                    reasons.push(NO_PERMIT.to_owned());
                }
                Decision { allowed: false, reasons, policies, errors, rules: Vec::new() }
            }
        }
    }
}

/// A Cedar context built directly from JSON scalars: strings (as datetimes
/// for the schema's datetime keys), booleans and integers. `None` for
/// anything else (records, sets, entity references, extension values, other
/// numbers): the caller parses those through Cedar's JSON path.
///
/// The last few contexts built are kept per thread: most requests carry only
/// `now`, which concurrent requests share at millisecond precision, and
/// evaluating `datetime("…")` (Cedar's regex parse) is the larger part of
/// building one.
fn fast_context(context: &Map<String, Value>, datetime_keys: Option<&[String]>) -> Option<Context> {
    const KEEP: usize = 4;
    type Built = (Map<String, Value>, Vec<String>, Context);
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<Built>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let datetime_keys = datetime_keys.unwrap_or_default();
    let hit = RECENT.with_borrow(|recent| {
        recent.iter().find(|(m, k, _)| m == context && k.as_slice() == datetime_keys).map(|(_, _, c)| c.clone())
    });
    if hit.is_some() {
        return hit;
    }
    let built = build_context(context, datetime_keys)?;
    RECENT.with_borrow_mut(|recent| {
        if recent.len() >= KEEP {
            recent.remove(0);
        }
        recent.push((context.clone(), datetime_keys.to_vec(), built.clone()));
    });
    Some(built)
}

fn build_context(context: &Map<String, Value>, datetime_keys: &[String]) -> Option<Context> {
    let mut pairs = Vec::with_capacity(context.len());
    for (key, value) in context {
        let expr = match value {
            Value::String(s) if datetime_keys.iter().any(|k| k == key) => datetime(s),
            Value::String(s) => RestrictedExpression::new_string(s.clone()),
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
            _ => return None,
        };
        pairs.push((key.clone(), expr));
    }
    Context::from_pairs(pairs).ok()
}

/// `datetime("text")`. cedar-policy's `RestrictedExpression::new_datetime`
/// parses the name `datetime` with its LALRPOP parser on every call (a lexer
/// and a lazy DFA built each time: about 7% of an HTTP decision in
/// profiles), so the last few per thread are kept: concurrent requests share
/// `now` at millisecond precision.
fn datetime(text: &str) -> RestrictedExpression {
    const KEEP: usize = 4;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(String, RestrictedExpression)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, expr)) = recent.iter().find(|(t, _)| t == text) {
            return expr.clone();
        }
        let expr = RestrictedExpression::new_datetime(text);
        if recent.len() >= KEEP {
            recent.remove(0);
        }
        recent.push((text.to_owned(), expr.clone()));
        expr
    })
}

/// `given` with `now` filled in (when the action takes one and the caller
/// left it out) and datetimes normalised to Cedar's spelling.
fn complete_context(
    shape: Option<&ContextShape>,
    given: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let mut context = given.clone();
    if let Some(shape) = shape {
        if shape.takes_now && !context.contains_key("now") {
            context.insert("now".into(), Value::String(time::cedar_datetime(now)));
        }
        for key in &shape.datetime_keys {
            if let Some(Value::String(text)) = context.get(key)
                && let Some(normal) = time::normalize(text)
            {
                context.insert(key.clone(), Value::String(normal));
            }
        }
    }
    context
}
