//! `rules/manifest.json`: which component runs for which actions, with what
//! configuration, limits and mode.
//!
//! ```json
//! { "version": 1,
//!   "rules": [ { "name": "token-max-age", "file": "token-max-age.wasm",
//!                "actions": ["use_token"], "config": { "max_age_days": 90 },
//!                "limits": { "fuel": 10000000, "memory_bytes": 4194304, "timeout_ms": 10 },
//!                "mode": "enforce", "isolation": "warm" } ] }
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::diagnostic::Diagnostic;

/// Bundle-relative path of the manifest.
pub const MANIFEST_PATH: &str = "rules/manifest.json";

/// The largest memory a rule may ask for: the pooling allocator reserves
/// slots of this size.
pub const MAX_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// The longest wall-clock budget a rule may ask for; a decision waits for it.
pub const MAX_TIMEOUT_MS: u64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub version: u32,
    pub rules: Vec<RuleEntry>,
}

/// One manifest entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleEntry {
    pub name: String,
    /// A `.wasm` component, relative to `rules/`.
    pub file: String,
    /// Action names (`run_query`) the rule is consulted for.
    pub actions: Vec<String>,
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default)]
    pub limits: Limits,
    pub mode: Mode,
    #[serde(default)]
    pub isolation: Isolation,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What one evaluation may use before it is stopped (and the request denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deterministic CPU budget (wasmtime fuel, roughly one unit per instruction).
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    /// Linear memory cap, bytes.
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
    /// Wall-clock backstop, milliseconds (epoch deadline, 1 ms ticks).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_fuel() -> u64 {
    10_000_000
}
fn default_memory() -> u64 {
    16 * 1024 * 1024
}
fn default_timeout() -> u64 {
    20
}

impl Default for Limits {
    fn default() -> Self {
        Self { fuel: default_fuel(), memory_bytes: default_memory(), timeout_ms: default_timeout() }
    }
}

/// `enforce`: a deny (or a failure) turns an allow into a deny. `observe`:
/// the verdict is reported and recorded, never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Observe,
}

/// `warm`: instances are reused (recycled after a number of calls and after
/// any failure). `fresh`: a new instance for every evaluation, so no state
/// survives from one user's request to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    #[default]
    Warm,
    Fresh,
}

impl Manifest {
    /// Parses the manifest; structural problems only (files and actions are
    /// checked by the caller, which knows the bundle).
    pub fn parse(text: &str) -> Result<Self, Vec<Diagnostic>> {
        let manifest: Self = serde_json::from_str(text).map_err(|e| {
            let mut d = Diagnostic::file(MANIFEST_PATH, format!("invalid manifest: {e}"));
            if e.line() > 0 {
                d.line = Some(e.line());
                d.column = Some(e.column());
            }
            vec![d]
        })?;
        let mut problems = Vec::new();
        let mut at = |name: &str, message: String| {
            let mut d = Diagnostic::file(MANIFEST_PATH, message);
            if let Some(offset) = text.find(&format!("\"{name}\"")) {
                let (line, column) = crate::diagnostic::line_column(text, offset);
                d.line = Some(line);
                d.column = Some(column);
            }
            problems.push(d);
        };
        if manifest.version != 1 {
            at("version", format!("manifest version {} is not supported: write `\"version\": 1`", manifest.version));
        }
        let mut seen = std::collections::HashSet::new();
        for rule in &manifest.rules {
            let n = &rule.name;
            let name_ok = !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !name_ok {
                at(n, format!("rule name `{n}` must be 1–64 characters of a-z, 0-9, `-` and `_`"));
            }
            if !seen.insert(n.as_str()) {
                at(n, format!("rule name `{n}` is used twice"));
            }
            let file_ok = rule.file.ends_with(".wasm")
                && !rule.file.contains('/')
                && !rule.file.contains('\\')
                && !rule.file.starts_with('.');
            if !file_ok {
                at(&rule.file, format!("rule `{n}`: file `{}` must be a `.wasm` file directly in `rules/`", rule.file));
            }
            if rule.actions.is_empty() {
                at(n, format!("rule `{n}` names no actions: list the actions it is consulted for"));
            }
            if !rule.config.is_object() {
                at(n, format!("rule `{n}`: `config` must be a JSON object"));
            }
            let l = rule.limits;
            if l.fuel == 0 {
                at(n, format!("rule `{n}`: `limits.fuel` must be positive"));
            }
            if l.memory_bytes < 65_536 || l.memory_bytes > MAX_MEMORY_BYTES {
                at(
                    n,
                    format!(
                        "rule `{n}`: `limits.memory_bytes` must be between 65536 (one page) and {MAX_MEMORY_BYTES}"
                    ),
                );
            }
            if l.timeout_ms == 0 || l.timeout_ms > MAX_TIMEOUT_MS {
                at(n, format!("rule `{n}`: `limits.timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}"));
            }
        }
        if problems.is_empty() { Ok(manifest) } else { Err(problems) }
    }
}
