//! Running one rule component: what it may import, how it is instantiated,
//! and one evaluation under its fuel, time and memory limits.

use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::manifest::Limits;
use super::runtime::RuleRuntime;
use super::verdict::RuleOutcome;
use crate::redact::Redactor;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wasm-guests/wit",
        world: "rule",
    });
}

use bindings::warrant::rule::types::Effect;
pub(crate) use bindings::warrant::rule::types::{EntityRef, Request, Verdict};
use bindings::{Rule, RulePre};

/// The WIT package version this host links.
pub const WIT_PACKAGE: &str = "warrant:rule@0.1.0";

/// Imports a rule may have. `warrant:rule/host` is linked for real; the
/// `types` interface carries no functions.
const LINKED: [&str; 2] = ["warrant:rule/host@0.1.0", "warrant:rule/types@0.1.0"];
/// Interfaces every Rust `wasm32-wasip2` build imports whether it uses them
/// or not (stdout, environment, streams): linked as functions that trap, so
/// they grant nothing. Clocks, random, filesystem and sockets are refused.
const INERT_PREFIXES: [&str; 2] = ["wasi:io/", "wasi:cli/"];

/// Longest verdict reason kept: longer ones are cut (at a character
/// boundary) and marked, so a rule cannot grow every response and audit
/// record by megabytes.
pub const MAX_REASON_BYTES: usize = 256;
/// What marks a cut reason.
const CUT: &str = "…";

/// Longest log line kept, and lines kept per evaluation.
const LOG_LINE_BYTES: usize = 1_024;
const LOG_LINES_PER_CALL: u32 = 16;
/// Longest part of a log line scanned for secrets; the rest is dropped.
const LOG_SCAN_BYTES: usize = 16 * 1_024;

/// Why a component cannot be a rule: what it imports or fails to export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    #[error(
        "imports {imports}: a rule may import only `warrant:rule/host` ({}); it gets no clock, randomness, \
         files or network (read time from the request context)",
        WIT_PACKAGE
    )]
    RefusedImports { imports: String },
    /// wasmtime could not link the component.
    #[error("{0}")]
    Link(String),
    #[error(
        "does not export `evaluate: func(config-json: string, req: request) -> verdict` of {}: {message}",
        WIT_PACKAGE
    )]
    MissingExport { message: String },
}

/// Why a rule gave no verdict. Every one denies when the rule enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    OutOfFuel,
    Timeout,
    MemoryLimit,
    Trap(String),
    /// The instance could not be created (pool exhausted, start trapped).
    Instantiate(String),
}

impl Failure {
    /// Short code reported in verdicts: `out_of_fuel`, `timeout`, `memory_limit`, `trap`, `instantiate`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OutOfFuel => "out_of_fuel",
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory_limit",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::OutOfFuel => "the rule ran out of fuel".to_owned(),
            Self::Timeout => "the rule ran past its time limit".to_owned(),
            Self::MemoryLimit => "the rule asked for more memory than its limit".to_owned(),
            Self::Trap(m) => format!("the rule trapped: {m}"),
            Self::Instantiate(m) => format!("the rule could not be instantiated: {m}"),
        }
    }
}

/// Per-store state: the memory cap and whether the guest hit it, and the
/// guest's log lines this call with what redacts them.
pub(crate) struct HostState {
    rule: Arc<str>,
    limits: StoreLimits,
    memory_refused: bool,
    logged: u32,
    redactor: Arc<Redactor>,
    /// The log lines as logged (redacted, cut), kept when a probe asks.
    captured: Option<Vec<String>>,
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

impl bindings::warrant::rule::host::Host for HostState {
    fn log(&mut self, msg: String) {
        self.logged += 1;
        if self.logged > LOG_LINES_PER_CALL {
            return;
        }
        // Redacted before it is cut to length, so the cut cannot separate a
        // secret from what identifies it (a `Bearer `, a JWT's second dot);
        // only a line longer than any real one is cut first, at a space.
        let scanned = if msg.len() > LOG_SCAN_BYTES {
            let head = prefix(&msg, LOG_SCAN_BYTES);
            head.rfind(char::is_whitespace).and_then(|i| head.get(..i)).unwrap_or_default()
        } else {
            &msg
        };
        let line = self.redactor.redact_text(scanned);
        let line = prefix(&line, LOG_LINE_BYTES);
        tracing::info!(rule = %self.rule, "{line}");
        if let Some(captured) = &mut self.captured {
            captured.push(line.to_owned());
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

impl bindings::warrant::rule::types::Host for HostState {}

/// A rule compiled and linked: instances are made from it in microseconds.
pub(crate) struct Prepared {
    runtime: Arc<RuleRuntime>,
    pre: RulePre<HostState>,
    name: Arc<str>,
    limits: Limits,
}

/// A live instance with its store, reused across calls when warm.
pub(crate) struct Instance {
    store: Store<HostState>,
    rule: Rule,
    pub calls: u32,
}

impl Prepared {
    /// Checks the component's imports and exports and links it. Errors name
    /// the offending import or the missing export.
    pub fn new(
        runtime: &Arc<RuleRuntime>,
        component: &Component,
        name: &str,
        limits: Limits,
    ) -> Result<Self, LinkError> {
        let engine = runtime.engine();
        let mut refused = Vec::new();
        for (import, _) in component.component_type().imports(engine) {
            let inert = INERT_PREFIXES.iter().any(|p| import.starts_with(p));
            if !LINKED.contains(&import) && !inert {
                refused.push(format!("`{import}`"));
            }
        }
        if !refused.is_empty() {
            return Err(LinkError::RefusedImports { imports: refused.join(", ") });
        }
        let mut linker: Linker<HostState> = Linker::new(engine);
        let link = |e: wasmtime::Error| LinkError::Link(format!("{e:#}"));
        Rule::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(link)?;
        linker.define_unknown_imports_as_traps(component).map_err(link)?;
        let pre = linker.instantiate_pre(component).map_err(link)?;
        let pre = RulePre::new(pre).map_err(|e| LinkError::MissingExport { message: format!("{e:#}") })?;
        Ok(Self { runtime: Arc::clone(runtime), pre, name: Arc::from(name), limits })
    }

    /// A new instance with its own store and memory cap.
    pub fn instantiate(&self) -> Result<Instance, Failure> {
        let memory = usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX);
        let state = HostState {
            rule: Arc::clone(&self.name),
            limits: StoreLimitsBuilder::new().memory_size(memory).instances(64).tables(64).memories(8).build(),
            memory_refused: false,
            logged: 0,
            redactor: Arc::clone(self.runtime.log_redactor()),
            captured: None,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| s);
        self.arm(&mut store).map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        let rule = self.pre.instantiate(&mut store).map_err(|e| classify(&store, &e, true))?;
        Ok(Instance { store, rule, calls: 0 })
    }

    /// Fresh fuel and deadline for one call (instantiation runs start
    /// functions, so it is armed too).
    fn arm(&self, store: &mut Store<HostState>) -> wasmtime::Result<()> {
        store.set_fuel(self.limits.fuel)?;
        store.set_epoch_deadline(self.limits.timeout_ms);
        store.data_mut().memory_refused = false;
        store.data_mut().logged = 0;
        Ok(())
    }

    /// One evaluation. After an `Err` the instance must be dropped: a trap
    /// can leave a guest's state half-updated.
    pub fn call(
        &self,
        instance: &mut Instance,
        config: &str,
        request: &Request,
    ) -> Result<(RuleOutcome, Option<String>), Failure> {
        instance.calls += 1;
        self.arm(&mut instance.store).map_err(|e| Failure::Trap(format!("{e:#}")))?;
        match instance.rule.call_evaluate(&mut instance.store, config, request) {
            Ok(Verdict { effect, reason }) => {
                let effect = match effect {
                    Effect::Allow => RuleOutcome::Allow,
                    Effect::Deny => RuleOutcome::Deny,
                    Effect::Abstain => RuleOutcome::Abstain,
                };
                Ok((effect, reason.map(bounded)))
            }
            Err(e) => Err(classify(&instance.store, &e, false)),
        }
    }
}

/// What a probe call heard: the verdict (or why there was none) and the
/// log lines the guest wrote, as the log got them.
pub(crate) struct Heard {
    pub answer: Result<(RuleOutcome, Option<String>), Failure>,
    pub logged: Vec<String>,
}

impl Prepared {
    /// One evaluation on an instance of its own, under the rule's limits,
    /// keeping what the guest logs. The instance is then dropped: a probe
    /// leaves no state behind for a real request.
    pub fn probe(&self, config: &str, request: &Request) -> Heard {
        let mut instance = match self.instantiate() {
            Ok(instance) => instance,
            Err(failure) => return Heard { answer: Err(failure), logged: Vec::new() },
        };
        instance.store.data_mut().captured = Some(Vec::new());
        let answer = self.call(&mut instance, config, request);
        let logged = instance.store.data_mut().captured.take().unwrap_or_default();
        Heard { answer, logged }
    }
}

/// `reason`, cut to [`MAX_REASON_BYTES`] (the mark included).
fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES - CUT.len();
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str(CUT);
    }
    reason
}

fn classify(store: &Store<HostState>, error: &wasmtime::Error, instantiating: bool) -> Failure {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel,
        Some(Trap::Interrupt) => Failure::Timeout,
        _ if store.data().memory_refused => Failure::MemoryLimit,
        Some(trap) => Failure::Trap(trap.to_string()),
        None if instantiating => Failure::Instantiate(format!("{error:#}")),
        None => Failure::Trap(format!("{error:#}")),
    }
}

pub(crate) fn entity(type_name: &str, id: &str) -> EntityRef {
    EntityRef { type_name: type_name.to_owned(), id: id.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary_and_marked() {
        assert_eq!(bounded("short".into()), "short");
        let exact = "a".repeat(MAX_REASON_BYTES);
        assert_eq!(bounded(exact.clone()), exact);
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_REASON_BYTES && cut.ends_with(CUT), "{} bytes", cut.len());
        assert!(cut.trim_end_matches(CUT).chars().all(|c| c == 'é'));
    }
}
