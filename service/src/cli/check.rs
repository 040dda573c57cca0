//! `warrant check DIR`: validate a bundle, print located diagnostics, and
//! warn when its schema lacks what credential resolution relies on.
//!
//! Each diagnostic is one line, `DIR/file:line:col: error: message` or
//! `…: warning: message`, the form editors and terminals make clickable.
//! Errors refuse the bundle (exit 1), as the service would; warnings are
//! printed and pass (exit 0), unless warnings are denied.

use std::path::Path;
use std::process::ExitCode;

use warrant_engine::{Bundle, BundleError, BundleSource, Diagnostic};

use crate::pack::Gaps;
use crate::rules::RuleHost;

/// Loads a bundle directory as the service would, rules compiled through the
/// default cache (so `check` then `test` or `serve` compiles each once).
/// No audit key here: rules' log lines are redacted with a random one.
pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
    RuleHost::new(RuleHost::default_cache_dir(), 1, None).load(BundleSource::read_dir(dir)?)
}

/// Checks the bundle in `dir`, failing (exit 1) on warnings too when
/// `deny_warnings`, for CI that wants a bundle with no dead policies at all.
pub fn run_with(dir: &Path, deny_warnings: bool) -> ExitCode {
    match load(dir) {
        Ok(bundle) => {
            let warnings = bundle.warnings();
            for w in warnings {
                eprintln!("{}", line(dir, "warning", w));
            }
            if deny_warnings && !warnings.is_empty() {
                eprintln!("error: {} warning(s) in `{}`, and warnings are denied", warnings.len(), dir.display());
                return ExitCode::FAILURE;
            }
            println!(
                "ok: {} policies, namespace `{}`, digest {}",
                bundle.policy_count(),
                bundle.namespace().unwrap_or(""),
                bundle.digest()
            );
            let rules = bundle.rules();
            if !rules.is_empty() {
                let names: Vec<&str> = rules.names().collect();
                let r = rules.load_report();
                println!(
                    "rules: {} ({}): imports checked, linked; {} compiled, {} from the cache, in {:.0} ms",
                    rules.len(),
                    names.join(", "),
                    r.compiled,
                    r.from_disk,
                    r.millis
                );
            }
            // Not a failure: the bundle still serves plain decisions.
            let gaps = Gaps::of(&bundle);
            if !gaps.is_empty() {
                eprintln!("warning: credential resolution will refuse this bundle: its schema lacks {gaps}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let diagnostics = e.diagnostics();
            for d in &diagnostics {
                eprintln!("{}", line(dir, "error", d));
            }
            eprintln!("error: {} problem(s) in `{}`", diagnostics.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `DIR/file:line:col: SEVERITY: message` (`DIR/file: SEVERITY: message`
/// when the problem has no position).
fn line(dir: &Path, severity: &str, d: &Diagnostic) -> String {
    let at = match (d.line, d.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", d.file),
        _ => d.file.clone(),
    };
    format!("{}/{at}: {severity}: {}", dir.display(), d.message)
}
