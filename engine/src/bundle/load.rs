//! Loading a bundle, one named step after another: the schema, the policy
//! files, template links, strict validation, the lints (`lint`),
//! `entities.json`, the rules (compiled, each configuration probed), and
//! what decisions derive from them (names, the policy index, the entities
//! policies name). Every problem the text steps find is reported, not only
//! the first, except what a syntax error would make up: only a file's first
//! syntax error is reported (`syntax`), and nothing is validated after one.
//! The rules are compiled only once the text is sound.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    EntityTypeName, EntityUid, PolicyId, PolicySet, Schema, ValidationMode, ValidationResult, Validator,
};
use serde_json::Value;

use super::error::BundleError;
use super::links;
use super::lint::{self, Severity, Sources};
use super::source::{BundleSource, FileKind};
use super::syntax;
use crate::decide::{Decider, Declared, PolicyFacts};
use crate::diagnostic::{Diagnostic, line_column};
use crate::entities::EntitySet;
use crate::names::Names;
use crate::rules::{MANIFEST_PATH, Probe, RuleRuntime, RuleSet};

/// What loading yields: what decisions need, the bundle's own entities
/// (`entities.json`), and the warnings found on the way.
pub(super) struct Loaded {
    pub decider: Decider,
    pub base_entities: Vec<Value>,
    pub warnings: Vec<Diagnostic>,
}

/// Parses and strictly validates `source`, then lints it. Rule components
/// compile on `runtime` (the shared one when `None`). Warnings are returned
/// only with a bundle that loads: next to an error they would only delay it.
pub(super) fn load(source: &BundleSource, runtime: Option<&Arc<RuleRuntime>>) -> Result<Loaded, BundleError> {
    let (schema_path, schema_text) = schema_file(source)?;
    let mut warnings = Vec::new();
    let schema = parse_schema(schema_path, schema_text, &mut warnings)?;
    let declared = Declared::from_cedarschema(schema_text).map_err(|e| invalid(Diagnostic::file(schema_path, e)))?;

    let mut diagnostics = Vec::new();
    let mut parsed = parse_policies(source, &mut diagnostics);
    let links = file_of(source, FileKind::Links);
    if diagnostics.is_empty()
        && let Some((path, text)) = links
    {
        links::link_all(path, text, &mut parsed.policies, &mut parsed.facts, &mut diagnostics);
    }
    // After a syntax error, validation would only report its consequences.
    if diagnostics.is_empty() {
        let validation = validate(&schema, &parsed, schema_path, &mut diagnostics);
        let sources = Sources { origin: &parsed.origin, links, schema_path, schema_text };
        for finding in lint::lint(&schema, &parsed.policies, &validation, &sources) {
            match finding.severity {
                Severity::Error => diagnostics.push(finding.diagnostic),
                Severity::Warning => warnings.push(finding.diagnostic),
            }
        }
    }
    let base_entities = base_entities(source, &mut diagnostics);
    if !diagnostics.is_empty() {
        return Err(BundleError::Invalid(diagnostics));
    }

    let names = Names::from_schema(&schema);
    let rules = load_rules(source, runtime, &schema, &names)?;
    let Parsed { policies, facts, .. } = parsed;
    // The bundle's own entities must conform to its schema.
    if let Err(e) = EntitySet::build(&schema, &base_entities, Vec::new()) {
        return Err(invalid(Diagnostic::file("entities.json", e)));
    }
    let decider = Decider::new(schema, policies, facts, names, declared, rules);
    Ok(Loaded { decider, base_entities, warnings })
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

/// The schema, and Cedar's warnings about it (a name shadowing another).
fn parse_schema(path: &str, text: &str, warnings: &mut Vec<Diagnostic>) -> Result<Schema, BundleError> {
    match Schema::from_cedarschema_str(text) {
        Ok((schema, found)) => {
            warnings.extend(found.map(|w| syntax::located(path, text, &w)));
            Ok(schema)
        }
        Err(e) => Err(invalid(syntax::located(path, text, &e))),
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
/// reported where it is used again. A file with syntax errors is reported
/// by its first (see `syntax`).
fn parse_policies<'s>(source: &'s BundleSource, diagnostics: &mut Vec<Diagnostic>) -> Parsed<'s> {
    let mut parsed = Parsed { policies: PolicySet::new(), facts: HashMap::new(), origin: HashMap::new() };
    for (path, text) in source.files().filter(|(p, _)| FileKind::of(p) == Some(FileKind::Policies)) {
        match PolicySet::from_str(text) {
            Ok(set) => parsed.add_file(path, text, &set, diagnostics),
            Err(errors) => diagnostics.extend(syntax::first(path, text, errors.iter())),
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
/// the policy it names (the schema's, when none does). The result, with its
/// warnings, goes on to the lints.
fn validate(
    schema: &Schema,
    parsed: &Parsed<'_>,
    schema_path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> ValidationResult {
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
    validation
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
/// components it names, compiled on `runtime`, each configuration probed
/// with a request of types its action applies to. Components without a
/// manifest are refused rather than ignored.
fn load_rules(
    source: &BundleSource,
    runtime: Option<&Arc<RuleRuntime>>,
    schema: &Schema,
    names: &Names,
) -> Result<RuleSet, BundleError> {
    let components: BTreeMap<String, Vec<u8>> = source
        .binaries()
        .filter_map(|(path, bytes)| path.strip_prefix("rules/").map(|name| (name.to_owned(), bytes.to_vec())))
        .collect();
    match file_of(source, FileKind::RulesManifest) {
        Some((_, manifest)) => RuleSet::load(
            runtime,
            manifest,
            &components,
            |name| names.action(name).cloned(),
            |action| probe(schema, names, action),
        )
        .map_err(BundleError::Invalid),
        None if components.is_empty() => Ok(RuleSet::default()),
        None => Err(invalid(Diagnostic::file(
            MANIFEST_PATH,
            "`rules/` holds components but no manifest: add `rules/manifest.json`",
        ))),
    }
}

/// The request a rule's configuration is probed with for `action`: the
/// first (by name) of the principal and resource types it applies to.
fn probe(schema: &Schema, names: &Names, action: &EntityUid) -> Probe {
    let first = |types: Option<Vec<&EntityTypeName>>| {
        types.unwrap_or_default().into_iter().map(|t| names.qualified(t).into_owned()).min().unwrap_or_default()
    };
    Probe {
        principal_type: first(schema.principals_for_action(action).map(Iterator::collect)),
        action_type: names.qualified(action.type_name()).into_owned(),
        action_id: action.id().unescaped().to_owned(),
        resource_type: first(schema.resources_for_action(action).map(Iterator::collect)),
    }
}
