//! Deciding one request: names resolved, context completed, Cedar evaluated,
//! and the answer explained (reasons, determining policies, errors).
//!
//! A `Decider` is everything a decision needs that a bundle fixes, built
//! once when the bundle loads. It knows nothing of files or digests, so the
//! bundle (which owns one) depends on this module and never the reverse;
//! searches decide through it too.

mod conforming;
mod context;
mod declared;
pub(crate) mod parsed;
pub(crate) mod slices;

use std::collections::HashMap;
use std::sync::Arc;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RequestValidationError, Response, Schema,
};
use serde::Serialize;
use serde_json::{Map, Value};

pub use declared::{ACTION_PROPERTIES_KEY, ContextShape, Declared};

use self::conforming::{ConformingShapes, Shape};
use self::parsed::ParsedCache;
use self::slices::SliceCache;
use crate::cedar::{cedar_message, uid};
use crate::entities::{EntitySet, UidKey, collect_refs, with_properties};
use crate::index::PolicyIndex;
use crate::names::Names;
use crate::request::{Query, RequestError, Undeclared};
use crate::rules::{RuleRequest, RuleSet, RuleVerdict};
use crate::time::Timestamp;
use context::{complete_context, fast_context};
use declared::keep_declared;

/// Reason reported for a deny that no forbid determined.
pub const NO_PERMIT: &str = "no_permit";

/// Prefix of the reason reported when a forbid could not be evaluated: we
/// fail closed instead of skipping it as Cedar would.
pub const POLICY_ERROR: &str = "policy_error:";

/// What the bundle fixes about one policy.
#[derive(Debug, Clone)]
pub(crate) struct PolicyFacts {
    pub effect: Effect,
    /// The `@reason` annotation, reported when this forbid determines a deny.
    pub reason: Option<String>,
}

/// Everything a decision needs that the bundle fixes (policy reasons and
/// effects, resolved type names, the shape of each action's context, the
/// policy index, the rules), computed once so that no request rebuilds it.
#[derive(Debug)]
pub(crate) struct Decider {
    pub(crate) schema: Schema,
    pub(crate) policies: PolicySet,
    pub(crate) index: PolicyIndex,
    pub(crate) facts: HashMap<PolicyId, PolicyFacts>,
    pub(crate) names: Names,
    /// What the schema lets requests fill in: context keys, attributes.
    pub(crate) declared: Declared,
    /// The schema's action entities: every entity slice includes them.
    pub(crate) action_entities: Vec<Entity>,
    /// Entities the policies name literally: roots of every entity slice.
    pub(crate) literal_refs: Vec<UidKey>,
    /// Custom rules consulted after Cedar (`rules/`); empty without one.
    pub(crate) rules: RuleSet,
    /// Request-carried entity documents already parsed against `schema`.
    pub(crate) parsed: ParsedCache,
    /// Slices already built for requests that carried entities.
    pub(crate) slices: SliceCache,
    /// Request shapes Cedar's request validation accepted.
    pub(crate) conforming: ConformingShapes,
}

/// The entities a decision reads: the store itself, a slice of it (kept
/// for the next request like this one), or a copy with the request's
/// entities upserted.
enum Reach<'a> {
    Store(&'a Entities),
    Slice(Arc<Entities>),
    Owned(Entities),
}

impl std::ops::Deref for Reach<'_> {
    type Target = Entities;

    fn deref(&self) -> &Entities {
        match self {
            Reach::Store(e) => e,
            Reach::Slice(e) => e,
            Reach::Owned(e) => e,
        }
    }
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
    /// Context keys, properties and action properties the schema does not
    /// declare, which the decision did not see (`context.ip`,
    /// `subject.properties.dept`, `action.properties.method`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

impl Decider {
    /// Everything decisions derive from a validated policy set: the policy
    /// index, the schema's action entities, the entities policies name.
    pub(crate) fn new(
        schema: Schema,
        policies: PolicySet,
        facts: HashMap<PolicyId, PolicyFacts>,
        names: Names,
        declared: Declared,
        rules: RuleSet,
    ) -> Self {
        let index = PolicyIndex::build(&schema, &policies);
        let action_entities = schema.action_entities().map(|e| e.into_iter().collect()).unwrap_or_default();
        let literal_refs = literal_refs(&policies);
        Self {
            schema,
            policies,
            index,
            facts,
            names,
            declared,
            action_entities,
            literal_refs,
            rules,
            parsed: ParsedCache::default(),
            slices: SliceCache::default(),
            conforming: ConformingShapes::default(),
        }
    }

    /// A decider for the same schema over other policies (from the same
    /// bundle or another one of that schema), with no custom rules: what
    /// Cedar alone says of them.
    pub(crate) fn over(&self, policies: PolicySet) -> Self {
        let facts = policies
            .policies()
            .map(|p| {
                let reason = self.facts.get(p.id()).and_then(|f| f.reason.clone());
                (p.id().clone(), PolicyFacts { effect: p.effect(), reason })
            })
            .collect();
        Self::new(self.schema.clone(), policies, facts, self.names.clone(), self.declared.clone(), RuleSet::default())
    }

    /// Decides `query` against `entities`; `now` fills the context's `now`
    /// when the action takes one and the caller left it out.
    pub(crate) fn decide(&self, entities: &EntitySet, query: &Query, now: Timestamp) -> Result<Decision, RequestError> {
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

        let mut ignored = Vec::new();
        let shape = self.declared.context(action);
        let context_json = self.context_json(
            action,
            &query.context,
            query.action_properties.as_ref(),
            query.undeclared,
            now,
            &mut ignored,
        )?;
        // The common case (strings, booleans, integers, datetimes) skips
        // Cedar's JSON context parser, whose schema-directed parsing builds
        // and drops an error per attribute it tries (a tenth of a decision in
        // profiles). Anything else, or any failure, takes the JSON path, so
        // answers and error messages are exactly the JSON path's.
        let datetime_keys = shape.map_or(&[][..], |s| s.datetime_keys.as_slice());
        let fast = fast_context(&context_json, Some(datetime_keys)).and_then(|c| {
            // A shape Cedar accepted before needs no validation (`conforming.rs`).
            let shape = (!self.declared.is_enum(principal_type) && !self.declared.is_enum(resource_type))
                .then(|| Shape::of(action, principal_type, resource_type, &context_json, datetime_keys))
                .flatten();
            if shape.as_ref().is_some_and(|s| self.conforming.accepted(s)) {
                return Request::new(principal.clone(), action.clone(), resource.clone(), c, None).ok();
            }
            let request =
                Request::new(principal.clone(), action.clone(), resource.clone(), c, Some(&self.schema)).ok()?;
            if let Some(shape) = shape {
                self.conforming.keep(shape);
            }
            Some(request)
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
                        let message = cedar_message(&e);
                        let principal = uid(principal_type, &query.principal.id);
                        let resource = uid(resource_type, &query.resource.id);
                        RequestError::InvalidEntity {
                            field: enum_entity_field(&message, &principal, &resource),
                            message,
                        }
                    }
                    _ => RequestError::NotApplicable(cedar_message(&e)),
                })?
            }
        };

        let store =
            self.request_entities(entities, query, &context_json, (principal_type, resource_type), &mut ignored)?;
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
        decision.ignored = ignored;
        Ok(decision)
    }

    /// Whether `action` applies to a principal of type `principal` and a
    /// resource of type `resource` (all three as clients name them).
    pub(crate) fn applies_to(&self, action: &str, principal: &str, resource: &str) -> bool {
        let (Some(action), Some(principal), Some(resource)) =
            (self.names.action(action), self.names.entity_type(principal), self.names.entity_type(resource))
        else {
            return false;
        };
        self.schema.principals_for_action(action).is_some_and(|mut types| types.any(|t| t == principal))
            && self.schema.resources_for_action(action).is_some_and(|mut types| types.any(|t| t == resource))
    }

    /// The shape of the context of `action` (as a client names it), if the
    /// schema declares the action.
    pub(crate) fn context_shape(&self, action: &str) -> Option<&ContextShape> {
        self.names.action(action).and_then(|uid| self.declared.context(uid))
    }

    /// The context as Cedar wants it, parsed, with its JSON form (see
    /// [`Decider::context_json`]).
    pub(crate) fn context(
        &self,
        action: &EntityUid,
        given: &Map<String, Value>,
        action_properties: Option<&Map<String, Value>>,
        undeclared: Undeclared,
        now: Timestamp,
    ) -> Result<(Context, Map<String, Value>), RequestError> {
        let context = self.context_json(action, given, action_properties, undeclared, now, &mut Vec::new())?;
        Ok((self.cedar_context(action, &context)?, context))
    }

    /// The context Cedar sees for `action`: the caller's keys the schema
    /// declares, `action_properties` (those the context's `action` record
    /// declares) as that record, `now` filled in when the action takes one
    /// and the caller left it out, datetimes normalised. What is left out is
    /// added to `ignored`, or refused under [`Undeclared::Refuse`].
    pub(crate) fn context_json(
        &self,
        action: &EntityUid,
        given: &Map<String, Value>,
        action_properties: Option<&Map<String, Value>>,
        undeclared: Undeclared,
        now: Timestamp,
        ignored: &mut Vec<String>,
    ) -> Result<Map<String, Value>, RequestError> {
        let shape = self.declared.context(action);
        let keys = shape.map_or(&[][..], |s| s.keys.as_slice());
        let refused = |name| RequestError::Undeclared { name };
        let mut context = keep_declared(given, keys, "context", undeclared, ignored).map_err(refused)?;
        if let Some(properties) = action_properties.filter(|p| !p.is_empty()) {
            let declared = shape.and_then(|s| s.action_keys.as_deref()).unwrap_or_default();
            let kept =
                keep_declared(properties, declared, "action.properties", undeclared, ignored).map_err(refused)?;
            if !kept.is_empty() {
                if context.contains_key(ACTION_PROPERTIES_KEY) {
                    return Err(RequestError::NotApplicable(format!(
                        "both `action.properties` and `context.{ACTION_PROPERTIES_KEY}` are given; send one"
                    )));
                }
                context.to_mut().insert(ACTION_PROPERTIES_KEY.to_owned(), Value::Object(kept.into_owned()));
            }
        }
        Ok(complete_context(shape, context.into_owned(), now))
    }

    /// The verdicts of `action`'s custom rules on a request Cedar allowed.
    pub(crate) fn rule_verdicts(
        &self,
        action: &EntityUid,
        principal: &EntityUid,
        resource: &EntityUid,
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
    fn cedar_context(&self, action: &EntityUid, context: &Map<String, Value>) -> Result<Context, RequestError> {
        Context::from_json_value(Value::Object(context.clone()), Some((&self.schema, action)))
            .map_err(|e| RequestError::InvalidContext(cedar_message(&e)))
    }

    /// The stored entities, or — when the request carries entities or
    /// properties — the slice of the store the request can reach with those
    /// upserted (see [`EntitySet::slice`]). Requests without either share the
    /// store untouched.
    /// Properties the schema does not declare for the entity's type are
    /// left out (added to `ignored`) or refused.
    fn request_entities<'a>(
        &self,
        entities: &'a EntitySet,
        query: &Query,
        context: &Map<String, Value>,
        (principal_type, resource_type): (&EntityTypeName, &EntityTypeName),
        ignored: &mut Vec<String>,
    ) -> Result<Reach<'a>, RequestError> {
        let mut extra = Vec::new();
        for (entity, ty, field) in [
            (&query.principal, principal_type, "subject.properties"),
            (&query.resource, resource_type, "resource.properties"),
        ] {
            if let Some(given) = &entity.properties
                && !given.is_empty()
            {
                let declared = self.declared.attributes(ty);
                let properties = keep_declared(given, declared, field, query.undeclared, ignored)
                    .map_err(|name| RequestError::Undeclared { name })?;
                if properties.is_empty() {
                    continue;
                }
                let doc = with_properties(entities, ty, &entity.id, &properties);
                let parsed = self
                    .parsed
                    .parse(&self.schema, vec![doc])
                    .map_err(|e| RequestError::InvalidEntity { field, message: e.to_string() })?;
                extra.extend(parsed);
            }
        }
        if !query.entities.is_empty() {
            let parsed = self
                .parsed
                .parse(&self.schema, query.entities.clone())
                .map_err(|e| RequestError::InvalidEntity { field: "entities", message: e.to_string() })?;
            extra.extend(parsed);
        }
        if extra.is_empty() {
            return Ok(Reach::Store(&entities.cedar));
        }
        let mut roots = vec![
            (principal_type.to_string(), query.principal.id.clone()),
            (resource_type.to_string(), query.resource.id.clone()),
        ];
        collect_refs(&Value::Object(context.clone()), &mut roots);
        roots.extend(self.literal_refs.iter().cloned());
        let (texts, extra): (Vec<String>, Vec<_>) = extra.into_iter().unzip();
        let key = (entities.id(), roots, texts);
        if let Some(slice) = self.slices.get(&key) {
            return Ok(Reach::Slice(slice));
        }
        let invalid = |message: String| RequestError::InvalidEntity { field: "entities", message };
        match entities.slice(key.1.clone(), extra.clone(), &self.action_entities) {
            Some(slice) => {
                let slice = Arc::new(slice.map_err(|e| invalid(e.to_string()))?);
                self.slices.keep(key, Arc::clone(&slice));
                Ok(Reach::Slice(slice))
            }
            // Too much is reachable: copy the whole store instead.
            None => entities
                .cedar
                .clone()
                .upsert_entities(extra.into_iter().map(|(_, _, e)| e), Some(&self.schema))
                .map(Reach::Owned)
                .map_err(|e| invalid(cedar_message(&e))),
        }
    }

    pub(crate) fn explain(&self, response: &Response) -> Decision {
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
            CedarDecision::Allow if failed_forbids.is_empty() => Decision {
                allowed: true,
                reasons: Vec::new(),
                policies,
                errors,
                rules: Vec::new(),
                ignored: Vec::new(),
            },
            CedarDecision::Allow => Decision {
                allowed: false,
                reasons: failed_forbids,
                policies: Vec::new(),
                errors,
                rules: Vec::new(),
                ignored: Vec::new(),
            },
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
                Decision { allowed: false, reasons, policies, errors, rules: Vec::new(), ignored: Vec::new() }
            }
        }
    }
}

/// The request field an `InvalidEnumEntity` error is about, from the uid its
/// message names (cedar-policy's error exposes the uid only there, as
/// `` entity `Ns::Type::"id"` is of an enumerated entity type… ``). Cedar
/// checks the principal, then the resource, then uids in the context.
fn enum_entity_field(message: &str, principal: &EntityUid, resource: &EntityUid) -> &'static str {
    if message.contains(&format!("`{principal}`")) {
        "subject.id"
    } else if message.contains(&format!("`{resource}`")) {
        "resource.id"
    } else {
        "context"
    }
}

/// Entities the policies name literally, sorted: roots of every entity
/// slice. Conditions of linked policies are their templates'.
fn literal_refs(policies: &PolicySet) -> Vec<UidKey> {
    let mut refs = Vec::new();
    let policy_json = policies.policies().filter_map(|p| p.to_json().ok());
    let template_json = policies.templates().filter_map(|t| t.to_json().ok());
    for json in policy_json.chain(template_json) {
        collect_refs(&json, &mut refs);
    }
    refs.sort();
    refs.dedup();
    refs
}
