//! Loading a policy bundle: one `*.cedarschema`, every `*.cedar` file
//! (static policies and templates), an optional `links.json` (template links,
//! see [`links`]) and an optional `entities.json`, strictly validated, with a
//! digest naming it.
//!
//! Everything a decision needs that the bundle fixes (policy reasons and
//! effects, resolved type names, the shape of each action's context) is
//! computed once, when the bundle loads (`load`, step by step), so no
//! request rebuilds it.
//!
//! [`Bundle`] is also the engine's facade, and every `impl Bundle` is in
//! this file: a method that does more than read a field hands over, in one
//! line, to the module named after its concept ([`crate::decide`],
//! [`crate::entities`], [`crate::search`]). Those modules work on what they
//! need (a `Decider`, an [`EntitySet`]) and never name `Bundle`, so nothing
//! they do depends back on loading.

mod can_error;
mod error;
mod links;
mod lint;
mod load;
mod source;
mod syntax;

use std::sync::Arc;

use serde_json::Value;

pub use error::BundleError;
pub use source::{BundleSource, FileKind};

use crate::decide::{Decider, Decision};
use crate::diagnostic::Diagnostic;
use crate::entities::{EntitiesError, EntitySet};
use crate::impact::{self, Impact};
use crate::request::{Query, RequestError};
use crate::rules::{RuleRuntime, RuleSet};
use crate::search::{Found, Search, SearchMode, Searched};
use crate::time::Timestamp;

/// A loaded, validated bundle. Immutable: a new bundle replaces it whole.
#[derive(Debug)]
pub struct Bundle {
    source: BundleSource,
    digest: String,
    /// What decisions (and searches) read.
    decider: Decider,
    /// The entities of `entities.json`, as Cedar entities JSON objects.
    base_entities: Vec<Value>,
    /// What loading found worth telling but not worth refusing (`lint`).
    warnings: Vec<Diagnostic>,
}

impl Bundle {
    /// Parses and strictly validates `source`; every problem found is reported,
    /// not only the first. Rule components compile on the process-wide
    /// [`RuleRuntime::shared`] runtime (in-memory cache only).
    pub fn load(source: BundleSource) -> Result<Self, BundleError> {
        Self::load_with(source, None)
    }

    /// [`load`](Self::load) on a given rules runtime (one with an on-disk
    /// cache of compiled components, say).
    pub fn load_with(source: BundleSource, runtime: Option<&Arc<RuleRuntime>>) -> Result<Self, BundleError> {
        let load::Loaded { decider, base_entities, warnings } = load::load(&source, runtime)?;
        Ok(Self { digest: source.digest(), source, decider, base_entities, warnings })
    }

    /// Reads and loads a bundle directory.
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, BundleError> {
        Self::load(BundleSource::read_dir(dir)?)
    }

    /// `sha256:<hex>` naming exactly these files.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn source(&self) -> &BundleSource {
        &self.source
    }

    /// What loading found that is probably a mistake but refuses nothing:
    /// Cedar's validation warnings, a permit that can never apply, dead
    /// conditions that can only make decisions stricter (docs/cli.md#check).
    /// Located like errors, in file and line order.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The namespace unqualified type names resolve in (`Analytics` for the pack).
    pub fn namespace(&self) -> Option<&str> {
        self.decider.names.namespace()
    }

    /// The qualified name of an entity type a client names, if declared.
    pub fn entity_type(&self, name: &str) -> Option<String> {
        self.decider.names.entity_type(name).map(ToString::to_string)
    }

    /// Whether the schema declares the entity type `name` (qualified, or
    /// unqualified in the bundle's namespace).
    pub fn has_entity_type(&self, name: &str) -> bool {
        self.decider.names.entity_type(name).is_some()
    }

    /// The full uid of every action the schema declares, sorted
    /// (`Analytics::Action::"view_notebook"`); each names its action for
    /// [`Bundle::decide`].
    pub fn actions(&self) -> Vec<String> {
        self.decider.names.actions().map(ToString::to_string).collect()
    }

    /// Whether the schema declares `action` (its id or its full uid).
    pub fn has_action(&self, action: &str) -> bool {
        self.decider.names.action(action).is_some()
    }

    /// Whether the schema lets `action` apply to a `principal` and a
    /// `resource` of these types (names as for [`entity_type`](Self::entity_type)).
    pub fn action_applies_to(&self, action: &str, principal: &str, resource: &str) -> bool {
        self.decider.applies_to(action, principal, resource)
    }

    /// Whether `action`'s context declares `key`, required or optional: a
    /// key it does not declare is ignored (or, under
    /// [`Undeclared::Refuse`](crate::request::Undeclared), refused).
    pub fn context_has_key(&self, action: &str, key: &str) -> bool {
        self.decider.context_shape(action).is_some_and(|shape| shape.keys.iter().any(|k| k == key))
    }

    /// Number of policies loaded.
    pub fn policy_count(&self) -> usize {
        self.decider.facts.len()
    }

    /// The custom rules consulted after Cedar.
    pub fn rules(&self) -> &RuleSet {
        &self.decider.rules
    }

    /// Whether `action`'s context declares `key` as a `datetime`, so a
    /// caller may fill it (the pack's `token_issued_at`) without breaking a
    /// bundle whose schema has no such key.
    pub fn context_has_datetime(&self, action: &str, key: &str) -> bool {
        self.decider.context_shape(action).is_some_and(|shape| shape.datetime_keys.iter().any(|k| k == key))
    }

    /// Whether deciding `action` (as a client names it) may run a rule, so
    /// callers can move such decisions off latency-sensitive threads.
    pub fn action_has_rules(&self, action: &str) -> bool {
        !self.decider.rules.is_empty()
            && self.decider.names.action(action).is_some_and(|uid| self.decider.rules.applies_to(uid))
    }

    /// Builds the entity set decisions see: this bundle's `entities.json`, then
    /// `stored` (later wins for the same uid), all checked against the schema.
    /// Duplicates within `stored` are refused: a store replace must be unambiguous.
    pub fn entity_set(&self, stored: Vec<Value>) -> Result<EntitySet, EntitiesError> {
        EntitySet::build(&self.decider.schema, &self.base_entities, stored)
    }

    /// Decides `query` against `entities`; `now` fills the context's `now`
    /// when the action takes one and the caller left it out.
    pub fn decide(&self, entities: &EntitySet, query: &Query, now: Timestamp) -> Result<Decision, RequestError> {
        self.decider.decide(entities, query, now)
    }

    /// Ids of the `search.resource.type` entities `search.subject` may
    /// `search.action`, in id order. An unknown type has no results.
    pub fn search_resources(
        &self,
        entities: &EntitySet,
        search: &Search,
        now: Timestamp,
    ) -> Result<Vec<String>, RequestError> {
        Ok(search.find(&self.decider, entities, Searched::Resources, SearchMode::Auto, now)?.ids)
    }

    /// Ids of the `search.subject.type` entities that may `search.action`
    /// on `search.resource`, in id order.
    pub fn search_subjects(
        &self,
        entities: &EntitySet,
        search: &Search,
        now: Timestamp,
    ) -> Result<Vec<String>, RequestError> {
        Ok(search.find(&self.decider, entities, Searched::Subjects, SearchMode::Auto, now)?.ids)
    }

    /// Resources or subjects of the searched-for type allowed to take part in
    /// `search.action` with the other, given side.
    pub fn search_entities(
        &self,
        entities: &EntitySet,
        search: &Search,
        searched: Searched,
        mode: SearchMode,
        now: Timestamp,
    ) -> Result<Found, RequestError> {
        search.find(&self.decider, entities, searched, mode, now)
    }

    /// What `after` would decide differently from this bundle over the
    /// store (`entities` this bundle's set of it, `after_entities` the
    /// other's), every request decided at `now`, with at most `examples`
    /// flips listed per action (see [`crate::impact`]).
    pub fn impact(
        &self,
        entities: &EntitySet,
        after: &Bundle,
        after_entities: &EntitySet,
        now: Timestamp,
        examples: usize,
    ) -> Impact {
        let shared = self.source.shared_with(&after.source);
        impact::compare(self.side(entities), after.side(after_entities), shared, now, examples)
    }

    /// Asks the `decision` records among `records` again under `after`
    /// (over `after_entities`), and under this bundle (the one in force),
    /// and reports those whose answer changes (see [`crate::impact`]).
    pub fn replay(
        &self,
        entities: &EntitySet,
        after: &Bundle,
        after_entities: &EntitySet,
        records: &[crate::audit::Record],
        examples: usize,
    ) -> impact::Replay {
        impact::replay(self.side(entities), after.side(after_entities), records, examples)
    }

    /// Whether `other` has the same schema and `entities.json`, so an
    /// entity set built for one serves the other unchanged.
    pub fn sees_same_entities(&self, other: &Bundle) -> bool {
        self.source.shared_with(&other.source).facts
    }

    fn side<'a>(&'a self, entities: &'a EntitySet) -> impact::Side<'a> {
        impact::Side { decider: &self.decider, entities }
    }

    /// Action ids `search.subject` may take on `search.resource`.
    pub fn search_actions(
        &self,
        entities: &EntitySet,
        search: &Search,
        now: Timestamp,
    ) -> Result<Vec<String>, RequestError> {
        search.actions(&self.decider, entities, now)
    }
}
