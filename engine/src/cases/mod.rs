//! A bundle's policy tests: `tests/*.json` files of cases, each a request
//! with the decision (and reasons) it must get.
//!
//! ```json
//! { "description": "R3: take_over_session",
//!   "entities": [ /* Cedar entities JSON */ ],
//!   "cases": [ { "name": "…", "principal": {"type": "User", "id": "bob"},
//!                "action": "take_over_session",
//!                "resource": {"type": "Project", "id": "p1"},
//!                "context": {"now": "2026-06-01T00:00:00Z"},
//!                "expect": "allow" | "deny", "reasons": ["…"] } ] }
//! ```
//! `reasons`, when given, must equal the decision's reasons as a set.
//! `rules`, when given, maps rule names to the verdict each must give
//! (`allow`, `deny`, `abstain`, `error`, or `none` for "not consulted"):
//! `"rules": {"token-max-age": "deny"}`.
//!
//! A file whose top level is an array is a suite in the Cedar CLI's
//! `cedar run-tests` format instead ([`cedar_cli`]).

mod cedar_cli;
mod outcome;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use outcome::Expect;
pub use outcome::{CaseResult, Report};

use crate::bundle::Bundle;
use crate::entities::EntitySet;
use crate::request::{EntityRef, Query, Undeclared};
use crate::time::Timestamp;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    entities: Vec<Value>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: CaseEntity,
    action: String,
    resource: CaseEntity,
    #[serde(default)]
    context: Map<String, Value>,
    expect: Expect,
    reasons: Option<Vec<String>>,
    #[serde(default)]
    rules: std::collections::BTreeMap<String, RuleExpect>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RuleExpect {
    Allow,
    Deny,
    Abstain,
    Error,
    /// The rule was not consulted (Cedar denied, or not its action).
    None,
}

impl RuleExpect {
    fn of(verdict: Option<&crate::rules::RuleVerdict>) -> Self {
        use crate::rules::RuleOutcome;
        match verdict.map(|v| v.verdict) {
            None => Self::None,
            Some(RuleOutcome::Allow) => Self::Allow,
            Some(RuleOutcome::Deny) => Self::Deny,
            Some(RuleOutcome::Abstain) => Self::Abstain,
            Some(RuleOutcome::Error) => Self::Error,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEntity {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
}

/// Runs every `tests/*.json` file of the bundle directory `dir` against
/// `bundle`; cases without `context.now` are decided at `now`.
pub fn run(bundle: &Bundle, dir: &Path, now: Timestamp) -> Report {
    run_selected(bundle, dir, now, |_, _| true)
}

/// [`run`], deciding only the cases `selected(file name, case name)` picks
/// (`warrant test --filter`). A file that cannot be read or parsed is
/// reported when `selected(file name, "(file)")` holds.
pub fn run_selected(bundle: &Bundle, dir: &Path, now: Timestamp, selected: impl Fn(&str, &str) -> bool) -> Report {
    let mut report = Report::default();
    let tests_dir = dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&tests_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            report.results.push(CaseResult {
                file: tests_dir.display().to_string(),
                name: "(read tests directory)".into(),
                failure: Some(e.to_string()),
            });
            return report;
        }
    };
    files.sort();
    for path in files {
        run_file(bundle, &path, now, &selected, &mut report);
    }
    report
}

fn run_file(bundle: &Bundle, path: &Path, now: Timestamp, selected: &impl Fn(&str, &str) -> bool, report: &mut Report) {
    let file = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let fail_file = |report: &mut Report, message: String| {
        if selected(&file, "(file)") {
            report.results.push(CaseResult { file: file.clone(), name: "(file)".into(), failure: Some(message) });
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail_file(report, e.to_string()),
    };
    let cases: CaseFile = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(cases)) => return cedar_cli::run_file(bundle, path, &file, cases, now, selected, report),
            _ => return fail_file(report, format!("malformed test file: {e}")),
        },
    };
    let _ = cases.description;
    let entities = match bundle.entity_set(cases.entities) {
        Ok(set) => set,
        Err(e) => return fail_file(report, format!("entities: {e}")),
    };
    for case in cases.cases.into_iter().filter(|c| selected(&file, &c.name)) {
        let missing = missing_entity(bundle, &entities, [&case.principal, &case.resource]);
        let query = Query {
            principal: EntityRef { type_name: case.principal.type_name, id: case.principal.id, properties: None },
            action: case.action,
            resource: EntityRef { type_name: case.resource.type_name, id: case.resource.id, properties: None },
            context: case.context,
            entities: Vec::new(),
            action_properties: None,
            // A test case naming a key the schema lacks is a typo to report,
            // not a name to ignore.
            undeclared: Undeclared::Refuse,
        };
        let failure = match bundle.decide(&entities, &query, now) {
            Err(e) => Some(format!("request error: {e}")),
            Ok(decision) => {
                let got = if decision.allowed { Expect::Allow } else { Expect::Deny };
                let mut want_reasons = case.reasons.clone();
                if let Some(r) = want_reasons.as_mut() {
                    r.sort();
                    r.dedup();
                }
                if got != case.expect {
                    Some(format!(
                        "expected {:?}, got {:?} (reasons {:?}, policies {:?}, errors {:?})",
                        case.expect, got, decision.reasons, decision.policies, decision.errors
                    ))
                } else if want_reasons.as_ref().is_some_and(|want| *want != decision.reasons) {
                    Some(format!(
                        "expected reasons {:?}, got {:?} (policies {:?})",
                        want_reasons.unwrap_or_default(),
                        decision.reasons,
                        decision.policies
                    ))
                } else {
                    case.rules.iter().find_map(|(name, want)| {
                        if !bundle.rules().names().any(|n| n == name) {
                            return Some(format!("the bundle has no rule `{name}`"));
                        }
                        let verdict = decision.rules.iter().find(|v| &v.rule == name);
                        let got = RuleExpect::of(verdict);
                        (got != *want).then(|| {
                            let said = verdict.map(|v| format!(" ({:?}, {:?})", v.reason, v.error)).unwrap_or_default();
                            format!("expected rule `{name}` to say {want:?}, got {got:?}{said}")
                        })
                    })
                }
            }
        };
        // A case may name an entity on purpose that exists nowhere (an
        // unknown user is denied); when such a case fails, the missing
        // entity is the likeliest cause, so it is said first.
        let failure = match (failure, missing) {
            (Some(why), Some(missing)) => Some(format!("{missing}; {why}")),
            (failure, _) => failure,
        };
        report.results.push(CaseResult { file: file.clone(), name: case.name, failure });
    }
}

/// The principal or resource a case names that is in neither its file's
/// entities nor the bundle's. Cedar decides anyway (an unknown entity has
/// no attributes and no parents), so a typo would otherwise surface as a
/// `no_permit` or a `policy_error` far from its cause.
fn missing_entity<'c>(
    bundle: &Bundle,
    entities: &EntitySet,
    named: impl IntoIterator<Item = &'c CaseEntity>,
) -> Option<String> {
    named.into_iter().find_map(|e| {
        // An undeclared type is the request's own error, reported by `decide`.
        let ty = bundle.entity_type(&e.type_name)?;
        (!entities.contains(&ty, &e.id)).then(|| {
            format!(
                "entity not found: `{ty}::{}` is in neither the file's `entities` nor the bundle's `entities.json`",
                Value::String(e.id.clone())
            )
        })
    })
}
