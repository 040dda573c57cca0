//! Replaying logged decisions: each `decision` record is asked again,
//! with the inputs it recorded, under the new bundle, and compared with
//! the answer the log says was given. This covers what the store-wide
//! comparison cannot: contexts only callers know (`context.surface`,
//! `context.role`), properties, a caller-set `now`.
//!
//! A record is replayed at its own `now` (the caller's, or the record's
//! time), over today's entities. It is under the bundle in force today as
//! well, so a flip whose record the active bundle would not reproduce
//! either is marked `drifted`: the world changed since, not only the
//! policies.
//!
//! A record is not replayable when an input that matters was not logged
//! as sent:
//! - request entities, logged as digests;
//! - properties over 4 KiB, logged as a size and digest;
//! - a redacted value (`[REDACTED]`, `hmac-sha256:…`) in a context key
//!   the action's policies read, or anywhere in the context when the
//!   action has custom rules (they see it whole), or in properties.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use super::answers::{Side, action_id, deciding};
use super::changes;
use crate::audit::Record;
use crate::redact::{DIGEST_PREFIX, REDACTED};
use crate::request::{EntityRef, Query};
use crate::time::Timestamp;

/// What replaying logged decisions found.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// Decision records asked again.
    pub replayed: usize,
    /// Records denied in the log and allowed by the new bundle.
    pub newly_permitted: usize,
    /// Records allowed in the log and denied by the new bundle.
    pub newly_denied: usize,
    /// Flips the bundle in force would not reproduce either: today's
    /// entities, or an older bundle, answered the record.
    pub drifted: usize,
    /// The first flips, in log order.
    pub examples: Vec<Replayed>,
    /// Decision records that could not be replayed.
    pub not_replayable: usize,
    /// The first of them, with why.
    pub not_replayable_examples: Vec<NotReplayable>,
}

/// One logged decision the new bundle answers differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub seq: u64,
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// The new answer (the log's was the opposite).
    pub allowed: bool,
    /// What decided the new answer, named as a flip names it.
    pub by: Vec<String>,
    /// The bundle in force would not give the log's answer either.
    pub drifted: bool,
}

/// A decision record that could not be replayed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReplayable {
    pub seq: u64,
    pub reason: String,
}

/// Replays the `decision` records among `records` (others are skipped).
pub(crate) fn replay(before: Side<'_>, after: Side<'_>, records: &[Record], examples: usize) -> Replay {
    let mut out = Replay {
        replayed: 0,
        newly_permitted: 0,
        newly_denied: 0,
        drifted: 0,
        examples: Vec::new(),
        not_replayable: 0,
        not_replayable_examples: Vec::new(),
    };
    let mut read_keys: HashMap<String, Option<BTreeSet<String>>> = HashMap::new();
    for record in records.iter().filter(|r| r.kind == "decision") {
        let logged = record.decision.map(|d| d == crate::audit::Outcome::Allow);
        let asked = logged.ok_or_else(|| "the record has no decision".to_owned()).and_then(|_| {
            let query = query_of(after, record)?;
            let keys = read_keys.entry(query.action.clone()).or_insert_with(|| keys_read(before, after, &query.action));
            check_redaction(&query, keys.as_ref())?;
            let now = now_of(record)?;
            let new = after.decider.decide(after.entities, &query, now).map_err(|e| e.to_string())?;
            let old = before.decider.decide(before.entities, &query, now).map_err(|e| e.to_string())?;
            Ok((query, new, old))
        });
        let (query, new, old) = match asked {
            Ok(asked) => asked,
            Err(reason) => {
                out.not_replayable += 1;
                if out.not_replayable_examples.len() < examples {
                    out.not_replayable_examples.push(NotReplayable { seq: record.seq, reason });
                }
                continue;
            }
        };
        out.replayed += 1;
        let logged = logged.unwrap_or_default();
        if new.allowed == logged {
            continue;
        }
        let drifted = old.allowed != logged;
        if new.allowed {
            out.newly_permitted += 1
        } else {
            out.newly_denied += 1
        }
        out.drifted += usize::from(drifted);
        if out.examples.len() < examples {
            out.examples.push(Replayed {
                seq: record.seq,
                principal: format!("{}::{:?}", query.principal.type_name, query.principal.id),
                action: action_id(&query.action),
                resource: format!("{}::{:?}", query.resource.type_name, query.resource.id),
                allowed: new.allowed,
                by: deciding(&new),
                drifted,
            });
        }
    }
    out
}

/// The request a decision record logged.
fn query_of(side: Side<'_>, record: &Record) -> Result<Query, String> {
    let details = &record.details;
    let text = |key: &str| details.get(key).and_then(Value::as_str).ok_or_else(|| format!("the record has no `{key}`"));
    let mut principal = entity(side, &record.actor).ok_or_else(|| format!("unknown principal `{}`", record.actor))?;
    let resource_text = text("resource")?;
    let mut resource = entity(side, resource_text).ok_or_else(|| format!("unknown resource `{resource_text}`"))?;
    let mut context = match details.get("context") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let mut action_properties = None;
    if let Some(supplied) = details.get("supplied") {
        if supplied.get("entities").is_some() || supplied.get("entity_count").is_some() {
            return Err("the request brought entities, which the log keeps as digests".to_owned());
        }
        if let Some(now) = supplied.get("now") {
            context.insert("now".to_owned(), now.clone());
        }
        for (field, properties) in supplied.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let Value::Object(properties) = properties else { continue };
            if properties.contains_key("sha256") && properties.contains_key("bytes") {
                return Err(format!("the {field} properties were over 4 KiB, which the log keeps as a digest"));
            }
            match field.as_str() {
                "subject" => principal.properties = Some(properties.clone()),
                "resource" => resource.properties = Some(properties.clone()),
                _ => action_properties = Some(properties.clone()),
            }
        }
    }
    Ok(Query {
        principal,
        action: text("action")?.to_owned(),
        action_properties,
        resource,
        context,
        ..Query::default()
    })
}

/// `Type::id` as logged, the type (qualified or not) one the schema declares.
fn entity(side: Side<'_>, text: &str) -> Option<EntityRef> {
    let names = &side.decider.names;
    text.match_indices("::").find_map(|(at, _)| {
        let (ty, id) = (text.get(..at)?, text.get(at + 2..)?);
        names.entity_type(ty).map(|_| EntityRef { type_name: ty.to_owned(), id: id.to_owned(), properties: None })
    })
}

/// The `now` a record was decided at: the caller's, or the record's time.
fn now_of(record: &Record) -> Result<Timestamp, String> {
    Timestamp::parse(&record.ts).map_err(|e| format!("the record's time `{}`: {e}", record.ts))
}

/// The context keys `action`'s policies read in either bundle; `None`
/// when it has custom rules (they read the context whole).
fn keys_read(before: Side<'_>, after: Side<'_>, action: &str) -> Option<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for side in [before, after] {
        let Some(uid) = side.decider.names.action(action) else { continue };
        if side.decider.rules.applies_to(uid) {
            return None;
        }
        let slice = side.decider.index.slice(uid).unwrap_or(&side.decider.policies);
        keys.extend(changes::context_keys(slice.policies(), slice));
    }
    Some(keys)
}

/// Refuses a query whose redacted inputs matter (see the module docs).
fn check_redaction(query: &Query, read: Option<&BTreeSet<String>>) -> Result<(), String> {
    for (key, value) in &query.context {
        let matters = read.is_none_or(|keys| keys.contains(key) || keys.contains("*"));
        if matters && redacted(value) {
            return Err(format!("`context.{key}` was redacted in the log, and the decision reads it"));
        }
    }
    let properties =
        [&query.principal.properties, &query.resource.properties, &query.action_properties].into_iter().flatten();
    for map in properties {
        if let Some((key, _)) = map.iter().find(|(_, v)| redacted(v)) {
            return Err(format!("the property `{key}` was redacted in the log"));
        }
    }
    Ok(())
}

fn redacted(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(REDACTED) || s.contains(DIGEST_PREFIX),
        Value::Array(items) => items.iter().any(redacted),
        Value::Object(map) => map.values().any(redacted),
        _ => false,
    }
}
