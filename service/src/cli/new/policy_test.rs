//! `warrant new test NAME [--bundle DIR] [--action ACTION]`: writes
//! `DIR/tests/NAME.json`, one starter case that `warrant test DIR` runs.
//!
//! Every name in the case comes from the loaded bundle: the action from its
//! schema (`--action`, or the first in name order that fits), the principal
//! and resource from entities the bundle already knows (`entities.json`, or
//! the `entities` of a test file, copied with what they reference) whose
//! types the schema lets the action apply to. A bundle with no entities
//! gets one of each type, attributes left for the user to fill in.
//!
//! The case expects what the bundle decides when it is written (an allowed
//! request is preferred), so it passes at once and fails, naming the
//! difference, as soon as a policy changes that answer. Its `description`
//! says so.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};
use warrant_engine::{Bundle, Decision, EntityRef, Query, Timestamp, Undeclared};

use super::error::NewCommandError;
use super::name::Name;
use super::schema_types::entity_types;
use super::written::Written;
use crate::cli::check;

/// At most this many requests are decided in search of an allowed one.
const MAX_TRIES: usize = 500;

/// An entity's type (as the entity JSON writes it, qualified) and id.
type Uid = (String, String);

/// Entities to pick the principal and resource from.
#[derive(Debug)]
struct Pool {
    /// Bundle-relative file they come from.
    from: String,
    entities: Vec<Value>,
    /// `entities.json`: every decision sees them, so the case lists none.
    in_bundle: bool,
}

/// The case to write.
#[derive(Debug)]
struct Starter {
    action: String,
    principal: Uid,
    resource: Uid,
    context: Map<String, Value>,
    entities: Vec<Value>,
    /// The pool the entities come from; `None` for made-up ones.
    from: Option<String>,
    decided: Result<Decision, String>,
}

fn uid_of(value: &Value) -> Option<Uid> {
    let uid = value.get("__entity").unwrap_or(value);
    Some((uid.get("type")?.as_str()?.to_owned(), uid.get("id")?.as_str()?.to_owned()))
}

/// The uids `value` (attributes, parents) refers to, in any form Cedar's
/// entity JSON takes (`{"__entity": {…}}` or `{"type", "id"}`).
fn references(value: &Value, out: &mut Vec<Uid>) {
    if let Some(uid) = value.as_object().and_then(|_| uid_of(value)) {
        out.push(uid);
    } else if let Some(map) = value.as_object() {
        map.values().for_each(|v| references(v, out));
    } else if let Some(items) = value.as_array() {
        items.iter().for_each(|v| references(v, out));
    }
}

/// The entities of `pool` that `start` reach through parents and
/// attributes, in the pool's order: all a decision on them can read.
fn reachable(pool: &[Value], by_uid: &HashMap<Uid, &Value>, start: [&Uid; 2]) -> Vec<Value> {
    let mut keep = BTreeSet::new();
    let mut todo: Vec<Uid> = start.into_iter().cloned().collect();
    while let Some(uid) = todo.pop() {
        if let Some(doc) = by_uid.get(&uid).filter(|_| !keep.contains(&uid)) {
            for part in ["parents", "attrs"] {
                if let Some(value) = doc.get(part) {
                    references(value, &mut todo);
                }
            }
            keep.insert(uid);
        }
    }
    pool.iter().filter(|doc| doc.get("uid").and_then(uid_of).is_some_and(|uid| keep.contains(&uid))).cloned().collect()
}

fn pools(bundle: &Bundle, dir: &Path) -> Vec<Pool> {
    let mut pools = Vec::new();
    let in_bundle = bundle.source().files().find(|(path, _)| *path == "entities.json");
    if let Some(Ok(Value::Array(entities))) = in_bundle.map(|(_, text)| serde_json::from_str(text)) {
        pools.push(Pool { from: "entities.json".into(), entities, in_bundle: true });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|x| x == "json"));
    files.sort();
    for path in files {
        let doc = std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str::<Value>(&text).ok());
        if let Some(Value::Array(entities)) = doc.and_then(|mut doc| doc.get_mut("entities").map(Value::take)) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            pools.push(Pool { from: format!("tests/{name}"), entities, in_bundle: false });
        }
    }
    pools
}

/// The action ids to try: `wanted`, or every action of the schema.
fn actions(bundle: &Bundle, wanted: Option<&str>) -> Result<Vec<String>, NewCommandError> {
    if let Some(action) = wanted {
        return if bundle.has_action(action) {
            Ok(vec![action.to_owned()])
        } else {
            Err(NewCommandError::UnknownAction(action.to_owned()))
        };
    }
    // `Analytics::Action::"view_notebook"` → `view_notebook`.
    Ok(bundle
        .actions()
        .iter()
        .filter_map(|uid| {
            let quoted = uid.split_once("::\"").map(|(_, id)| format!("\"{id}"))?;
            serde_json::from_str::<String>(&quoted).ok()
        })
        .filter(|id| bundle.has_action(id))
        .collect())
}

/// The context the case gives: a fixed `now` where the action takes one,
/// so the case decides the same on any day.
fn context(bundle: &Bundle, action: &str, now: Timestamp) -> Map<String, Value> {
    let mut context = Map::new();
    if bundle.context_has_key(action, "now") {
        context.insert("now".into(), Value::String(now.to_string()));
    }
    context
}

fn decide(
    bundle: &Bundle,
    action: &str,
    (principal, resource): (&Uid, &Uid),
    entities: &[Value],
    context: &Map<String, Value>,
    now: Timestamp,
) -> Result<Decision, String> {
    let set = bundle.entity_set(entities.to_vec()).map_err(|e| format!("entities: {e}"))?;
    let entity = |(type_name, id): &Uid| EntityRef { type_name: type_name.clone(), id: id.clone(), properties: None };
    let query = Query {
        principal: entity(principal),
        action: action.to_owned(),
        resource: entity(resource),
        context: context.clone(),
        entities: Vec::new(),
        action_properties: None,
        // As `warrant test` decides.
        undeclared: Undeclared::Refuse,
    };
    bundle.decide(&set, &query, now).map_err(|e| format!("request error: {e}"))
}

/// The first request over known entities the bundle allows, else the first
/// one it decides, else the first one found at all.
fn from_pools(bundle: &Bundle, pools: &[Pool], actions: &[String], now: Timestamp) -> Option<Starter> {
    let mut first = None;
    let mut tries = 0;
    for action in actions {
        let context = context(bundle, action, now);
        for pool in pools {
            let by_uid: HashMap<Uid, &Value> =
                pool.entities.iter().filter_map(|doc| Some((doc.get("uid").and_then(uid_of)?, doc))).collect();
            let uids: Vec<Uid> = pool.entities.iter().filter_map(|doc| doc.get("uid").and_then(uid_of)).collect();
            for principal in &uids {
                for resource in uids.iter().filter(|r| *r != principal) {
                    if !bundle.action_applies_to(action, &principal.0, &resource.0) {
                        continue;
                    }
                    let entities = if pool.in_bundle {
                        Vec::new()
                    } else {
                        reachable(&pool.entities, &by_uid, [principal, resource])
                    };
                    let decided = decide(bundle, action, (principal, resource), &entities, &context, now);
                    let allowed = decided.as_ref().is_ok_and(|d| d.allowed);
                    let starter = Starter {
                        action: action.clone(),
                        principal: principal.clone(),
                        resource: resource.clone(),
                        context: context.clone(),
                        entities,
                        from: Some(pool.from.clone()),
                        decided,
                    };
                    if allowed {
                        return Some(starter);
                    }
                    // A request the bundle decides beats one it cannot.
                    if first.as_ref().is_none_or(|f: &Starter| f.decided.is_err() && starter.decided.is_ok()) {
                        first = Some(starter);
                    }
                    tries += 1;
                    if tries >= MAX_TRIES {
                        return first;
                    }
                }
            }
        }
    }
    first
}

/// A request between made-up entities of the first types the first action
/// applies to, for a bundle that knows no entities yet.
fn made_up(bundle: &Bundle, actions: &[String], now: Timestamp) -> Option<Starter> {
    let schema = bundle.source().files().filter(|(path, _)| path.ends_with(".cedarschema")).map(|(_, text)| text);
    let types: Vec<String> = schema.flat_map(entity_types).filter(|t| bundle.has_entity_type(t)).collect();
    let action = actions.iter().find_map(|action| {
        let pair = types.iter().find_map(|p| {
            types.iter().find(|r| bundle.action_applies_to(action, p, r)).map(|r| (p.clone(), r.clone()))
        })?;
        Some((action, pair))
    });
    let (action, (principal_type, resource_type)) = action?;
    let principal = (principal_type, "alice".to_owned());
    let resource = (resource_type, "r1".to_owned());
    let stub = |(type_name, id): &Uid| json!({"uid": {"type": type_name, "id": id}, "attrs": {}, "parents": []});
    let entities = vec![stub(&principal), stub(&resource)];
    let context = context(bundle, action, now);
    let decided = decide(bundle, action, (&principal, &resource), &entities, &context, now);
    Some(Starter { action: action.clone(), principal, resource, context, entities, from: None, decided })
}

/// `Analytics::User` → `User` where the bundle reads it so, as cases write it.
fn short_type<'a>(bundle: &Bundle, qualified: &'a str) -> &'a str {
    let short = bundle.namespace().and_then(|ns| qualified.strip_prefix(ns)).and_then(|rest| rest.strip_prefix("::"));
    short.filter(|s| bundle.entity_type(s).as_deref() == Some(qualified)).unwrap_or(qualified)
}

fn document(bundle: &Bundle, name: &Name, starter: &Starter) -> Value {
    let entities_from = match &starter.from {
        Some(from) => format!("entities from `{from}`"),
        None => "made-up entities (give them the attributes the schema requires)".to_owned(),
    };
    let (expect, reasons, why) = match &starter.decided {
        Ok(d) => {
            let expect = if d.allowed { "allow" } else { "deny" };
            (expect, d.reasons.clone(), "its case expects what the bundle decided when the file was written".to_owned())
        }
        Err(e) => (
            "deny",
            Vec::new(),
            format!(
                "the bundle could not decide its case when the file was written ({e}), so it fails until that is fixed"
            ),
        ),
    };
    let entity = |(type_name, id): &Uid| json!({"type": short_type(bundle, type_name), "id": id});
    json!({
        "description": format!(
            "Written by `warrant new test` with {entities_from}: {why}. `warrant test` fails a case, \
             naming the difference, when the bundle answers otherwise than `expect` (and `reasons`, when \
             given). Edit the request and `expect` to test what you mean (format: \
             docs/schemas/policy-tests.schema.json)."
        ),
        "entities": starter.entities,
        "cases": [{
            "name": format!("{name}: {} {} {}", starter.principal.1, starter.action, starter.resource.1),
            "principal": entity(&starter.principal),
            "action": starter.action,
            "resource": entity(&starter.resource),
            "context": starter.context,
            "expect": expect,
            "reasons": reasons,
        }],
    })
}

pub fn run(name: &str, dir: &Path, action: Option<&str>) -> Result<ExitCode, NewCommandError> {
    let name = Name::parse(name)?;
    let path = dir.join("tests").join(format!("{name}.json"));
    if path.exists() {
        return Err(NewCommandError::Exists(path));
    }
    let bundle = check::load(dir).map_err(|e| NewCommandError::Bundle {
        dir: dir.to_owned(),
        problems: e.diagnostics().iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"),
    })?;
    let actions = actions(&bundle, action)?;
    // Noon UTC today, fixed in the case so that re-runs decide alike; noon,
    // as the pack's cases use, so that a policy about the night does not
    // decide every starter.
    let seconds = Timestamp::now().unix_seconds();
    let now =
        Timestamp::from_unix_seconds(seconds - seconds.rem_euclid(86_400) + 43_200).unwrap_or_else(Timestamp::now);
    let starter = from_pools(&bundle, &pools(&bundle, dir), &actions, now)
        .or_else(|| made_up(&bundle, &actions, now))
        .ok_or(NewCommandError::NothingToTest)?;
    let text = format!("{:#}\n", document(&bundle, &name, &starter));

    let mut written = Written::default();
    let tests = dir.join("tests");
    let outcome = (|| {
        if !tests.is_dir() {
            written.create_dir(&tests)?;
        }
        written.create(&path, &text)
    })();
    if let Err(e) = outcome {
        written.undo();
        return Err(e);
    }

    let (principal, resource) = (&starter.principal, &starter.resource);
    println!(
        "created {}: `{}::\"{}\"` {} `{}::\"{}\"`",
        path.display(),
        principal.0,
        principal.1,
        starter.action,
        resource.0,
        resource.1
    );
    match &starter.decided {
        Ok(d) if d.allowed => println!("the bundle allows it today, so the case expects `allow` and passes"),
        Ok(d) => println!(
            "the bundle denies it today ({}), so the case expects `deny` with those reasons and passes",
            d.reasons.join(", ")
        ),
        Err(why) => {
            eprintln!("warning: the case cannot be decided yet, and fails until that is fixed: {why}");
        }
    }
    println!("edit it to test what you mean, then:\n  warrant test {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
