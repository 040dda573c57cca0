//! Policy impact: what a new bundle would decide differently from the
//! active one, over the live entity store (`warrant diff`,
//! `PUT /v1/policies?dry_run=true`). Security teams ask it before a change
//! goes live.
//!
//! For every action and every principal and resource type the schema lets
//! it take, every principal × resource pair of the store is in scope, and
//! the work tracks the pairs that can differ, not the product:
//! 1. The two bundles' slices for the action are compared by meaning
//!    (`changes`). An action whose policies all match, whose rules did not
//!    change, over the same entities, decides every pair alike: nothing is
//!    decided, and the report says so.
//! 2. Otherwise, a decision can only change where a policy of one bundle
//!    that the other lacks holds, or (a forbid) errors. A decision reads
//!    which policies hold and which forbids error; if none of the
//!    unmatched ones does, both bundles see the same. Per principal, a
//!    principal outside every unmatched policy's scope is skipped; for the
//!    others, the resources the unmatched policies touch come from the
//!    search's partial evaluation and indexes (`Search::touched`).
//! 3. Each touched pair is decided under both bundles, rules included, and
//!    a pair whose answer differs is a flip, explained by what decided it.
//!    A principal with many touched pairs (a forbid on every project of an
//!    admin) has both bundles' searches compared first, and only the pairs
//!    where they differ are decided.
//!
//! When the schema, `entities.json` or an action's custom rules differ,
//! step 2's argument does not hold (the entities, or what runs after Cedar,
//! changed), and every principal's allowed resources are searched under
//! both bundles instead.
//!
//! Requests are decided with a context holding only `now` (the moment of
//! the comparison): the store does not know what a caller will put in the
//! context. Context keys the action's policies read, types with no
//! entities in the store, and actions only one bundle declares are listed
//! as not covered, never silently skipped. Replaying logged decisions
//! (`replay`) covers the contexts callers really sent.

mod answers;
mod changes;
mod replay;

pub(crate) use answers::Side;
use answers::{action_id, deciding};
pub(crate) use replay::replay;
pub use replay::{NotReplayable, Replay, Replayed};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cedar_policy::{EntityTypeName, EntityUid, PolicyId};
use serde::Serialize;
use serde_json::Map;

use crate::cedar::uid;
use crate::decide::{Decider, Decision};
use crate::request::{EntityRef, Query};
use crate::search::{Search, SearchMode, Searched};
use crate::time::Timestamp;

/// Touched pairs of one principal decided one by one up to this many;
/// above it, the two bundles' searches say which can flip.
const DECIDE_AT_MOST: usize = 8;

/// What the two bundles share beyond policies, as their files say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shared {
    /// Same schema and `entities.json`: both sides see the same entities.
    pub facts: bool,
    /// Same custom rules.
    pub rules: bool,
}

/// What a new bundle would change, over the store, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    /// The `now` every request was decided at.
    pub at: Timestamp,
    /// Pairs denied before and allowed after.
    pub newly_permitted: usize,
    /// Pairs allowed before and denied after.
    pub newly_denied: usize,
    /// Principal × resource pairs whose answers were compared under both
    /// bundles (decided one by one, or through both bundles' searches).
    pub decided: usize,
    /// Per action and type pair, in action order.
    pub actions: Vec<ActionImpact>,
    /// What the comparison could not decide, and why.
    pub not_covered: Vec<NotCovered>,
}

/// The impact on one action between one principal type and one resource type.
#[derive(Debug, Clone, Serialize)]
pub struct ActionImpact {
    /// The action's id (`run_query`).
    pub action: String,
    pub principal_type: String,
    pub resource_type: String,
    /// How the pairs were chosen.
    pub compared: Compared,
    /// Policies of the action one bundle has and the other lacks: the
    /// before bundle's ids prefixed `-`, the after bundle's `+`.
    pub changed_policies: Vec<String>,
    /// Principals whose pairs were looked at.
    pub principals: usize,
    pub decided: usize,
    pub newly_permitted: usize,
    pub newly_denied: usize,
    /// Flips per deciding policy (or `rule:<name>`, `no_permit`), by name.
    pub by_policy: Vec<PolicyFlips>,
    /// The first flips, in principal and resource order.
    pub examples: Vec<Flip>,
    /// Pairs one bundle could not decide (listed under `not_covered`).
    pub undecided: usize,
    #[serde(skip)]
    first_error: Option<String>,
}

/// How an action's pairs were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compared {
    /// The same policies (by meaning), rules and entities: nothing to decide.
    Unchanged,
    /// The pairs the unmatched policies touch.
    ChangedPolicies,
    /// Every principal's allowed resources, searched under both bundles
    /// (the schema, `entities.json` or the action's rules changed).
    Everything,
}

/// How many flips one policy (or rule) decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyFlips {
    pub policy: String,
    pub newly_permitted: usize,
    pub newly_denied: usize,
}

/// One request whose answer the new bundle changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flip {
    /// `Analytics::User::"eddie"`.
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// The new answer.
    pub allowed: bool,
    /// What decided the new answer: the permits of an allow; the forbids,
    /// `rule:<name>`, `no_permit` or `policy_error:<id>` of a deny.
    pub by: Vec<String>,
    /// What decided the old answer, in the same terms.
    pub was: Vec<String>,
}

/// Requests the comparison did not decide, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotCovered {
    pub action: String,
    pub reason: String,
    /// The context keys involved, when that is the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context_keys: Vec<String>,
}

/// Compares `before` and `after` over their entities at `now`, listing
/// up to `examples` flips per action and type pair.
pub(crate) fn compare(before: Side<'_>, after: Side<'_>, shared: Shared, now: Timestamp, examples: usize) -> Impact {
    let meanings = (changes::meanings(&before.decider.policies), changes::meanings(&after.decider.policies));
    let mut impact = Impact {
        at: now,
        newly_permitted: 0,
        newly_denied: 0,
        decided: 0,
        actions: Vec::new(),
        not_covered: Vec::new(),
    };
    let names: BTreeSet<String> =
        [before, after].iter().flat_map(|side| side.decider.names.actions().map(ToString::to_string)).collect();
    for name in names {
        let id = action_id(&name);
        let (Some(b), Some(a)) = (before.decider.names.action(&name), after.decider.names.action(&name)) else {
            let which = if before.decider.names.action(&name).is_none() { "before" } else { "after" };
            impact.not_covered.push(NotCovered {
                action: id,
                reason: format!(
                    "only one bundle declares this action: the {which} bundle refuses every request for it"
                ),
                context_keys: Vec::new(),
            });
            continue;
        };
        let action = Action::new(before, after, (b, a), &meanings, shared);
        for (p_type, r_type) in action.type_pairs() {
            let mut found = action.compare(&p_type, &r_type, now, examples);
            impact.not_covered.extend(action.not_covered(&id, &p_type, &r_type, &found));
            found.action.clone_from(&id);
            impact.newly_permitted += found.newly_permitted;
            impact.newly_denied += found.newly_denied;
            impact.decided += found.decided;
            impact.actions.push(found);
        }
    }
    impact
}

/// One action, as both bundles see it.
struct Action<'a> {
    before: Side<'a>,
    after: Side<'a>,
    uids: (&'a EntityUid, &'a EntityUid),
    compared: Compared,
    /// The unmatched policies: (before's, after's).
    unmatched: (Vec<PolicyId>, Vec<PolicyId>),
    /// Deciders over only the unmatched policies of each side.
    probes: Option<(Decider, Decider)>,
    /// Context keys the action's policies read, in either bundle.
    context_keys: BTreeSet<String>,
    has_rules: bool,
}

impl<'a> Action<'a> {
    fn new(
        before: Side<'a>,
        after: Side<'a>,
        uids: (&'a EntityUid, &'a EntityUid),
        meanings: &(HashMap<PolicyId, String>, HashMap<PolicyId, String>),
        shared: Shared,
    ) -> Self {
        let slice = |side: Side<'a>, uid| side.decider.index.slice(uid).unwrap_or(&side.decider.policies);
        let (b_slice, a_slice) = (slice(before, uids.0), slice(after, uids.1));
        let unmatched = changes::unmatched(b_slice, &meanings.0, a_slice, &meanings.1);
        let has_rules = before.decider.rules.applies_to(uids.0) || after.decider.rules.applies_to(uids.1);
        let compared = if !shared.facts || (!shared.rules && has_rules) {
            Compared::Everything
        } else if unmatched.0.is_empty() && unmatched.1.is_empty() {
            Compared::Unchanged
        } else {
            Compared::ChangedPolicies
        };
        let probes = (compared == Compared::ChangedPolicies).then(|| {
            (
                before.decider.over(changes::subset(b_slice, &unmatched.0)),
                after.decider.over(changes::subset(a_slice, &unmatched.1)),
            )
        });
        // Only a compared action reports what it did not cover; reading
        // every policy's JSON for the others would cost more than the rest.
        let mut context_keys = BTreeSet::new();
        if compared != Compared::Unchanged {
            context_keys = changes::context_keys(b_slice.policies(), b_slice);
            context_keys.extend(changes::context_keys(a_slice.policies(), a_slice));
            context_keys.remove("now");
        }
        Self { before, after, uids, compared, unmatched, probes, context_keys, has_rules }
    }

    /// The (principal, resource) types the after bundle's schema lets the
    /// action take, as qualified names.
    fn type_pairs(&self) -> Vec<(String, String)> {
        let decider = self.after.decider;
        let named = |types: Option<Vec<&EntityTypeName>>| -> Vec<String> {
            let mut names: Vec<String> =
                types.unwrap_or_default().into_iter().map(|t| decider.names.qualified(t).into_owned()).collect();
            names.sort();
            names
        };
        let principals = named(decider.schema.principals_for_action(self.uids.1).map(Iterator::collect));
        let resources = named(decider.schema.resources_for_action(self.uids.1).map(Iterator::collect));
        principals.iter().flat_map(|p| resources.iter().map(move |r| (p.clone(), r.clone()))).collect()
    }

    fn compare(&self, p_type: &str, r_type: &str, now: Timestamp, examples: usize) -> ActionImpact {
        let mut changed_policies: Vec<String> = self.unmatched.0.iter().map(|id| format!("-{id}")).collect();
        changed_policies.extend(self.unmatched.1.iter().map(|id| format!("+{id}")));
        let mut found = ActionImpact {
            action: String::new(),
            principal_type: p_type.to_owned(),
            resource_type: r_type.to_owned(),
            compared: self.compared,
            changed_policies,
            principals: 0,
            decided: 0,
            newly_permitted: 0,
            newly_denied: 0,
            by_policy: Vec::new(),
            examples: Vec::new(),
            undecided: 0,
            first_error: None,
        };
        if self.compared == Compared::Unchanged
            || !self.before.decider.applies_to(&self.uids.0.to_string(), p_type, r_type)
        {
            return found;
        }
        // Principals are independent: split over the cores, in order, so
        // the merged examples are still the first in principal order.
        let principals = self.after.entities.ids_of_type(p_type);
        let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 8);
        let chunk = principals.len().div_ceil(threads).max(64);
        let tallies: Vec<Tally> = std::thread::scope(|scope| {
            let handles: Vec<_> = principals
                .chunks(chunk)
                .map(|part| scope.spawn(move || self.tally(part, p_type, r_type, now, examples)))
                .collect();
            // A panic in a worker is a bug; it surfaces as the caller's.
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        let mut tally = Tally { examples_max: examples, ..Tally::default() };
        for part in tallies {
            tally.merge(part);
        }
        found.principals = tally.principals;
        found.decided = tally.compared;
        tally.into(&mut found);
        found
    }

    /// The flips among `principals`' pairs.
    fn tally(&self, principals: &[String], p_type: &str, r_type: &str, now: Timestamp, examples: usize) -> Tally {
        let mut tally = Tally { examples_max: examples, ..Tally::default() };
        for principal in principals {
            let search = Search {
                subject: EntityRef { type_name: p_type.to_owned(), id: principal.clone(), properties: None },
                action: self.uids.1.to_string(),
                resource: EntityRef { type_name: r_type.to_owned(), ..EntityRef::default() },
                ..Search::default()
            };
            let Some((pairs, compared)) = self.pairs(&search, now) else { continue };
            tally.principals += 1;
            tally.compared += compared;
            for resource in pairs {
                let query = Query {
                    principal: search.subject.clone(),
                    action: search.action.clone(),
                    resource: EntityRef { type_name: r_type.to_owned(), id: resource, properties: None },
                    context: Map::new(),
                    ..Query::default()
                };
                let decided = (
                    self.before.decider.decide(self.before.entities, &query, now),
                    self.after.decider.decide(self.after.entities, &query, now),
                );
                match decided {
                    (Ok(old), Ok(new)) if old.allowed != new.allowed => tally.flip(&query, &old, &new),
                    (Ok(_), Ok(_)) => {}
                    (Err(e), _) | (_, Err(e)) => {
                        tally.undecided += 1;
                        tally.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }
        tally
    }

    /// For `search`'s principal: the resources whose answers may differ,
    /// to decide under both bundles, and how many pairs were compared to
    /// find them; `None` when no unmatched policy's scope admits it.
    ///
    /// Unmatched policies touching many resources (a forbid on every
    /// project of an admin, say) are narrowed further: a touched pair can
    /// only flip where the two bundles' searches differ, and two searches
    /// cost less than deciding every touched pair twice.
    fn pairs(&self, search: &Search, now: Timestamp) -> Option<(Vec<String>, usize)> {
        let decider = self.after.decider;
        let principal = decider.names.entity_type(&search.subject.type_name).map(|t| uid(t, &search.subject.id))?;
        let Some((before_probe, after_probe)) = &self.probes else {
            let compared = self.after.entities.ids_of_type(&search.resource.type_name).len();
            return Some((self.searched_differ(search, now), compared));
        };
        let in_scope = |probe: &Decider, side: Side<'_>| {
            changes::in_any_scope(probe.policies.policies(), &principal, &side.entities.cedar)
        };
        if !in_scope(before_probe, self.before) && !in_scope(after_probe, self.after) {
            return None;
        }
        let touched = |probe: &Decider, side: Side<'_>| {
            if probe.policies.is_empty() {
                Vec::new()
            } else {
                search.touched(probe, side.entities, now).unwrap_or_default()
            }
        };
        let mut touched = merged(touched(before_probe, self.before), touched(after_probe, self.after));
        let compared = touched.len();
        if compared > DECIDE_AT_MOST {
            let differ: BTreeSet<String> = self.searched_differ(search, now).into_iter().collect();
            touched.retain(|r| differ.contains(r));
        }
        Some((touched, compared))
    }

    /// The resources one bundle's search allows `search`'s principal and
    /// the other's does not.
    fn searched_differ(&self, search: &Search, now: Timestamp) -> Vec<String> {
        let allowed = |side: Side<'_>| -> BTreeSet<String> {
            search
                .find(side.decider, side.entities, Searched::Resources, SearchMode::Auto, now)
                .map(|f| f.ids.into_iter().collect())
                .unwrap_or_default()
        };
        let (old, new) = (allowed(self.before), allowed(self.after));
        old.symmetric_difference(&new).cloned().collect()
    }

    /// What this action's comparison leaves out.
    fn not_covered(&self, id: &str, p_type: &str, r_type: &str, found: &ActionImpact) -> Vec<NotCovered> {
        if self.compared == Compared::Unchanged {
            return Vec::new();
        }
        let mut out = Vec::new();
        let note =
            |reason: String, context_keys: Vec<String>| NotCovered { action: id.to_owned(), reason, context_keys };
        if !self.before.decider.applies_to(&self.uids.0.to_string(), p_type, r_type) {
            out.push(note(format!("the before bundle does not let it apply to {p_type} and {r_type}"), Vec::new()));
        }
        for ty in [p_type, r_type] {
            if self.after.entities.ids_of_type(ty).is_empty() {
                out.push(note(
                    format!("no {ty} entities in the store: requests that bring them are not covered"),
                    Vec::new(),
                ));
            }
        }
        if !self.context_keys.is_empty() {
            out.push(note(
                "decided with a context holding only `now`: flips that depend on these keys are not covered".to_owned(),
                self.context_keys.iter().cloned().collect(),
            ));
        }
        if self.has_rules {
            out.push(note("custom rules were consulted with a context holding only `now`".to_owned(), Vec::new()));
        }
        if let Some(error) = &found.first_error {
            out.push(note(
                format!("{} pairs could not be decided, the first because: {error}", found.undecided),
                Vec::new(),
            ));
        }
        out
    }
}

/// Two sorted id lists, merged without duplicates.
fn merged(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    let mut all: Vec<String> = a.into_iter().chain(b).collect();
    all.sort();
    all.dedup();
    all
}

/// Flips counted while an action's pairs are decided.
#[derive(Default)]
struct Tally {
    principals: usize,
    compared: usize,
    newly_permitted: usize,
    newly_denied: usize,
    by_policy: BTreeMap<String, (usize, usize)>,
    examples: Vec<Flip>,
    examples_max: usize,
    /// Pairs a bundle could not decide, and why the first could not.
    undecided: usize,
    first_error: Option<String>,
}

impl Tally {
    fn flip(&mut self, query: &Query, old: &Decision, new: &Decision) {
        let by = deciding(new);
        for policy in &by {
            let entry = self.by_policy.entry(policy.clone()).or_default();
            if new.allowed { entry.0 += 1 } else { entry.1 += 1 }
        }
        if new.allowed {
            self.newly_permitted += 1
        } else {
            self.newly_denied += 1
        }
        if self.examples.len() < self.examples_max {
            self.examples.push(Flip {
                principal: format!("{}::{:?}", query.principal.type_name, query.principal.id),
                action: action_id(&query.action),
                resource: format!("{}::{:?}", query.resource.type_name, query.resource.id),
                allowed: new.allowed,
                by,
                was: deciding(old),
            });
        }
    }

    /// Adds `other`'s counts, and its examples after these.
    fn merge(&mut self, other: Tally) {
        self.principals += other.principals;
        self.compared += other.compared;
        self.newly_permitted += other.newly_permitted;
        self.newly_denied += other.newly_denied;
        for (policy, (permitted, denied)) in other.by_policy {
            let entry = self.by_policy.entry(policy).or_default();
            entry.0 += permitted;
            entry.1 += denied;
        }
        let room = self.examples_max.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
        self.undecided += other.undecided;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn into(self, found: &mut ActionImpact) {
        found.newly_permitted = self.newly_permitted;
        found.newly_denied = self.newly_denied;
        found.by_policy = self
            .by_policy
            .into_iter()
            .map(|(policy, (newly_permitted, newly_denied))| PolicyFlips { policy, newly_permitted, newly_denied })
            .collect();
        found.examples = self.examples;
        found.undecided = self.undecided;
        found.first_error = self.first_error;
    }
}
