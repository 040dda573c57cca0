//! `warrant eval`: decide one request offline against a bundle directory,
//! through the engine's own deciding code (custom rules included, compiled
//! through the same cache as `check`), and say why: the decision, its
//! reasons, the determining policies, rule verdicts, errors, what the
//! schema does not declare, and what the entities lack.
//!
//! Exit 0 on allow, 1 on deny, 2 when it cannot decide (a bundle that does
//! not load, a malformed or inapplicable request, unreadable entities).

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warrant_engine::rules::{Mode, RuleOutcome};
use warrant_engine::{Bundle, Decision, Diagnostic, EntityRef, EntitySet, Query, RequestError, RuleVerdict, Timestamp};

use crate::config::EvalArgs;

/// Why no decision could be made: printed as `error: …` (or, with `--json`,
/// as the API's error body), exit 2.
#[derive(Debug)]
pub(super) struct Failure {
    /// As the API's codes: `invalid_bundle`, `invalid_request`,
    /// `unknown_action`, …
    code: &'static str,
    message: String,
    field: Option<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Failure {
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, diagnostics: Vec::new() }
    }
}

/// A request as `POST /v1/authorize` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeRequest {
    principal: Uid,
    action: String,
    resource: Uid,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    entities: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Uid {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
}

/// The native answer (`POST /v1/authorize`), less the `decision_id` no
/// offline decision has, plus what the entities lack.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    decision: &'static str,
    reasons: &'a [String],
    policies: &'a [String],
    errors: &'a [String],
    rules: &'a [RuleVerdict],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ignored: &'a [String],
    policy_digest: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing: Vec<String>,
}

/// The API's error body.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Diagnostic]>::is_empty")]
    diagnostics: &'a [Diagnostic],
}

pub fn run(args: &EvalArgs) -> ExitCode {
    match evaluate(args) {
        Ok(decided) => {
            if args.json {
                match serde_json::to_string_pretty(&decided.answer()) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: cannot write the answer: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                decided.print();
            }
            if decided.decision.allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(failure) => {
            if args.json {
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: failure.code,
                        message: &failure.message,
                        field: failure.field.as_deref(),
                        diagnostics: &failure.diagnostics,
                    },
                };
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            } else {
                if !failure.diagnostics.is_empty() {
                    // The bundle does not load: say why as `check` does.
                    let _ = super::check::run_with(&args.policies, false);
                }
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(2)
        }
    }
}

/// A decision with what explains it.
#[derive(Debug)]
struct Decided {
    request: String,
    decision: Decision,
    digest: String,
    missing: Vec<String>,
    /// Where the entities came from, for people.
    entities: String,
    /// The `now` filled in, when the action takes one and the request left it out.
    filled_now: Option<Timestamp>,
    dir: String,
}

impl Decided {
    fn answer(&self) -> Answer<'_> {
        let d = &self.decision;
        Answer {
            decision: if d.allowed { "allow" } else { "deny" },
            reasons: &d.reasons,
            policies: &d.policies,
            errors: &d.errors,
            rules: &d.rules,
            ignored: &d.ignored,
            policy_digest: &self.digest,
            missing: self.missing.clone(),
        }
    }

    fn print(&self) {
        let d = &self.decision;
        println!("{}  {}", if d.allowed { "ALLOW" } else { "DENY" }, self.request);
        if !d.allowed {
            let reasons: Vec<String> = d.reasons.iter().map(|r| explain_reason(r)).collect();
            println!("  reasons:   {}", reasons.join(", "));
        }
        if d.policies.is_empty() {
            println!("  policies:  none");
        } else {
            let which = if d.allowed { "the permits that allowed" } else { "the forbids that denied" };
            println!("  policies:  {} ({which})", d.policies.join(", "));
        }
        for v in &d.rules {
            println!("  rule:      {}", rule_line(v));
        }
        for e in &d.errors {
            println!("  error:     {e}");
        }
        for name in &d.ignored {
            println!("  ignored:   `{name}` (the schema does not declare it; the decision did not see it)");
        }
        for m in &self.missing {
            println!("  missing:   {m}: the decision saw it with no attributes and no parents");
        }
        println!("  entities:  {}", self.entities);
        if let Some(now) = self.filled_now {
            println!("  now:       {now} (the current time; set `now` in the context to decide at another)");
        }
        println!("  bundle:    `{}`, digest {}", self.dir, self.digest);
    }
}

/// A reason, with what the fixed ones mean.
fn explain_reason(reason: &str) -> String {
    if reason == warrant_engine::decide::NO_PERMIT {
        format!("{reason} (no permit policy matched)")
    } else if reason.starts_with(warrant_engine::decide::POLICY_ERROR) {
        format!("{reason} (a forbid failed to evaluate: warrant denies, failing closed)")
    } else {
        reason.to_owned()
    }
}

fn rule_line(v: &RuleVerdict) -> String {
    let mode = match v.mode {
        Mode::Enforce => "enforce",
        Mode::Observe => "observe",
    };
    let verdict = match v.verdict {
        RuleOutcome::Allow => "allow",
        RuleOutcome::Deny => "deny",
        RuleOutcome::Abstain => "abstain",
        RuleOutcome::Error => "error",
    };
    let mut line = format!("{} ({mode}): {verdict}", v.rule);
    if let Some(reason) = &v.reason {
        line.push_str(&format!(", {reason}"));
    }
    if let Some(error) = &v.error {
        line.push_str(&format!(": {error}"));
    }
    line
}

fn evaluate(args: &EvalArgs) -> Result<Decided, Failure> {
    let request = read_request(args)?;
    let stored = match &args.entities {
        Some(path) => read_entities(path)?,
        None => Vec::new(),
    };
    let bundle = super::check::load(&args.policies).map_err(|e| {
        let mut failure = Failure::new(
            "invalid_bundle",
            format!("the bundle in `{}` does not load; nothing was decided", args.policies.display()),
        );
        failure.diagnostics = e.diagnostics();
        failure
    })?;
    let entities = bundle.entity_set(stored).map_err(|e| {
        let from = args.entities.as_ref().map_or_else(
            || "the bundle's `entities.json`".to_owned(),
            |p| format!("`{}` (over the bundle's `entities.json`)", p.display()),
        );
        Failure::new("invalid_entities", format!("the entities of {from} do not load: {e}"))
    })?;
    let query = Query {
        principal: EntityRef { type_name: request.principal.type_name, id: request.principal.id, properties: None },
        action: request.action,
        action_properties: None,
        resource: EntityRef { type_name: request.resource.type_name, id: request.resource.id, properties: None },
        context: request.context,
        entities: request.entities,
        // As the service does by default: dropped, and named.
        undeclared: warrant_engine::Undeclared::Ignore,
    };
    let now = Timestamp::now();
    let decision = bundle.decide(&entities, &query, now).map_err(|e| request_failure(&bundle, &e))?;
    let filled_now =
        (bundle.context_has_datetime(&query.action, "now") && !query.context.contains_key("now")).then_some(now);
    Ok(Decided {
        request: format!(
            "{} {} {}",
            shown_uid(&bundle, &query.principal),
            query.action,
            shown_uid(&bundle, &query.resource)
        ),
        missing: missing(&bundle, &entities, &query),
        entities: describe_entities(
            args,
            bundle.source().files().any(|(path, _)| path == "entities.json"),
            entities.len(),
            query.entities.len(),
        ),
        digest: bundle.digest().to_owned(),
        decision,
        filled_now,
        dir: args.policies.display().to_string(),
    })
}

/// A request error, with what the bundle does declare when a name is unknown.
fn request_failure(bundle: &Bundle, e: &RequestError) -> Failure {
    let mut message = format!("cannot decide: {e}");
    match e {
        RequestError::UnknownAction { .. } => {
            // `Ns::Action::"id"` → `id`, as requests name them.
            let actions: Vec<String> = bundle
                .actions()
                .iter()
                .map(|uid| {
                    let id = uid.rsplit_once("::\"").map_or(uid.as_str(), |(_, id)| id.trim_end_matches('"'));
                    format!("`{id}`")
                })
                .collect();
            message.push_str(&format!("; the schema declares {}", actions.join(", ")));
        }
        RequestError::UnknownEntityType { .. } => {
            if let Some(ns) = bundle.namespace() {
                message.push_str(&format!("; unqualified names resolve in the namespace `{ns}`"));
            }
        }
        _ => {}
    }
    Failure { code: e.code(), message, field: e.field().map(str::to_owned), diagnostics: Vec::new() }
}

/// The principal and resource the decision saw with neither attributes
/// nor parents, because no entity has their uid: the usual answer to "why
/// is this a deny?".
fn missing(bundle: &Bundle, entities: &EntitySet, query: &Query) -> Vec<String> {
    let mut out = Vec::new();
    for (role, entity) in [("principal", &query.principal), ("resource", &query.resource)] {
        let Some(ty) = bundle.entity_type(&entity.type_name) else { continue };
        let in_request = query.entities.iter().any(|doc| {
            let uid = doc.get("uid").map(|u| u.get("__entity").unwrap_or(u));
            uid.is_some_and(|u| {
                u.get("id").and_then(Value::as_str) == Some(entity.id.as_str())
                    && u.get("type").and_then(Value::as_str).and_then(|t| bundle.entity_type(t)).as_deref()
                        == Some(ty.as_str())
            })
        });
        if !entities.contains(&ty, &entity.id) && !in_request {
            out.push(format!("{role} `{ty}::{}` is not in the entities", Value::String(entity.id.clone())));
        }
    }
    out
}

/// Where the decision's entities came from, and how to give more.
fn describe_entities(args: &EvalArgs, bundle_has_own: bool, loaded: usize, in_request: usize) -> String {
    let own = if bundle_has_own { "the bundle's `entities.json`" } else { "none in the bundle" };
    let mut text = match &args.entities {
        Some(path) if bundle_has_own => format!("{loaded}, from {own} and `{}`", path.display()),
        Some(path) => format!("{loaded}, from `{}`", path.display()),
        None => format!(
            "{loaded}, {} (give the service's stored entities with `--entities FILE`, e.g. saved from \
             `GET /v1/entities`)",
            if bundle_has_own { format!("from {own}") } else { own.to_owned() }
        ),
    };
    if in_request > 0 {
        text.push_str(&format!(", {in_request} in the request"));
    }
    text
}

/// `Ns::Type::"id"` when the type is declared, else as given.
fn shown_uid(bundle: &Bundle, entity: &EntityRef) -> String {
    let ty = bundle.entity_type(&entity.type_name).unwrap_or_else(|| entity.type_name.clone());
    format!("{ty}::{}", Value::String(entity.id.clone()))
}

fn read_request(args: &EvalArgs) -> Result<NativeRequest, Failure> {
    if let Some(path) = &args.request {
        let (text, name) = if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::new("unreadable_request", format!("cannot read standard input: {e}")))?;
            (text, "standard input".to_owned())
        } else {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::new("unreadable_request", format!("cannot read `{}`: {e}", path.display())))?;
            (text, format!("`{}`", path.display()))
        };
        return serde_json::from_str(&text)
            .map_err(|e| Failure::new("invalid_body", format!("{name} is not a `POST /v1/authorize` body: {e}")));
    }
    let flag = |name: &'static str, value: &Option<String>| {
        value.clone().ok_or_else(|| Failure::new("invalid_request", format!("`--{name}` is required")))
    };
    let principal = parse_uid("principal", &flag("principal", &args.principal)?)?;
    let resource = parse_uid("resource", &flag("resource", &args.resource)?)?;
    let action = flag("action", &args.action)?;
    let context = match &args.context {
        None => Map::new(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            let mut failure = Failure::new("invalid_context", format!("`--context` is not a JSON object: {e}"));
            failure.field = Some("context".to_owned());
            failure
        })?,
    };
    Ok(NativeRequest { principal, action, resource, context, entities: Vec::new() })
}

/// Cedar entities JSON: an array (`GET /v1/entities`), or an object with an
/// `entities` array (a policy test file).
pub(super) fn read_entities(path: &Path) -> Result<Vec<Value>, Failure> {
    let failure = |why: String| Failure::new("invalid_entities", format!("`--entities {}`: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| failure(e.to_string()))?;
    match serde_json::from_str::<Value>(&text).map_err(|e| failure(e.to_string()))? {
        Value::Array(docs) => Ok(docs),
        Value::Object(mut file) => match file.remove("entities") {
            Some(Value::Array(docs)) => Ok(docs),
            _ => Err(failure("expected an array of entities, or an object with an `entities` array".to_owned())),
        },
        _ => Err(failure("expected an array of entities, or an object with an `entities` array".to_owned())),
    }
}

/// `Type::"id"` (Cedar's spelling, escapes `\"` and `\\`), or `Type::id`
/// for ids without `::`.
fn parse_uid(flag: &'static str, text: &str) -> Result<Uid, Failure> {
    let bad = || {
        let mut failure = Failure::new(
            "invalid_request",
            format!("`--{flag} {text}`: expected `Type::\"id\"` or `Type::id` (`User::\"alice\"`)"),
        );
        failure.field = Some(flag.to_owned());
        failure
    };
    let (type_name, id) = match text.strip_suffix('"').and_then(|t| t.split_once("::\"")) {
        Some((type_name, quoted)) => (type_name, unescape(quoted).ok_or_else(bad)?),
        None => {
            let (type_name, id) = text.rsplit_once("::").ok_or_else(bad)?;
            (type_name, id.to_owned())
        }
    };
    if type_name.is_empty() || id.is_empty() || type_name.contains('"') {
        return Err(bad());
    }
    Ok(Uid { type_name: type_name.to_owned(), id })
}

/// The text of a Cedar string literal's body: `\"` and `\\` unescaped; any
/// other escape, or a bare `"`, is refused.
fn unescape(quoted: &str) -> Option<String> {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => out.push(escaped),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::parse_uid;

    #[test]
    fn uids_read_in_cedar_spelling_or_bare() {
        for (text, ty, id) in [
            (r#"User::"alice""#, "User", "alice"),
            ("User::alice", "User", "alice"),
            (r#"Analytics::User::"alice""#, "Analytics::User", "alice"),
            ("Analytics::User::alice", "Analytics::User", "alice"),
            (r#"User::"a::b \"c\" \\""#, "User", r#"a::b "c" \"#),
        ] {
            let uid = parse_uid("principal", text).unwrap();
            assert_eq!((uid.type_name.as_str(), uid.id.as_str()), (ty, id), "{text}");
        }
        for bad in ["alice", "User::", "::alice", r#"User::"a"b""#, r#"User::"a\n""#, r#"Us"er::x"#] {
            assert!(parse_uid("principal", bad).is_err(), "{bad}");
        }
    }
}
