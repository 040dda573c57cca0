//! What a decision request brought along besides the principal, action and
//! resource ids: AuthZEN `properties` (merged over the stored entity) and
//! `action.properties` (the context's `action` record), native
//! request `entities`, and a caller-set `context.now`. Each can change the
//! facts a policy sees (a stored editor made admin, an expired token made
//! usable), so the decision's record says what was supplied and which stored
//! entities it overrode (issue 19, row 8), and `--request-overrides deny`
//! refuses such requests outright.

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use warrant_engine::{Bundle, EntitySet, Query};

use super::error::ApiError;
use crate::config::RequestOverrides;

/// Properties kept in a record up to this size (canonical JSON); larger
/// ones by size and SHA-256 only.
const MAX_RECORDED_PROPERTIES: usize = 4 * 1024;
/// Request entities named in a record; the count is always complete.
const MAX_RECORDED_ENTITIES: usize = 20;

/// The caller-supplied facts of one request.
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    /// `(field, properties)` for the subject, action and resource that carried any.
    properties: Vec<(&'static str, Map<String, Value>)>,
    /// `(Type::id, sha256 of the document)` of each request entity.
    entities: Vec<(String, String)>,
    /// The `now` the caller set, if any.
    now: Option<Value>,
    /// Stored entities (`Type::id`) the request overrides.
    overrides: Vec<String>,
}

impl Supplied {
    /// What `query` supplies, against the stored `entities` of `bundle`.
    pub fn of(bundle: &Bundle, entities: &EntitySet, query: &Query) -> Self {
        let stored = |ty: &str, id: &str| bundle.entity_type(ty).is_some_and(|q| entities.contains(&q, id));
        let qualified = |ty: &str| bundle.entity_type(ty).unwrap_or_else(|| ty.to_owned());
        let mut supplied = Self::default();
        for (field, entity) in [("subject", &query.principal), ("resource", &query.resource)] {
            if let Some(properties) = entity.properties.as_ref().filter(|p| !p.is_empty()) {
                supplied.properties.push((field, properties.clone()));
                if stored(&entity.type_name, &entity.id) {
                    supplied.overrides.push(format!("{}::{}", qualified(&entity.type_name), entity.id));
                }
            }
        }
        if let Some(properties) = query.action_properties.as_ref().filter(|p| !p.is_empty()) {
            supplied.properties.push(("action", properties.clone()));
        }
        for doc in &query.entities {
            let uid = doc.get("uid").map(|u| u.get("__entity").unwrap_or(u));
            let ty = uid.and_then(|u| u.get("type")).and_then(Value::as_str).unwrap_or("");
            let id = uid.and_then(|u| u.get("id")).and_then(Value::as_str).unwrap_or("");
            let name = format!("{}::{id}", qualified(ty));
            if stored(ty, id) {
                supplied.overrides.push(name.clone());
            }
            supplied.entities.push((name, sha256_of(doc)));
        }
        supplied.now = query.context.get("now").cloned();
        supplied
    }

    pub fn is_empty(&self) -> bool {
        self.properties.is_empty() && self.entities.is_empty() && self.now.is_none()
    }

    /// Refuses the request under [`RequestOverrides::Deny`] when it
    /// overrides a stored entity or sets `now`.
    pub fn check(&self, mode: RequestOverrides) -> Result<(), ApiError> {
        if mode != RequestOverrides::Deny {
            return Ok(());
        }
        if let Some(uid) = self.overrides.first() {
            let message = format!("the request overrides the stored entity `{uid}`, which this service refuses");
            return Err(ApiError::bad_request("override_refused", message));
        }
        if self.now.is_some() {
            let message = "`context.now` is set by the service; this service refuses a caller-set `now`";
            return Err(ApiError::bad_request("override_refused", message).with_field("context.now"));
        }
        Ok(())
    }

    /// The `supplied` object of a decision record (redacted by the audit
    /// log like all details), or `None` when nothing was supplied.
    pub fn details(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut out = Map::new();
        if !self.properties.is_empty() {
            let properties: Map<String, Value> =
                self.properties.iter().map(|(field, p)| ((*field).to_owned(), bounded(p))).collect();
            out.insert("properties".into(), Value::Object(properties));
        }
        if !self.entities.is_empty() {
            let named: Vec<Value> = self
                .entities
                .iter()
                .take(MAX_RECORDED_ENTITIES)
                .map(|(uid, digest)| json!({"uid": uid, "sha256": digest}))
                .collect();
            out.insert("entities".into(), Value::Array(named));
            out.insert("entity_count".into(), json!(self.entities.len()));
        }
        if let Some(now) = &self.now {
            out.insert("now".into(), now.clone());
        }
        if !self.overrides.is_empty() {
            out.insert("overrides".into(), json!(self.overrides));
        }
        Some(Value::Object(out))
    }
}

/// The properties as sent when small, else their size and digest.
fn bounded(properties: &Map<String, Value>) -> Value {
    let value = Value::Object(properties.clone());
    let text = serde_json_canonicalizer::to_string(&value).unwrap_or_else(|_| value.to_string());
    if text.len() <= MAX_RECORDED_PROPERTIES {
        value
    } else {
        json!({"bytes": text.len(), "sha256": hex::encode(Sha256::digest(text.as_bytes()))})
    }
}

/// `sha256:<hex>` of a document's canonical JSON.
fn sha256_of(doc: &Value) -> String {
    let text = serde_json_canonicalizer::to_string(doc).unwrap_or_else(|_| doc.to_string());
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}
