//! Loading a policy bundle: one `*.cedarschema`, every `*.cedar` file
//! (static policies and templates), an optional `links.json` (template links,
//! see [`links`]) and an optional `entities.json`, strictly validated, with a
//! digest naming it.
//!
//! Everything a decision needs that the bundle fixes (policy reasons and
//! effects, resolved type names, the shape of each action's context) is
//! computed here once, so no request rebuilds it.

mod context_shape;
mod diagnostic;
mod links;
mod source;

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{Effect, PolicyId, PolicySet, Schema, ValidationMode, Validator};

pub use context_shape::{ContextShape, ContextShapes};
pub use diagnostic::Diagnostic;
pub(crate) use diagnostic::line_column;
pub use source::{BundleSource, FileKind};

use crate::index::PolicyIndex;
use crate::names::Names;
use crate::rules::{MANIFEST_PATH, RuleRuntime, RuleSet};

/// Why a bundle could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("`{0}` is not a directory")]
    NotADirectory(String),
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("invalid bundle: {}", summary(.0))]
    Invalid(Vec<Diagnostic>),
}

impl BundleError {
    /// The located problems, one per line when displayed.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Self::Invalid(d) => d.clone(),
            Self::NotADirectory(p) => vec![Diagnostic::file(p, "not a directory")],
            Self::Io { path, message } => vec![Diagnostic::file(path, message.clone())],
        }
    }
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    match diagnostics {
        [] => "no diagnostics".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// What the bundle fixes about one policy.
#[derive(Debug, Clone)]
pub(crate) struct PolicyFacts {
    pub effect: Effect,
    /// The `@reason` annotation, reported when this forbid determines a deny.
    pub reason: Option<String>,
}

/// A loaded, validated bundle. Immutable: a new bundle replaces it whole.
#[derive(Debug)]
pub struct Bundle {
    source: BundleSource,
    digest: String,
    pub(crate) schema: Schema,
    pub(crate) policies: PolicySet,
    pub(crate) index: PolicyIndex,
    pub(crate) facts: HashMap<PolicyId, PolicyFacts>,
    pub(crate) names: Names,
    pub(crate) contexts: ContextShapes,
    /// The entities of `entities.json`, as Cedar entities JSON objects.
    pub(crate) base_entities: Vec<serde_json::Value>,
    /// The schema's action entities: every entity slice includes them.
    pub(crate) action_entities: Vec<cedar_policy::Entity>,
    /// Entities the policies name literally: roots of every entity slice.
    pub(crate) literal_refs: Vec<crate::entities::UidKey>,
    /// Custom rules consulted after Cedar (`rules/`); empty without one.
    pub(crate) rules: RuleSet,
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
    pub fn load_with(source: BundleSource, runtime: Option<&std::sync::Arc<RuleRuntime>>) -> Result<Self, BundleError> {
        let mut diagnostics = Vec::new();

        let schemas: Vec<(&str, &str)> =
            source.files().filter(|(p, _)| FileKind::of(p) == Some(FileKind::Schema)).collect();
        let (schema_path, schema_text) = match schemas.as_slice() {
            [one] => *one,
            [] => {
                return Err(BundleError::Invalid(vec![Diagnostic::file(
                    "*.cedarschema",
                    "the bundle has no schema: add exactly one `*.cedarschema` file at its top level",
                )]));
            }
            [_, second, ..] => {
                return Err(BundleError::Invalid(vec![Diagnostic::file(
                    second.0,
                    "the bundle has more than one schema: keep exactly one `*.cedarschema` file",
                )]));
            }
        };
        let schema = match Schema::from_cedarschema_str(schema_text) {
            Ok((schema, _warnings)) => schema,
            Err(e) => {
                return Err(BundleError::Invalid(vec![Diagnostic::from_cedar(schema_path, schema_text, &e)]));
            }
        };
        let contexts = match ContextShapes::from_cedarschema(schema_text) {
            Ok(c) => c,
            Err(message) => {
                return Err(BundleError::Invalid(vec![Diagnostic::file(schema_path, message)]));
            }
        };

        let mut policies = PolicySet::new();
        let mut facts = HashMap::new();
        // Policy id → (file, text) for locating validation errors.
        let mut origin: HashMap<PolicyId, (String, usize)> = HashMap::new();
        let policy_files: Vec<(&str, &str)> =
            source.files().filter(|(p, _)| FileKind::of(p) == Some(FileKind::Policies)).collect();
        for (file_index, (path, text)) in policy_files.iter().enumerate() {
            let parsed = match PolicySet::from_str(text) {
                Ok(set) => set,
                Err(errors) => {
                    diagnostics.extend(errors.iter().map(|e| Diagnostic::from_cedar(path, text, e)));
                    continue;
                }
            };
            for (index, policy) in parsed.policies().enumerate() {
                let id = match policy.annotation("id") {
                    Some(id) => id.to_owned(),
                    None => format!("{path}#{index}"),
                };
                let id = PolicyId::new(id);
                if origin.contains_key(&id) {
                    let (first_file, _) = origin.get(&id).cloned().unwrap_or_default();
                    let mut d =
                        Diagnostic::file(path, format!("policy id `{id}` is used twice (first in `{first_file}`)"));
                    if let Some(offset) = text.rfind(&format!("@id(\"{id}\")")) {
                        let (line, column) = diagnostic::line_column(text, offset);
                        d.line = Some(line);
                        d.column = Some(column);
                    }
                    diagnostics.push(d);
                    continue;
                }
                let facts_entry =
                    PolicyFacts { effect: policy.effect(), reason: policy.annotation("reason").map(str::to_owned) };
                if let Err(e) = policies.add(policy.new_id(id.clone())) {
                    diagnostics.push(Diagnostic::file(path, e.to_string()));
                    continue;
                }
                facts.insert(id.clone(), facts_entry);
                origin.insert(id, ((*path).to_owned(), file_index));
            }
            for (index, template) in parsed.templates().enumerate() {
                let id = PolicyId::new(match template.annotation("id") {
                    Some(id) => id.to_owned(),
                    None => format!("{path}#template{index}"),
                });
                if let Some((first_file, _)) = origin.get(&id) {
                    diagnostics.push(Diagnostic::file(
                        path,
                        format!("policy id `{id}` is used twice (first in `{first_file}`)"),
                    ));
                    continue;
                }
                if let Err(e) = policies.add_template(template.new_id(id.clone())) {
                    diagnostics.push(Diagnostic::file(path, e.to_string()));
                    continue;
                }
                origin.insert(id, ((*path).to_owned(), file_index));
            }
        }
        if diagnostics.is_empty()
            && let Some((path, text)) = source.files().find(|(p, _)| FileKind::of(p) == Some(FileKind::Links))
        {
            links::link_all(path, text, &mut policies, &mut facts, &mut diagnostics);
        }

        if diagnostics.is_empty() {
            let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
            for error in validation.validation_errors() {
                let (file, text) = origin
                    .get(error.policy_id())
                    .and_then(|(f, i)| policy_files.get(*i).map(|(_, t)| (f.as_str(), *t)))
                    .unwrap_or((schema_path, ""));
                let mut d = Diagnostic::from_cedar(file, text, error);
                let id = format!("`{}`", error.policy_id());
                if !d.message.contains(&id) {
                    d.message = format!("policy {id}: {}", d.message);
                }
                diagnostics.push(d);
            }
        }

        let base_entities = match source.files().find(|(p, _)| FileKind::of(p) == Some(FileKind::Entities)) {
            None => Vec::new(),
            Some((path, text)) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Array(items)) => items,
                Ok(_) => {
                    diagnostics.push(Diagnostic::file(path, "expected a JSON array of Cedar entities"));
                    Vec::new()
                }
                Err(e) => {
                    let mut d = Diagnostic::file(path, format!("malformed JSON: {e}"));
                    d.line = Some(e.line());
                    d.column = Some(e.column());
                    diagnostics.push(d);
                    Vec::new()
                }
            },
        };

        if !diagnostics.is_empty() {
            return Err(BundleError::Invalid(diagnostics));
        }
        let names = Names::from_schema(&schema);
        let components: std::collections::BTreeMap<String, Vec<u8>> = source
            .binaries()
            .filter_map(|(path, bytes)| path.strip_prefix("rules/").map(|name| (name.to_owned(), bytes.to_vec())))
            .collect();
        let rules = match source.files().find(|(p, _)| FileKind::of(p) == Some(FileKind::RulesManifest)) {
            Some((_, manifest)) => RuleSet::load(runtime, manifest, &components, |name| names.action(name).cloned())
                .map_err(BundleError::Invalid)?,
            None if components.is_empty() => RuleSet::default(),
            None => {
                return Err(BundleError::Invalid(vec![Diagnostic::file(
                    MANIFEST_PATH,
                    "`rules/` holds components but no manifest: add `rules/manifest.json`",
                )]));
            }
        };
        let digest = source.digest();
        let index = PolicyIndex::build(&schema, &policies);
        let action_entities = schema.action_entities().map(|e| e.into_iter().collect()).unwrap_or_default();
        let mut literal_refs = Vec::new();
        for policy in policies.policies() {
            if let Ok(json) = policy.to_json() {
                crate::entities::collect_refs(&json, &mut literal_refs);
            }
        }
        // Conditions of linked policies are their templates'.
        for template in policies.templates() {
            if let Ok(json) = template.to_json() {
                crate::entities::collect_refs(&json, &mut literal_refs);
            }
        }
        literal_refs.sort();
        literal_refs.dedup();
        let bundle = Self {
            source,
            digest,
            schema,
            policies,
            index,
            facts,
            names,
            contexts,
            base_entities,
            action_entities,
            literal_refs,
            rules,
        };
        // The bundle's own entities must conform to its schema.
        if let Err(e) = bundle.entity_set(Vec::new()) {
            return Err(BundleError::Invalid(vec![Diagnostic::file("entities.json", e.to_string())]));
        }
        Ok(bundle)
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

    /// The namespace unqualified type names resolve in (`Analytics` for the pack).
    pub fn namespace(&self) -> Option<&str> {
        self.names.namespace()
    }

    /// The qualified name of an entity type a client names, if declared.
    pub fn entity_type(&self, name: &str) -> Option<String> {
        self.names.entity_type(name).map(ToString::to_string)
    }

    /// Number of policies loaded.
    pub fn policy_count(&self) -> usize {
        self.facts.len()
    }

    /// The custom rules consulted after Cedar.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Whether `action`'s context declares `key` as a `datetime`, so a
    /// caller may fill it (the pack's `token_issued_at`) without breaking a
    /// bundle whose schema has no such key.
    pub fn context_has_datetime(&self, action: &str, key: &str) -> bool {
        self.names
            .action(action)
            .and_then(|uid| self.contexts.get(uid))
            .is_some_and(|shape| shape.datetime_keys.iter().any(|k| k == key))
    }

    /// Whether deciding `action` (as a client names it) may run a rule, so
    /// callers can move such decisions off latency-sensitive threads.
    pub fn action_has_rules(&self, action: &str) -> bool {
        !self.rules.is_empty() && self.names.action(action).is_some_and(|uid| self.rules.applies_to(uid))
    }
}
