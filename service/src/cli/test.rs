//! `warrant test DIR [--filter TEXT]`: run the bundle's policy tests (or
//! those whose name or file name contains TEXT) and report each failure.

use std::path::Path;
use std::process::ExitCode;

use warrant_engine::Timestamp;
use warrant_engine::cases;

pub fn run(dir: &Path, filter: Option<&str>) -> ExitCode {
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
    // Every case is offered to the filter once: counting the offers says
    // how many it left out, without deciding them.
    let offered = std::cell::Cell::new(0usize);
    let report = cases::run_selected(&bundle, dir, Timestamp::now(), |file, name| {
        offered.set(offered.get() + 1);
        filter.is_none_or(|filter| matches(file, name, filter))
    });
    let total = offered.get();
    let filtered_out = total - report.results.len();
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
    match filter {
        Some(filter) if report.results.is_empty() => {
            eprintln!("error: no case matches `--filter {filter}` ({total} cases in `{}/tests`)", dir.display());
            return ExitCode::FAILURE;
        }
        Some(filter) => println!(
            "{} passed, {} failed; {} ran, {filtered_out} filtered out by `{filter}`",
            report.passed(),
            report.failed(),
            report.results.len()
        ),
        None => println!("{} passed, {} failed", report.passed(), report.failed()),
    }
    if report.failed() == 0 && report.passed() > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Whether a case is selected by `--filter`: its name or its file's name
/// contains the text (case-sensitive, as `cargo test`'s filter). A file
/// that cannot be read (`(file)`) is selected when its name matches.
fn matches(file: &str, name: &str, filter: &str) -> bool {
    name.contains(filter) || file.contains(filter)
}
