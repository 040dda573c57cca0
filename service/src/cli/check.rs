//! `warrant check DIR`: validate a bundle, print located diagnostics, and
//! warn when its schema lacks what credential resolution relies on.

use std::path::Path;
use std::process::ExitCode;

use warrant_engine::{Bundle, BundleError, BundleSource};

use crate::pack::Gaps;
use crate::rules::RuleHost;

/// Loads a bundle directory as the service would, rules compiled through the
/// default cache (so `check` then `test` or `serve` compiles each once).
/// No audit key here: rules' log lines are redacted with a random one.
pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
    RuleHost::new(RuleHost::default_cache_dir(), 1, None).load(BundleSource::read_dir(dir)?)
}

pub fn run(dir: &Path) -> ExitCode {
    match load(dir) {
        Ok(bundle) => {
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
                // `DIR/file:line:col: message`, clickable in editors and terminals.
                eprintln!("{}/{d}", dir.display());
            }
            eprintln!("error: {} problem(s) in `{}`", diagnostics.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}
