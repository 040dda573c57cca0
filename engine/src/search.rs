//! AuthZEN search: which resources (subjects, actions) a request would be
//! allowed for, computed per principal from the live store — never served
//! from another principal's answer (R10: the data browser shows each user
//! only what they may browse).
//!
//! Each candidate is decided by Cedar, against the action's policy slice:
//! the request's types are checked against the schema once, then one
//! `is_authorized` per candidate. With the pack's `browse_schema` slice this
//! beats TPE's `query_resource`, which re-validates the whole store per call
//! (field notes: 187 ms at 10,000 schemas).

use cedar_policy::{Authorizer, EntityTypeName, EntityUid, Request};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::bundle::Bundle;
use crate::decide::{EntityRef, RequestError};
use crate::entities::{EntitySet, uid};

/// What is fixed in a search; the searched-for part is a type only.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub subject: EntityRef,
    pub action: String,
    pub resource: EntityRef,
    pub context: Map<String, Value>,
}

impl Bundle {
    /// Ids of the `search.resource.type` entities `search.subject` may
    /// `search.action`, in id order. An unknown type has no results.
    pub fn search_resources(
        &self,
        entities: &EntitySet,
        search: &Search,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, RequestError> {
        let Some((p_type, r_type)) = self.search_types(search) else { return Ok(Vec::new()) };
        let principal = uid(p_type, &search.subject.id);
        self.search_over(entities, &search.action, &search.context, now, r_type, |candidate| {
            (principal.clone(), candidate)
        })
    }

    /// Ids of the `search.subject.type` entities that may `search.action`
    /// on `search.resource`, in id order.
    pub fn search_subjects(
        &self,
        entities: &EntitySet,
        search: &Search,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, RequestError> {
        let Some((p_type, r_type)) = self.search_types(search) else { return Ok(Vec::new()) };
        let resource = uid(r_type, &search.resource.id);
        self.search_over(entities, &search.action, &search.context, now, p_type, |candidate| {
            (candidate, resource.clone())
        })
    }

    /// Action ids `search.subject` may take on `search.resource`.
    pub fn search_actions(
        &self,
        entities: &EntitySet,
        search: &Search,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, RequestError> {
        let Some((p_type, r_type)) = self.search_types(search) else { return Ok(Vec::new()) };
        let principal = uid(p_type, &search.subject.id);
        let resource = uid(r_type, &search.resource.id);
        let mut allowed = Vec::new();
        for action in self.schema.actions_for_principal_and_resource(p_type, r_type) {
            let Some((context, _)) = self.context(action, &search.context, now).ok() else { continue };
            let Ok(request) =
                Request::new(principal.clone(), action.clone(), resource.clone(), context, Some(&self.schema))
            else {
                continue;
            };
            if self.authorized(&request, action, entities) {
                allowed.push(action.id().unescaped().to_owned());
            }
        }
        allowed.sort();
        allowed.dedup();
        Ok(allowed)
    }

    /// The subject and resource types a search names, if the schema declares
    /// both (an unknown type has no results, not an error).
    fn search_types(&self, search: &Search) -> Option<(&EntityTypeName, &EntityTypeName)> {
        Some((self.names.entity_type(&search.subject.type_name)?, self.names.entity_type(&search.resource.type_name)?))
    }

    /// Decides `action` for every entity of `candidates_type`, `pair` placing
    /// the candidate as principal or resource.
    fn search_over(
        &self,
        entities: &EntitySet,
        action_name: &str,
        given_context: &Map<String, Value>,
        now: DateTime<Utc>,
        candidates_type: &EntityTypeName,
        pair: impl Fn(EntityUid) -> (EntityUid, EntityUid),
    ) -> Result<Vec<String>, RequestError> {
        let action = self
            .names
            .action(action_name)
            .ok_or_else(|| RequestError::UnknownAction { name: action_name.to_owned() })?;
        let (context, _) = self.context(action, given_context, now)?;
        let ids = entities.ids_of_type(&candidates_type.to_string());
        let Some(first) = ids.first() else { return Ok(Vec::new()) };
        // Types and context are checked once; a pair the schema rules out
        // (e.g. an action that does not apply to the type) has no results.
        let (p, r) = pair(uid(candidates_type, first));
        if Request::new(p, action.clone(), r, context.clone(), Some(&self.schema)).is_err() {
            return Ok(Vec::new());
        }
        let mut results = Vec::new();
        for id in ids {
            let (p, r) = pair(uid(candidates_type, id));
            // Already validated above for this type pair: skip re-validation.
            let Ok(request) = Request::new(p, action.clone(), r, context.clone(), None) else { continue };
            if self.authorized(&request, action, entities) {
                results.push(id.clone());
            }
        }
        Ok(results)
    }

    fn authorized(&self, request: &Request, action: &EntityUid, entities: &EntitySet) -> bool {
        let policies = self.index.slice(action).unwrap_or(&self.policies);
        let response = Authorizer::new().is_authorized(request, policies, &entities.cedar);
        self.explain(&response).allowed
    }
}
