//! AuthZEN search: which resources (subjects, actions) a request would be
//! allowed for, computed per principal from the live store — never served
//! from another principal's answer (R10: the data browser shows each user
//! only what they may browse).
//!
//! Searching resources (or subjects) of a type:
//! 1. Type-aware partial evaluation (Cedar's `tpe`) of the action's policy
//!    slice, with the searched-for entity unknown and the known one's slice
//!    of the store, once per query. What is left per policy is an expression
//!    over the unknown entity alone.
//! 2. Each residual is answered from indexes over the candidates
//!    (`entities::candidates`: attribute value → entities, ancestor →
//!    entities), built on first use and kept for the store version
//!    (`residual`).
//!    Cedar's combining, with warrant's fail-closed forbids, is then set
//!    algebra: (∪ true permits) − (∪ forbids that are true or error).
//! 3. A residual outside the indexed forms (or a store slice too large)
//!    falls back to deciding every candidate, which is always right.
//!
//! Candidates Cedar allows then go through the action's custom rules, if
//! it has any: a search never lists what a decision would deny.
//!
//! A search whose subject or resource carries `properties` decides every
//! candidate through [`Decider::decide`], each with those properties merged
//! as an evaluation would merge them: search and evaluation agree on the
//! same inputs by construction. Action properties and context keys take the
//! path the context takes, with what the schema does not declare left out
//! as in a decision.
//! `engine/tests/engine/search_differential.rs` checks both paths against
//! deciding every candidate.

mod residual;

use cedar_policy::pst::{Effect, Var};
use cedar_policy::{
    Authorizer, Context, EntityTypeName, EntityUid, PartialEntities, PartialEntityUid, PartialRequest, Request,
};
use serde_json::{Map, Value};

use crate::cedar::uid;
use crate::decide::{Decider, POLICY_ERROR};
use crate::entities::candidates::Bits;
use crate::entities::{EntitySet, collect_refs};
use crate::request::{EntityRef, Query, RequestError, Undeclared};
use crate::time::Timestamp;
use residual::Residuals;

/// How a search found its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPath {
    /// Partial evaluation, residuals answered from the indexes.
    Indexed,
    /// Every candidate decided.
    EveryCandidate,
}

/// What is fixed in a search; the searched-for part is a type (its id is
/// ignored), and its `properties`, if any, apply to every candidate.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub subject: EntityRef,
    pub action: String,
    pub action_properties: Option<Map<String, Value>>,
    pub resource: EntityRef,
    pub context: Map<String, Value>,
    pub undeclared: Undeclared,
}

/// Which side of a search is the searched-for type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searched {
    Resources,
    Subjects,
}

/// Whether a search may use partial evaluation and the indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    #[default]
    Auto,
    /// Decide every candidate (the reference the indexed path must equal).
    EveryCandidate,
}

/// A search's answer and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Matching ids, in id order.
    pub ids: Vec<String>,
    pub path: SearchPath,
}

impl Search {
    /// Resources or subjects of the searched-for type allowed to take part in
    /// `self.action` with the other, given side, as `decider` decides.
    pub(crate) fn find(
        &self,
        decider: &Decider,
        entities: &EntitySet,
        searched: Searched,
        mode: SearchMode,
        now: Timestamp,
    ) -> Result<Found, RequestError> {
        let nothing = |path| Ok(Found { ids: Vec::new(), path });
        let Some((p_type, r_type)) = self.types(decider) else { return nothing(SearchPath::EveryCandidate) };
        let (action, context, context_json) = self.action_and_context(decider, now)?;
        let (known, candidate_type, var) = match searched {
            Searched::Resources => (uid(p_type, &self.subject.id), r_type, Var::Resource),
            Searched::Subjects => (uid(r_type, &self.resource.id), p_type, Var::Principal),
        };
        let pair = |candidate: EntityUid| match searched {
            Searched::Resources => (known.clone(), candidate),
            Searched::Subjects => (candidate, known.clone()),
        };
        let ids = entities.ids_of_type(&candidate_type.to_string());
        let Some(first) = ids.first() else { return nothing(SearchPath::EveryCandidate) };
        if self.has_properties() {
            let mut found = Vec::new();
            for id in ids {
                if decider.decide(entities, &self.query_for(searched, id), now)?.allowed {
                    found.push(id.clone());
                }
            }
            return Ok(Found { ids: found, path: SearchPath::EveryCandidate });
        }
        // Types and context are checked once; a pair the schema rules out
        // (e.g. an action that does not apply to the type) has no results.
        let (p, r) = pair(uid(candidate_type, first));
        if Request::new(p, action.clone(), r, context.clone(), Some(&decider.schema)).is_err() {
            return nothing(SearchPath::EveryCandidate);
        }
        let query = Partial { action, context: &context, context_json: &context_json, known: &known, var };
        let from_indexes = match mode {
            SearchMode::Auto => indexed(decider, entities, &query, candidate_type, ids).map(Split::allowed),
            SearchMode::EveryCandidate => None,
        };
        let (mut found, path) = match from_indexes {
            Some(found) => (found, SearchPath::Indexed),
            None => {
                let every = ids.iter().filter(|id| {
                    let (p, r) = pair(uid(candidate_type, id));
                    // Already validated above for this type pair.
                    Request::new(p, action.clone(), r, context.clone(), None)
                        .is_ok_and(|request| authorized(decider, &request, action, entities))
                });
                (every.cloned().collect(), SearchPath::EveryCandidate)
            }
        };
        if decider.rules.applies_to(action) {
            found.retain(|id| {
                let (p, r) = pair(uid(candidate_type, id));
                decider.rule_verdicts(action, &p, &r, &context_json).iter().all(|v| v.deny_reason().is_none())
            });
        }
        Ok(Found { ids: found, path })
    }

    /// Resources of the searched-for type on which some policy of
    /// `decider` holds, or a forbid errors: where those policies can make a
    /// difference to a decision (a permit that errors never does). Rules
    /// are not consulted. Policy impact decides these pairs.
    pub(crate) fn touched(
        &self,
        decider: &Decider,
        entities: &EntitySet,
        now: Timestamp,
    ) -> Result<Vec<String>, RequestError> {
        let Some((p_type, r_type)) = self.types(decider) else { return Ok(Vec::new()) };
        let (action, context, context_json) = self.action_and_context(decider, now)?;
        let known = uid(p_type, &self.subject.id);
        let ids = entities.ids_of_type(&r_type.to_string());
        let Some(first) = ids.first() else { return Ok(Vec::new()) };
        if Request::new(known.clone(), action.clone(), uid(r_type, first), context.clone(), Some(&decider.schema))
            .is_err()
        {
            return Ok(Vec::new());
        }
        let query =
            Partial { action, context: &context, context_json: &context_json, known: &known, var: Var::Resource };
        if let Some(split) = indexed(decider, entities, &query, r_type, ids) {
            return Ok(split.touched());
        }
        let policies = decider.index.slice(action).unwrap_or(&decider.policies);
        Ok(ids
            .iter()
            .filter(|id| {
                Request::new(known.clone(), action.clone(), uid(r_type, id), context.clone(), None).is_ok_and(
                    |request| {
                        let response = Authorizer::new().is_authorized(&request, policies, &entities.cedar);
                        response.diagnostics().reason().next().is_some()
                            || decider.explain(&response).reasons.iter().any(|r| r.starts_with(POLICY_ERROR))
                    },
                )
            })
            .cloned()
            .collect())
    }

    /// Action ids `self.subject` may take on `self.resource`: one decision
    /// per action the schema allows between their types. An action the
    /// request does not fit (a context key it requires, say) is left out.
    pub(crate) fn actions(
        &self,
        decider: &Decider,
        entities: &EntitySet,
        now: Timestamp,
    ) -> Result<Vec<String>, RequestError> {
        let Some((p_type, r_type)) = self.types(decider) else { return Ok(Vec::new()) };
        let mut allowed = Vec::new();
        for action in decider.schema.actions_for_principal_and_resource(p_type, r_type) {
            let name = action.id().unescaped();
            let query = Query {
                principal: self.subject.clone(),
                action: action.to_string(),
                action_properties: None,
                resource: self.resource.clone(),
                context: self.context.clone(),
                entities: Vec::new(),
                undeclared: self.undeclared,
            };
            match decider.decide(entities, &query, now) {
                Ok(decision) if decision.allowed => allowed.push(name.to_owned()),
                // Under `--strict-context`, an undeclared name refuses the search.
                Err(e @ RequestError::Undeclared { .. }) if self.undeclared == Undeclared::Refuse => return Err(e),
                Ok(_) | Err(_) => {}
            }
        }
        allowed.sort();
        allowed.dedup();
        Ok(allowed)
    }

    /// The action's uid and the context Cedar sees, parsed and as JSON.
    fn action_and_context<'d>(
        &self,
        decider: &'d Decider,
        now: Timestamp,
    ) -> Result<(&'d EntityUid, Context, Map<String, Value>), RequestError> {
        let action = decider
            .names
            .action(&self.action)
            .ok_or_else(|| RequestError::UnknownAction { name: self.action.clone() })?;
        let (context, context_json) =
            decider.context(action, &self.context, self.action_properties.as_ref(), self.undeclared, now)?;
        Ok((action, context, context_json))
    }

    /// Whether the subject or resource carries properties (see the module docs).
    fn has_properties(&self) -> bool {
        [&self.subject, &self.resource].iter().any(|e| e.properties.as_ref().is_some_and(|p| !p.is_empty()))
    }

    /// The evaluation of candidate `id` on the `searched` side.
    fn query_for(&self, searched: Searched, id: &str) -> Query {
        let candidate = |side: &EntityRef| EntityRef { id: id.to_owned(), ..side.clone() };
        let (principal, resource) = match searched {
            Searched::Resources => (self.subject.clone(), candidate(&self.resource)),
            Searched::Subjects => (candidate(&self.subject), self.resource.clone()),
        };
        Query {
            principal,
            action: self.action.clone(),
            action_properties: self.action_properties.clone(),
            resource,
            context: self.context.clone(),
            entities: Vec::new(),
            undeclared: self.undeclared,
        }
    }

    /// The subject and resource types this search names, if the schema
    /// declares both (an unknown type has no results, not an error).
    fn types<'d>(&self, decider: &'d Decider) -> Option<(&'d EntityTypeName, &'d EntityTypeName)> {
        let names = &decider.names;
        Some((names.entity_type(&self.subject.type_name)?, names.entity_type(&self.resource.type_name)?))
    }
}

/// What the indexed path found: over the candidates, where a permit holds
/// and where a forbid holds or errors (warrant fails closed).
struct Split {
    ids: std::sync::Arc<crate::entities::candidates::Candidates>,
    permitted: Bits,
    forbidden: Bits,
}

impl Split {
    /// Cedar's combining: permitted and not forbidden.
    fn allowed(self) -> Vec<String> {
        self.ids_at(&self.permitted.minus(&self.forbidden))
    }

    /// Where any of the policies can make a difference.
    fn touched(self) -> Vec<String> {
        self.ids_at(&self.permitted.union(&self.forbidden))
    }

    fn ids_at(&self, bits: &Bits) -> Vec<String> {
        bits.positions().filter_map(|p| self.ids.ids.get(p).cloned()).collect()
    }
}

/// The indexed path: `None` when it cannot answer (see the module docs).
fn indexed(
    decider: &Decider,
    entities: &EntitySet,
    query: &Partial<'_>,
    candidate_type: &EntityTypeName,
    ids: &[String],
) -> Option<Split> {
    let mut roots = vec![(query.known.type_name().to_string(), query.known.id().unescaped().to_owned())];
    collect_refs(&Value::Object(query.context_json.clone()), &mut roots);
    roots.extend(decider.literal_refs.iter().cloned());
    let slice = entities.slice(roots, Vec::new(), &decider.action_entities)?.ok()?;
    let partial_entities = PartialEntities::from_concrete(slice, &decider.schema).ok()?;
    let known = PartialEntityUid::from_concrete(query.known.clone());
    let unknown = PartialEntityUid::new(candidate_type.clone(), None);
    let (principal, resource) = match query.var {
        Var::Resource => (known, unknown),
        _ => (unknown, known),
    };
    let request =
        PartialRequest::new(principal, query.action.clone(), resource, Some(query.context.clone()), &decider.schema)
            .ok()?;
    let policies = decider.index.slice(query.action).unwrap_or(&decider.policies);
    let response = policies.tpe(&request, &partial_entities, &decider.schema).ok()?;
    let candidates = entities.search.candidates(candidate_type, ids);
    let n = candidates.len();
    // A forbid that holds, or errors, for any candidate holds for all of them.
    if response.true_forbids().next().is_some() || response.error_forbids().next().is_some() {
        return Some(Split { ids: candidates, permitted: Bits::none(n), forbidden: Bits::all(n) });
    }
    let residuals = Residuals {
        var: query.var.clone(),
        candidates: &candidates,
        entities: &entities.cedar,
        type_name: candidate_type.to_string(),
    };
    let mut permitted = if response.true_permits().next().is_some() { Bits::all(n) } else { Bits::none(n) };
    let mut forbidden = Bits::none(n);
    for policy in response.residual_policies() {
        let (effect, condition) = residuals.policy(&policy.to_pst().ok()?)?;
        match effect {
            Effect::Permit => permitted = permitted.union(&condition.t),
            Effect::Forbid => forbidden = forbidden.union(&condition.t).union(&condition.e),
        }
    }
    Some(Split { ids: candidates, permitted, forbidden })
}

/// Whether `decider` allows `request` (Cedar with warrant's fail-closed
/// forbids; rules are the caller's).
fn authorized(decider: &Decider, request: &Request, action: &EntityUid, entities: &EntitySet) -> bool {
    let policies = decider.index.slice(action).unwrap_or(&decider.policies);
    let response = Authorizer::new().is_authorized(request, policies, &entities.cedar);
    decider.explain(&response).allowed
}

/// The known parts of a search, as partial evaluation takes them.
struct Partial<'a> {
    action: &'a EntityUid,
    context: &'a Context,
    context_json: &'a Map<String, Value>,
    known: &'a EntityUid,
    /// The variable standing for the searched-for entity.
    var: Var,
}
