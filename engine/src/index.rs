//! Policy slicing. Cedar evaluates every policy in a set for every request
//! (about 1 µs each, field notes), so a request should meet only the
//! policies that can apply to it.
//!
//! 1. **By action**, at load: a policy whose action scope cannot match an
//!    action is never satisfied and cannot error, so each action gets the
//!    slice of policies that could apply to it.
//! 2. **By principal and resource scope literals**, per request, for large
//!    slices: a policy scoped `principal == U` or `principal in G` (likewise
//!    for the resource) can only apply when the request's principal is `U`,
//!    or is `G` or has `G` among its ancestors. Cedar checks the scope before
//!    the conditions, so an excluded policy is never satisfied and never
//!    errors. The candidate set is built once per distinct combination and
//!    kept (bounded).
//!
//! Template-linked policies are sliced like static ones (their scopes carry
//! the linked entities); a slice holding one also holds its template.
//!
//! INVARIANT: for every declared action A, `slice(A)` holds exactly the
//! policies whose action constraint is `any`, `== A`, or `in [..]` naming A
//! or an action group A belongs to (transitively); `candidates` returns a
//! subset of it that keeps every policy whose principal and resource scopes
//! can match the request. Decisions against either equal decisions against
//! the whole set (`engine/tests/engine/index_differential.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cedar_policy::{
    ActionConstraint, Entities, EntityUid, Policy, PolicySet, PrincipalConstraint, ResourceConstraint, Schema,
};

/// Slices at most this large are evaluated whole: building a candidate set
/// would cost more than evaluating the few policies it leaves out.
const SCOPED_MIN: usize = 16;
/// Candidate sets kept per action before the memo starts over.
const MEMO_MAX: usize = 4_096;

#[derive(Debug, Default)]
pub struct PolicyIndex {
    by_action: HashMap<EntityUid, ActionSlice>,
}

#[derive(Debug)]
struct ActionSlice {
    all: Arc<PolicySet>,
    /// For slices larger than `SCOPED_MIN` with scope literals to key on.
    scoped: Option<Scoped>,
}

/// A slice's policies by the scope literal that gates them.
#[derive(Debug)]
struct Scoped {
    policies: Vec<Policy>,
    /// The templates linked policies among `policies` come from.
    templates: Arc<PolicySet>,
    /// No usable literal: always a candidate.
    always: Vec<usize>,
    /// `principal == U` / `principal in U` (`is T in U`), keyed by `U`.
    by_principal: HashMap<EntityUid, Vec<usize>>,
    /// The same for the resource, for policies without a principal literal.
    by_resource: HashMap<EntityUid, Vec<usize>>,
    memo: Mutex<HashMap<Vec<usize>, Arc<PolicySet>>>,
}

impl PolicyIndex {
    pub(crate) fn build(schema: &Schema, policies: &PolicySet) -> Self {
        let groups = schema.action_entities().ok();
        let mut templates = PolicySet::new();
        for template in policies.templates() {
            if templates.add_template(template.clone()).is_err() {
                return Self::default();
            }
        }
        let templates = Arc::new(templates);
        let mut by_action = HashMap::new();
        for action in schema.actions() {
            // The action itself and every group it belongs to.
            let mut scope: HashSet<EntityUid> = HashSet::from([action.clone()]);
            if let Some(ancestors) = groups.as_ref().and_then(|g| g.ancestors(action)) {
                scope.extend(ancestors.cloned());
            }
            let mut slice = PolicySet::new();
            let mut members = Vec::new();
            for policy in policies.policies() {
                let applies = match policy.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(uid) => uid == *action,
                    ActionConstraint::In(uids) => uids.iter().any(|u| scope.contains(u)),
                };
                if applies {
                    // Ids are unique in `policies`, so adding cannot fail.
                    if add(&mut slice, policy, &templates).is_none() {
                        return Self::default();
                    }
                    members.push(policy.clone());
                }
            }
            let scoped = (members.len() > SCOPED_MIN).then(|| Scoped::build(members, Arc::clone(&templates))).flatten();
            by_action.insert(action.clone(), ActionSlice { all: Arc::new(slice), scoped });
        }
        Self { by_action }
    }

    /// The policies that can apply to `action`, if the index knows it.
    pub(crate) fn slice(&self, action: &EntityUid) -> Option<&PolicySet> {
        self.by_action.get(action).map(|s| s.all.as_ref())
    }

    /// The policies that can apply to this request: the action's slice,
    /// narrowed by scope literals when it is large. `None` for an action the
    /// index does not know.
    pub(crate) fn candidates(
        &self,
        action: &EntityUid,
        principal: &EntityUid,
        resource: &EntityUid,
        entities: &Entities,
    ) -> Option<Arc<PolicySet>> {
        let slice = self.by_action.get(action)?;
        match &slice.scoped {
            None => Some(Arc::clone(&slice.all)),
            Some(scoped) => {
                Some(scoped.candidates(principal, resource, entities).unwrap_or_else(|| Arc::clone(&slice.all)))
            }
        }
    }
}

impl Scoped {
    /// `None` when too few policies carry a literal for the index to pay.
    fn build(policies: Vec<Policy>, templates: Arc<PolicySet>) -> Option<Self> {
        let mut always = Vec::new();
        let mut by_principal: HashMap<EntityUid, Vec<usize>> = HashMap::new();
        let mut by_resource: HashMap<EntityUid, Vec<usize>> = HashMap::new();
        for (i, policy) in policies.iter().enumerate() {
            let principal = match policy.principal_constraint() {
                PrincipalConstraint::Eq(u) | PrincipalConstraint::In(u) | PrincipalConstraint::IsIn(_, u) => Some(u),
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
            };
            let resource = match policy.resource_constraint() {
                ResourceConstraint::Eq(u) | ResourceConstraint::In(u) | ResourceConstraint::IsIn(_, u) => Some(u),
                ResourceConstraint::Any | ResourceConstraint::Is(_) => None,
            };
            match (principal, resource) {
                (Some(u), _) => by_principal.entry(u).or_default().push(i),
                (None, Some(u)) => by_resource.entry(u).or_default().push(i),
                (None, None) => always.push(i),
            }
        }
        if always.len() * 2 > policies.len() {
            return None;
        }
        Some(Self { policies, templates, always, by_principal, by_resource, memo: Mutex::new(HashMap::new()) })
    }

    /// The candidate set, or `None` when it would be the whole slice.
    fn candidates(&self, principal: &EntityUid, resource: &EntityUid, entities: &Entities) -> Option<Arc<PolicySet>> {
        let mut chosen = self.always.clone();
        for (uid, index) in [(principal, &self.by_principal), (resource, &self.by_resource)] {
            if index.is_empty() {
                continue;
            }
            if let Some(hits) = index.get(uid) {
                chosen.extend_from_slice(hits);
            }
            if let Some(ancestors) = entities.ancestors(uid) {
                for ancestor in ancestors {
                    if let Some(hits) = index.get(ancestor) {
                        chosen.extend_from_slice(hits);
                    }
                }
            }
        }
        chosen.sort_unstable();
        chosen.dedup();
        if chosen.len() == self.policies.len() {
            return None;
        }
        let mut memo = self.memo.lock().ok()?;
        if let Some(set) = memo.get(&chosen) {
            return Some(Arc::clone(set));
        }
        let mut set = PolicySet::new();
        for i in &chosen {
            let policy = self.policies.get(*i)?;
            add(&mut set, policy, &self.templates)?;
        }
        let set = Arc::new(set);
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        memo.insert(chosen, Arc::clone(&set));
        Some(set)
    }
}

/// Adds `policy` to `set`: a static policy as it is, a linked one by linking
/// its template (taken from `templates`, added once) with the same values.
/// `None` if Cedar refuses (ids are unique in a loaded bundle, so it won't).
fn add(set: &mut PolicySet, policy: &Policy, templates: &PolicySet) -> Option<()> {
    let Some(template_id) = policy.template_id() else { return set.add(policy.clone()).ok() };
    if set.template(template_id).is_none() {
        set.add_template(templates.template(template_id)?.clone()).ok()?;
    }
    set.link(template_id.clone(), policy.id().clone(), policy.template_links().unwrap_or_default()).ok()
}
