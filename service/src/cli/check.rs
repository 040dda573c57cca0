//! `warrant check DIR`: validate a bundle, print located diagnostics.

use std::path::Path;
use std::process::ExitCode;

use warrant_engine::Bundle;

pub fn run(dir: &Path) -> ExitCode {
    match Bundle::load_dir(dir) {
        Ok(bundle) => {
            println!(
                "ok: {} policies, namespace `{}`, digest {}",
                bundle.policy_count(),
                bundle.namespace().unwrap_or(""),
                bundle.digest()
            );
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
