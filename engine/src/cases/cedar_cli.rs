//! Test files in the Cedar CLI's `cedar run-tests` format, so suites
//! written for Cedar run unchanged under `warrant test`: a top-level JSON
//! array of cases (cedar-policy-cli 4.14.1, `src/command/run_test.rs`):
//!
//! ```json
//! [ { "name": "…",
//!     "request": { "principal": "Ns::User::\"alice\"", "action": "Ns::Action::\"view\"",
//!                  "resource": "Ns::Doc::\"d1\"", "context": {} },
//!     "entities": [ /* Cedar entities JSON */ ] or "entities.json",
//!     "decision": "allow" | "deny",
//!     "reason": ["policy-id", …],
//!     "num_errors": 0 } ]
//! ```
//!
//! As the Cedar CLI reads them: `name` is optional; each case is read on
//! its own, so a malformed one fails alone; `reason` must be a subset of
//! the policies that decided; `num_errors` must equal the number of
//! policies that errored; `entities` given as a string is a file relative
//! to the test file's directory and must stay inside it. A reason
//! `policyN` (Cedar's id for the Nth policy of its one policies file)
//! names warrant's `<file>#N` when the bundle has one policy file.
//!
//! Where warrant decides differently from Cedar, the case sees warrant's
//! answer: a forbid that errors denies (warrant fails closed), and the
//! bundle's custom rules run after Cedar allows.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::outcome::{CaseResult, Expect, Report};
use crate::bundle::{Bundle, FileKind};
use crate::request::{EntityRef, Query, Undeclared};
use crate::time::Timestamp;

#[derive(Debug, Deserialize)]
struct CliCase {
    request: CliRequest,
    entities: Value,
    decision: Expect,
    reason: Vec<String>,
    num_errors: usize,
}

#[derive(Debug, Deserialize)]
struct CliRequest {
    principal: String,
    action: String,
    resource: String,
    context: Map<String, Value>,
}

/// Runs the cases of one `cedar run-tests` file (`cases`, already parsed
/// as an array) found at `path`, reported under `file`.
pub(super) fn run_file(
    bundle: &Bundle,
    path: &Path,
    file: &str,
    cases: Vec<Value>,
    now: Timestamp,
    selected: &impl Fn(&str, &str) -> bool,
    report: &mut Report,
) {
    for (index, case) in cases.into_iter().enumerate() {
        let name =
            case.get("name").and_then(Value::as_str).map_or_else(|| format!("(unnamed {})", index + 1), str::to_owned);
        if !selected(file, &name) {
            continue;
        }
        let failure = match serde_json::from_value::<CliCase>(case) {
            Ok(case) => check(bundle, path, case, now).err(),
            Err(e) => Some(format!("malformed case: {e}")),
        };
        report.results.push(CaseResult { file: file.to_owned(), name, failure });
    }
}

/// `Ok` when the case passes, else why not (Cedar's wording, joined by `; `).
fn check(bundle: &Bundle, path: &Path, case: CliCase, now: Timestamp) -> Result<(), String> {
    let docs = match case.entities {
        Value::Array(docs) => docs,
        Value::String(relative) => entities_file(path, &relative)?,
        _ => return Err("`entities` must be an array of entities or the path of an entities file".to_owned()),
    };
    let entities = bundle.entity_set(docs).map_err(|e| format!("entities: {e}"))?;
    let query = Query {
        principal: entity("principal", &case.request.principal)?,
        action: case.request.action.clone(),
        resource: entity("resource", &case.request.resource)?,
        context: case.request.context,
        entities: Vec::new(),
        action_properties: None,
        undeclared: Undeclared::Refuse,
    };
    let decision = bundle.decide(&entities, &query, now).map_err(|e| format!("request error: {e}"))?;
    let mut problems = Vec::new();
    let got = if decision.allowed { Expect::Allow } else { Expect::Deny };
    if got != case.decision {
        problems.push(format!("expected {:?}, got {got:?} (reasons {:?})", case.decision, decision.reasons));
    }
    let single_file = single_policy_file(bundle);
    let missing: Vec<String> = case
        .reason
        .iter()
        .filter(|id| {
            let ours = cedar_default_id(id).zip(single_file.as_deref()).map(|(n, file)| format!("{file}#{n}"));
            !decision.policies.iter().any(|p| p == *id || Some(p) == ours.as_ref())
        })
        .map(|id| format!("`{id}`"))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing reason(s): {}", missing.join(", ")));
    }
    if decision.errors.len() != case.num_errors {
        let mut said =
            format!("expected {} error(s), but got {} runtime error(s)", case.num_errors, decision.errors.len());
        if !decision.errors.is_empty() {
            said.push_str(&format!(": {}", decision.errors.join(", ")));
        }
        problems.push(said);
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// A request entity in Cedar's syntax (`Ns::User::"alice"`).
fn entity(field: &str, text: &str) -> Result<EntityRef, String> {
    let uid: cedar_policy::EntityUid =
        text.parse().map_err(|e| format!("`request.{field}`: `{text}` is not an entity uid: {e}"))?;
    Ok(EntityRef { type_name: uid.type_name().to_string(), id: uid.id().unescaped().to_owned(), properties: None })
}

/// The entities file a case names, relative to its test file's directory
/// and inside it.
fn entities_file(test_file: &Path, relative: &str) -> Result<Vec<Value>, String> {
    let dir = test_file.parent().unwrap_or(Path::new(".")).canonicalize().map_err(|e| e.to_string())?;
    let path = dir.join(relative).canonicalize().map_err(|e| format!("entities file `{relative}`: {e}"))?;
    if !path.starts_with(&dir) {
        return Err(format!("entities file `{relative}` is outside the test file's directory"));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("entities file `{relative}`: {e}"))?;
    match serde_json::from_str(&text) {
        Ok(Value::Array(docs)) => Ok(docs),
        Ok(_) => Err(format!("entities file `{relative}`: expected a JSON array of entities")),
        Err(e) => Err(format!("entities file `{relative}`: {e}")),
    }
}

/// `N` of Cedar's default policy id `policyN`.
fn cedar_default_id(id: &str) -> Option<usize> {
    id.strip_prefix("policy")?.parse().ok()
}

/// The bundle's one policy file, if it has exactly one.
fn single_policy_file(bundle: &Bundle) -> Option<String> {
    let mut files = bundle.source().files().filter(|(p, _)| FileKind::of(p) == Some(FileKind::Policies));
    let (first, _) = files.next()?;
    files.next().is_none().then(|| first.to_owned())
}
