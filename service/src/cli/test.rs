//! `warrant test DIR`: run the bundle's policy tests and report each failure.

use std::path::Path;
use std::process::ExitCode;

use warrant_engine::Timestamp;
use warrant_engine::cases;

pub fn run(dir: &Path) -> ExitCode {
    let bundle = match super::check::load(dir) {
        Ok(b) => b,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("error: {d}");
            }
            eprintln!("error: the bundle in `{}` does not load; no tests ran", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let report = cases::run(&bundle, dir, Timestamp::now());
    let mut current_file = "";
    for result in &report.results {
        if result.file != current_file {
            println!("{}", result.file);
            current_file = &result.file;
        }
        match &result.failure {
            None => println!("  ok    {}", result.name),
            Some(why) => println!("  FAIL  {}\n        {why}", result.name),
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    if report.failed() == 0 && report.passed() > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
