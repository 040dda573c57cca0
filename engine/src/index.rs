//! Policy slicing by action. Cedar evaluates every policy for every request
//! (about 1 µs each, field notes); a policy whose action scope cannot match
//! the request's action can never be satisfied nor error, so each action
//! gets, at load, the slice of policies that could apply to it.
//!
//! INVARIANT: for every declared action A, `slice(A)` holds exactly the
//! policies whose action constraint is `any`, `== A`, or `in [..]` naming A
//! or an action group A belongs to (transitively). Decisions against the
//! slice equal decisions against the whole set.

use std::collections::{HashMap, HashSet};

use cedar_policy::{ActionConstraint, EntityUid, PolicySet, Schema};

#[derive(Debug, Clone, Default)]
pub struct PolicyIndex {
    by_action: HashMap<EntityUid, PolicySet>,
}

impl PolicyIndex {
    pub(crate) fn build(schema: &Schema, policies: &PolicySet) -> Self {
        let groups = schema.action_entities().ok();
        let mut by_action = HashMap::new();
        for action in schema.actions() {
            // The action itself and every group it belongs to.
            let mut scope: HashSet<EntityUid> = HashSet::from([action.clone()]);
            if let Some(ancestors) = groups.as_ref().and_then(|g| g.ancestors(action)) {
                scope.extend(ancestors.cloned());
            }
            let mut slice = PolicySet::new();
            for policy in policies.policies() {
                let applies = match policy.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(uid) => uid == *action,
                    ActionConstraint::In(uids) => uids.iter().any(|u| scope.contains(u)),
                };
                // Ids are unique in `policies`, so adding cannot fail.
                if applies && slice.add(policy.clone()).is_err() {
                    return Self::default();
                }
            }
            by_action.insert(action.clone(), slice);
        }
        Self { by_action }
    }

    /// The policies that can apply to `action`, if the index knows it.
    pub(crate) fn slice(&self, action: &EntityUid) -> Option<&PolicySet> {
        self.by_action.get(action)
    }
}
