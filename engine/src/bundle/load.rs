//! Loading a bundle, one named step after another: the schema, the policy
//! files, template links, strict validation, `entities.json`, the rules, and
//! what decisions derive from them (names, the policy index, the entities
//! policies name). Every problem the text steps find is reported, not only
//! the first; the rules are compiled only once the text is sound.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use serde_json::Value;

use super::error::BundleError;
use super::links;
use super::source::{BundleSource, FileKind};
use crate::decide::{Decider, Declared, PolicyFacts};
use crate::diagnostic::{Diagnostic, line_column};
use crate::entities::{EntitySet, UidKey, collect_refs};
use crate::index::PolicyIndex;
use crate::names::Names;
use crate::rules::{MANIFEST_PATH, RuleRuntime, RuleSet};

/// Parses and strictly validates `source`: what decisions need, and the
/// bundle's own entities (`entities.json`). Rule components compile on
/// `runtime` (the shared one when `None`).
pub(super) fn load(
    source: &BundleSource,
    runtime: Option<&Arc<RuleRuntime>>,
) -> Result<(Decider, Vec<Value>), BundleError> {
    let (schema_path, schema_text) = schema_file(source)?;
    let schema = parse_schema(schema_path, schema_text)?;
    let declared = Declared::from_cedarschema(schema_text).map_err(|e| invalid(Diagnostic::file(schema_path, e)))?;

    let mut diagnostics = Vec::new();
    let mut parsed = parse_policies(source, &mut diagnostics);
    if diagnostics.is_empty()
        && let Some((path, text)) = file_of(source, FileKind::Links)
    {
        links::link_all(path, text, &mut parsed.policies, &mut parsed.facts, &mut diagnostics);
    }
    if diagnostics.is_empty() {
        validate(&schema, &parsed, schema_path, &mut diagnostics);
    }
    let base_entities = base_entities(source, &mut diagnostics);
    if !diagnostics.is_empty() {
        return Err(BundleError::Invalid(diagnostics));
    }

    let names = Names::from_schema(&schema);
    let rules = load_rules(source, runtime, &names)?;
    let Parsed { policies, facts, .. } = parsed;
    let index = PolicyIndex::build(&schema, &policies);
    let action_entities = schema.action_entities().map(|e| e.into_iter().collect()).unwrap_or_default();
    let literal_refs = literal_refs(&policies);
    // The bundle's own entities must conform to its schema.
    if let Err(e) = EntitySet::build(&schema, &base_entities, Vec::new()) {
        return Err(invalid(Diagnostic::file("entities.json", e)));
    }
    let decider = Decider { schema, policies, index, facts, names, declared, action_entities, literal_refs, rules };
    Ok((decider, base_entities))
}

fn invalid(diagnostic: Diagnostic) -> BundleError {
    BundleError::Invalid(vec![diagnostic])
}

/// The first file of `kind`, as (path, text).
fn file_of(source: &BundleSource, kind: FileKind) -> Option<(&str, &str)> {
    source.files().find(|(p, _)| FileKind::of(p) == Some(kind))
}

/// The bundle's one `*.cedarschema` file, as (path, text).
fn schema_file(source: &BundleSource) -> Result<(&str, &str), BundleError> {
    let schemas: Vec<(&str, &str)> =
        source.files().filter(|(p, _)| FileKind::of(p) == Some(FileKind::Schema)).collect();
    match schemas.as_slice() {
        [one] => Ok(*one),
        [] => Err(invalid(Diagnostic::file(
            "*.cedarschema",
            "the bundle has no schema: add exactly one `*.cedarschema` file at its top level",
        ))),
        [_, second, ..] => Err(invalid(Diagnostic::file(
            second.0,
            "the bundle has more than one schema: keep exactly one `*.cedarschema` file",
        ))),
    }
}

fn parse_schema(path: &str, text: &str) -> Result<Schema, BundleError> {
    match Schema::from_cedarschema_str(text) {
        Ok((schema, _warnings)) => Ok(schema),
        Err(e) => Err(invalid(Diagnostic::from_cedar(path, text, &e))),
    }
}

/// The policy files, parsed: every policy and template under its id, what
/// decisions need to know of each policy, and where each id came from.
struct Parsed<'s> {
    policies: PolicySet,
    facts: HashMap<PolicyId, PolicyFacts>,
    /// Policy id → (file, text), for locating validation errors.
    origin: HashMap<PolicyId, (&'s str, &'s str)>,
}

/// Parses every `*.cedar` file. A policy's id is its `@id` annotation, or
/// `<file>#<n>` (`<file>#template<n>` for a template); an id used twice is
/// reported where it is used again.
fn parse_policies<'s>(source: &'s BundleSource, diagnostics: &mut Vec<Diagnostic>) -> Parsed<'s> {
    let mut parsed = Parsed { policies: PolicySet::new(), facts: HashMap::new(), origin: HashMap::new() };
    for (path, text) in source.files().filter(|(p, _)| FileKind::of(p) == Some(FileKind::Policies)) {
        match PolicySet::from_str(text) {
            Ok(set) => parsed.add_file(path, text, &set, diagnostics),
            Err(errors) => diagnostics.extend(errors.iter().map(|e| Diagnostic::from_cedar(path, text, e))),
        }
    }
    parsed
}

impl<'s> Parsed<'s> {
    fn add_file(&mut self, path: &'s str, text: &'s str, set: &PolicySet, diagnostics: &mut Vec<Diagnostic>) {
        for (index, policy) in set.policies().enumerate() {
            let id = PolicyId::new(policy.annotation("id").map_or_else(|| format!("{path}#{index}"), str::to_owned));
            if let Some((first_file, _)) = self.origin.get(&id) {
                let mut d = Diagnostic::file(path, format!("policy id `{id}` is used twice (first in `{first_file}`)"));
                if let Some(offset) = text.rfind(&format!("@id(\"{id}\")")) {
                    let (line, column) = line_column(text, offset);
                    d.line = Some(line);
                    d.column = Some(column);
                }
                diagnostics.push(d);
                continue;
            }
            let facts = PolicyFacts { effect: policy.effect(), reason: policy.annotation("reason").map(str::to_owned) };
            if let Err(e) = self.policies.add(policy.new_id(id.clone())) {
                diagnostics.push(Diagnostic::file(path, e));
                continue;
            }
            self.facts.insert(id.clone(), facts);
            self.origin.insert(id, (path, text));
        }
        for (index, template) in set.templates().enumerate() {
            let id = PolicyId::new(
                template.annotation("id").map_or_else(|| format!("{path}#template{index}"), str::to_owned),
            );
            if let Some((first_file, _)) = self.origin.get(&id) {
                diagnostics
                    .push(Diagnostic::file(path, format!("policy id `{id}` is used twice (first in `{first_file}`)")));
                continue;
            }
            if let Err(e) = self.policies.add_template(template.new_id(id.clone())) {
                diagnostics.push(Diagnostic::file(path, e));
                continue;
            }
            self.origin.insert(id, (path, text));
        }
    }
}

/// Strict validation against the schema, each error located in the file of
/// the policy it names (the schema's, when none does).
fn validate(schema: &Schema, parsed: &Parsed<'_>, schema_path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let validation = Validator::new(schema.clone()).validate(&parsed.policies, ValidationMode::Strict);
    for error in validation.validation_errors() {
        let (file, text) = parsed.origin.get(error.policy_id()).copied().unwrap_or((schema_path, ""));
        let mut d = Diagnostic::from_cedar(file, text, error);
        let id = format!("`{}`", error.policy_id());
        if !d.message.contains(&id) {
            d.message = format!("policy {id}: {}", d.message);
        }
        diagnostics.push(d);
    }
}

/// `entities.json`, when there is one: a JSON array of Cedar entities
/// (checked against the schema once everything else has loaded).
fn base_entities(source: &BundleSource, diagnostics: &mut Vec<Diagnostic>) -> Vec<Value> {
    let Some((path, text)) = file_of(source, FileKind::Entities) else { return Vec::new() };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
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
    }
}

/// The custom rules: `rules/manifest.json` and the `rules/*.wasm`
/// components it names, compiled on `runtime`. Components without a
/// manifest are refused rather than ignored.
fn load_rules(
    source: &BundleSource,
    runtime: Option<&Arc<RuleRuntime>>,
    names: &Names,
) -> Result<RuleSet, BundleError> {
    let components: BTreeMap<String, Vec<u8>> = source
        .binaries()
        .filter_map(|(path, bytes)| path.strip_prefix("rules/").map(|name| (name.to_owned(), bytes.to_vec())))
        .collect();
    match file_of(source, FileKind::RulesManifest) {
        Some((_, manifest)) => RuleSet::load(runtime, manifest, &components, |name| names.action(name).cloned())
            .map_err(BundleError::Invalid),
        None if components.is_empty() => Ok(RuleSet::default()),
        None => Err(invalid(Diagnostic::file(
            MANIFEST_PATH,
            "`rules/` holds components but no manifest: add `rules/manifest.json`",
        ))),
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
