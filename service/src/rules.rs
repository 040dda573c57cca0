//! Custom rules in the service: the one rules runtime (started only when a
//! bundle has rules), its on-disk cache of compiled components, and where
//! rule-running decisions execute.
//!
//! A rule may run for up to its `timeout_ms`; such work must not hold an
//! async worker, or health checks and Cedar-only decisions would queue behind
//! it. Decisions that may run a rule take one of a bounded number of slots
//! (one per core by default) and run with `block_in_place`, which hands the
//! worker's other tasks to another thread first. Waiting for a slot has a
//! deadline (`--rule-slot-wait-ms`, 1,000): past it the request is refused
//! with 503 `rules_busy` (and `Retry-After`), never decided without its
//! rules.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use warrant_engine::{Bundle, BundleError, BundleSource, Diagnostic, Redactor, RuleRuntime};

#[derive(Debug)]
pub struct RuleHost {
    cache_dir: Option<PathBuf>,
    log_redactor: Option<Redactor>,
    runtime: OnceLock<Arc<RuleRuntime>>,
    slots: Semaphore,
    /// How long a request may wait for a slot.
    slot_wait: Duration,
    /// Authenticates compiled artifacts in the disk cache (`None`: a random
    /// key per process, so the cache serves this process only).
    cache_key: Option<Vec<u8>>,
}

/// Every rule slot stayed taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every custom-rule slot stayed busy for {0:?}; retry shortly")]
pub struct RulesBusy(pub Duration);

impl RuleHost {
    /// `cache_dir`: where compiled components are kept across restarts
    /// (`None`: compile at every start). `workers`: how many rule-running
    /// decisions may execute at once. `log_redactor`: what rules' log lines
    /// are redacted with (the audit log's, so digests correlate; `None`: one
    /// with a random key).
    pub fn new(cache_dir: Option<PathBuf>, workers: usize, log_redactor: Option<Redactor>) -> Self {
        Self {
            cache_dir,
            log_redactor,
            runtime: OnceLock::new(),
            slots: Semaphore::new(workers.max(1)),
            slot_wait: Duration::from_secs(1),
            cache_key: None,
        }
    }

    /// The key that authenticates the disk cache's compiled artifacts (the
    /// service derives it from the audit key, so restarts reuse them).
    #[must_use]
    pub fn with_cache_key(mut self, key: Vec<u8>) -> Self {
        self.cache_key = Some(key);
        self
    }

    /// The longest a request waits for a rule slot before [`RulesBusy`].
    #[must_use]
    pub fn with_slot_wait(mut self, wait: Duration) -> Self {
        self.slot_wait = wait;
        self
    }

    /// The default cache: `$XDG_CACHE_HOME/warrant/rules` or `~/.cache/warrant/rules`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("warrant").join("rules"))
    }

    /// Loads a bundle, compiling its rules (if any) on this host's runtime.
    pub fn load(&self, source: BundleSource) -> Result<Bundle, BundleError> {
        if !source.has_rules() {
            return Bundle::load(source);
        }
        let runtime = self.runtime()?;
        Bundle::load_with(source, Some(&runtime))
    }

    fn runtime(&self) -> Result<Arc<RuleRuntime>, BundleError> {
        if let Some(r) = self.runtime.get() {
            return Ok(Arc::clone(r));
        }
        let started = match &self.cache_key {
            Some(key) => RuleRuntime::with_cache_key(self.cache_dir.clone(), self.log_redactor.clone(), key),
            None => RuleRuntime::new(self.cache_dir.clone(), self.log_redactor.clone()),
        };
        let started = started.or_else(|e| {
            // An unusable cache directory costs compile time, not service.
            tracing::warn!(error = %e, "rule cache unavailable: compiling rules in memory only");
            RuleRuntime::new(None, self.log_redactor.clone())
        });
        let runtime = started
            .map_err(|e| BundleError::Invalid(vec![Diagnostic::file(warrant_engine::rules::MANIFEST_PATH, e)]))?;
        Ok(Arc::clone(self.runtime.get_or_init(|| runtime)))
    }

    /// Runs `work` (which may run rules) off the async workers, at most
    /// `workers` at a time. Without rules, callers just call the engine.
    pub async fn run<R>(&self, work: impl FnOnce() -> R) -> Result<R, RulesBusy> {
        let _slot = self.slot().await?;
        Ok(offload(work))
    }

    /// One of the bounded rule slots, for callers that interleave engine
    /// calls (each through [`offload`]) with awaits; [`RulesBusy`] once the
    /// wait passes its deadline.
    pub async fn slot(&self) -> Result<SemaphorePermit<'_>, RulesBusy> {
        match tokio::time::timeout(self.slot_wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Closed never happens (the semaphore lives as long as the host).
            Ok(Err(_)) | Err(_) => Err(RulesBusy(self.slot_wait)),
        }
    }
}

/// `block_in_place` on a multi-threaded runtime; inline elsewhere (the
/// current-thread runtimes of CLI commands and unit tests).
pub fn offload<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}
