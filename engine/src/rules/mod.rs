//! Custom rules: WebAssembly components consulted after Cedar (docs/rules.md).
//!
//! - `manifest` reads `rules/manifest.json` (file, actions, config, limits,
//!   `enforce` | `observe`, `warm` | `fresh`).
//! - `runtime` is the process-wide wasmtime engine and compiled-component cache.
//! - `sandbox` checks a component's imports, links it and runs one
//!   evaluation under its limits.
//! - `verdict` is what one rule said, and the reason it adds to a deny.
//! - `probe` calls each rule once at load, so that a configuration the rule
//!   rejects refuses the bundle.
//! - This module loads a bundle's rules and evaluates those that apply to a
//!   request, reusing warm instances.
//!
//! Combining (in `decide`): Cedar first; only if Cedar allows are the rules
//! for the action consulted, all of them, in manifest order. An enforcing
//! rule's `deny`, or its failure, turns the allow into a deny; observing
//! rules are reported, never applied.

mod manifest;
mod probe;
mod runtime;
mod sandbox;
mod verdict;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cedar_policy::EntityUid;

pub use manifest::{Isolation, Limits, MANIFEST_PATH, MAX_MEMORY_BYTES, MAX_TIMEOUT_MS, Mode};
pub(crate) use probe::Probe;
pub use probe::{INVALID_CONFIG, PROBE_ENTITY_ID};
pub use runtime::{CompileError, CompiledFrom, RuleRuntime, RuntimeError};
pub use sandbox::{Failure, WIT_PACKAGE};
pub use verdict::{RULE_DENIED, RULE_ERROR, RuleOutcome, RuleVerdict};

use crate::diagnostic::Diagnostic;
use manifest::Manifest;
use sandbox::{Instance, Prepared, Request};

/// A warm instance is replaced after this many calls, bounding how long any
/// state a guest keeps can live.
pub const RECYCLE_AFTER_CALLS: u32 = 10_000;
/// Idle warm instances kept per rule; more concurrent callers instantiate
/// and then drop theirs.
const MAX_IDLE_PER_RULE: usize = 8;

/// How a bundle's rules were loaded (for `warrant check` and benchmarks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub compiled: usize,
    pub from_memory: usize,
    pub from_disk: usize,
    pub millis: f64,
}

struct LoadedRule {
    name: String,
    mode: Mode,
    isolation: Isolation,
    config_json: String,
    prepared: Prepared,
    idle: Mutex<Vec<Instance>>,
}

/// A bundle's rules, ready to run. Empty for a bundle without `rules/`.
#[derive(Default)]
pub struct RuleSet {
    rules: Vec<LoadedRule>,
    /// Action → indexes into `rules`, in manifest order.
    by_action: HashMap<EntityUid, Vec<usize>>,
    report: LoadReport,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.iter().map(|r| &r.name).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The request as rules see it.
#[derive(Debug)]
pub struct RuleRequest<'a> {
    pub principal: (&'a str, &'a str),
    pub action: (&'a str, &'a str),
    pub resource: (&'a str, &'a str),
    pub context_json: String,
}

impl RuleSet {
    /// Loads the rules of a bundle: `manifest_text` is the text of
    /// `rules/manifest.json`, `components` the `rules/*.wasm` files by name,
    /// `action` resolves an action name of the schema, and `probe` gives
    /// the request each rule's configuration is probed with for an action
    /// (module `probe`). A rule that rejects its configuration is a problem
    /// like a component that does not link.
    pub(crate) fn load(
        runtime: Option<&Arc<RuleRuntime>>,
        manifest_text: &str,
        components: &BTreeMap<String, Vec<u8>>,
        action: impl Fn(&str) -> Option<EntityUid>,
        probe: impl Fn(&EntityUid) -> Probe,
    ) -> Result<Self, Vec<Diagnostic>> {
        let started = Instant::now();
        let manifest = Manifest::parse(manifest_text)?;
        let mut problems = Vec::new();
        for rule in &manifest.rules {
            for name in &rule.actions {
                if action(name).is_none() {
                    problems.push(Diagnostic::file(
                        MANIFEST_PATH,
                        format!("rule `{}`: action `{name}` is not in the schema", rule.name),
                    ));
                }
            }
            if !components.contains_key(&rule.file) {
                problems.push(Diagnostic::file(
                    MANIFEST_PATH,
                    format!("rule `{}`: `rules/{}` does not exist", rule.name, rule.file),
                ));
            }
        }
        for file in components.keys() {
            if !manifest.rules.iter().any(|r| &r.file == file) {
                problems.push(Diagnostic::file(
                    &format!("rules/{file}"),
                    "not named by any rule in the manifest: remove it or add an entry",
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let shared;
        let runtime = match runtime {
            Some(r) => r,
            None => {
                shared = RuleRuntime::shared().map_err(|e| vec![Diagnostic::file(MANIFEST_PATH, e)])?;
                &shared
            }
        };

        let mut set = Self::default();
        for entry in manifest.rules {
            let path = format!("rules/{}", entry.file);
            let Some(bytes) = components.get(&entry.file) else { continue };
            let component = match runtime.compile(bytes) {
                Ok((component, from)) => {
                    match from {
                        CompiledFrom::Compiled => set.report.compiled += 1,
                        CompiledFrom::Memory => set.report.from_memory += 1,
                        CompiledFrom::Disk => set.report.from_disk += 1,
                    }
                    component
                }
                Err(e) => {
                    problems.push(Diagnostic::file(&path, format!("not a valid WebAssembly component: {e}")));
                    continue;
                }
            };
            let prepared = match Prepared::new(runtime, &component, &entry.name, entry.limits) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(Diagnostic::file(&path, format!("rule `{}` {e}", entry.name)));
                    continue;
                }
            };
            let config_json = entry.config.to_string();
            let first_action = entry.actions.iter().find_map(|name| action(name));
            if let Some(uid) = first_action
                && let Some(problem) = probe::check(&prepared, &entry.name, &config_json, &probe(&uid), manifest_text)
            {
                problems.push(problem);
                continue;
            }
            let index = set.rules.len();
            for uid in entry.actions.iter().filter_map(|name| action(name)) {
                let list = set.by_action.entry(uid).or_default();
                if !list.contains(&index) {
                    list.push(index);
                }
            }
            set.rules.push(LoadedRule {
                name: entry.name,
                mode: entry.mode,
                isolation: entry.isolation,
                config_json,
                prepared,
                idle: Mutex::new(Vec::new()),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        set.report.millis = started.elapsed().as_secs_f64() * 1_000.0;
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Names of the rules, in manifest order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Whether any rule is consulted for this action.
    pub fn applies_to(&self, action: &EntityUid) -> bool {
        self.by_action.contains_key(action)
    }

    /// Asks every rule for `action`, in manifest order.
    pub fn evaluate(&self, action: &EntityUid, request: RuleRequest<'_>) -> Vec<RuleVerdict> {
        let Some(indexes) = self.by_action.get(action) else {
            return Vec::new();
        };
        let wire = Request {
            principal: sandbox::entity(request.principal.0, request.principal.1),
            action: sandbox::entity(request.action.0, request.action.1),
            resource: sandbox::entity(request.resource.0, request.resource.1),
            context_json: request.context_json,
        };
        indexes.iter().filter_map(|i| self.rules.get(*i)).map(|rule| rule.evaluate(&wire)).collect()
    }
}

impl LoadedRule {
    fn evaluate(&self, request: &Request) -> RuleVerdict {
        let outcome = self.run(request);
        let (verdict, reason, error) = match outcome {
            Ok((verdict, reason)) => (verdict, reason, None),
            Err(failure) => (RuleOutcome::Error, Some(failure.code().to_owned()), Some(failure.message())),
        };
        RuleVerdict { rule: self.name.clone(), mode: self.mode, verdict, reason, error }
    }

    fn run(&self, request: &Request) -> Result<(RuleOutcome, Option<String>), Failure> {
        let warm = self.isolation == Isolation::Warm;
        let reused = if warm { self.idle.lock().ok().and_then(|mut idle| idle.pop()) } else { None };
        let mut instance = match reused {
            Some(instance) => instance,
            None => self.prepared.instantiate()?,
        };
        // On failure the instance is dropped here: a trap may leave the
        // guest's state half-updated.
        let answer = self.prepared.call(&mut instance, &self.config_json, request)?;
        if warm
            && instance.calls < RECYCLE_AFTER_CALLS
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_PER_RULE
        {
            idle.push(instance);
        }
        Ok(answer)
    }
}
