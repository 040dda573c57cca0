//! The entities decisions read: the bundle's `entities.json` overlaid with the
//! service's stored entities, validated against the schema once per change.
//!
//! Each entity is kept twice: as Cedar `Entities` (what `is_authorized`
//! reads) and as its JSON document, so a request's AuthZEN `properties` can be
//! merged over the stored attributes of the same id.

use std::collections::{BTreeMap, HashMap};

use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid};
use serde_json::{Map, Value};

use crate::bundle::Bundle;

/// Why a set of entities was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EntitiesError {
    #[error("entity {index}: {message}")]
    Malformed { index: usize, message: String },
    #[error("entity `{uid}` appears more than once")]
    Duplicate { uid: String },
    #[error("{0}")]
    Schema(String),
}

/// `(type, id)` of an entity, as written in its JSON.
pub(crate) type UidKey = (String, String);

/// A validated entity store. Immutable: changes build a new one.
#[derive(Debug, Clone)]
pub struct EntitySet {
    docs: HashMap<UidKey, Value>,
    pub(crate) cedar: Entities,
    stored: usize,
}

impl EntitySet {
    /// How many entities (bundle and stored) decisions see.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// How many came from the store (not the bundle's `entities.json`).
    pub fn stored_len(&self) -> usize {
        self.stored
    }

    pub(crate) fn doc(&self, key: &UidKey) -> Option<&Value> {
        self.docs.get(key)
    }
}

impl Bundle {
    /// Builds the entity set decisions see: this bundle's `entities.json`, then
    /// `stored` (later wins for the same uid), all checked against the schema.
    /// Duplicates within `stored` are refused: a store replace must be unambiguous.
    pub fn entity_set(&self, stored: Vec<Value>) -> Result<EntitySet, EntitiesError> {
        let mut docs = HashMap::new();
        for (index, doc) in self.base_entities.iter().enumerate() {
            let (key, doc) = normalize(doc.clone(), index)?;
            docs.insert(key, doc);
        }
        let stored_count = stored.len();
        let mut seen = BTreeMap::new();
        for (index, doc) in stored.into_iter().enumerate() {
            let (key, doc) = normalize(doc, index)?;
            if seen.insert(key.clone(), ()).is_some() {
                return Err(EntitiesError::Duplicate { uid: format!("{}::\"{}\"", key.0, key.1) });
            }
            docs.insert(key, doc);
        }
        let all = Value::Array(docs.values().cloned().collect());
        let cedar =
            Entities::from_json_value(all, Some(&self.schema)).map_err(|e| EntitiesError::Schema(cedar_message(&e)))?;
        Ok(EntitySet { docs, cedar, stored: stored_count })
    }

    /// Parses request-carried entity documents against the schema.
    pub(crate) fn parse_entities(&self, docs: Vec<Value>) -> Result<Vec<Entity>, EntitiesError> {
        docs.into_iter()
            .enumerate()
            .map(|(index, doc)| {
                let (_, doc) = normalize(doc, index)?;
                Entity::from_json_value(doc, Some(&self.schema))
                    .map_err(|e| EntitiesError::Malformed { index, message: cedar_message(&e) })
            })
            .collect()
    }
}

/// Cedar's message, the causes under it and its help, on one line.
pub(crate) fn cedar_message(e: &dyn miette::Diagnostic) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    if let Some(help) = e.help() {
        message.push_str(&format!(" (help: {help})"));
    }
    message
}

/// Checks the outer shape of one Cedar entity document and returns its uid
/// key with `attrs` and `parents` made explicit.
pub(crate) fn normalize(doc: Value, index: usize) -> Result<(UidKey, Value), EntitiesError> {
    let malformed = |message: &str| EntitiesError::Malformed { index, message: message.to_owned() };
    let Value::Object(mut doc) = doc else {
        return Err(malformed("expected an object with `uid`, `attrs` and `parents`"));
    };
    let uid = doc.get("uid").ok_or_else(|| malformed("missing `uid`"))?;
    let uid = uid.get("__entity").unwrap_or(uid);
    let ty = uid.get("type").and_then(Value::as_str).ok_or_else(|| malformed("`uid.type` must be a string"))?;
    let id = uid.get("id").and_then(Value::as_str).ok_or_else(|| malformed("`uid.id` must be a string"))?;
    let key = (ty.to_owned(), id.to_owned());
    match doc.get("attrs") {
        None | Some(Value::Null) => {
            doc.insert("attrs".into(), Value::Object(Map::new()));
        }
        Some(Value::Object(_)) => {}
        Some(_) => return Err(malformed("`attrs` must be an object")),
    }
    match doc.get("parents") {
        None | Some(Value::Null) => {
            doc.insert("parents".into(), Value::Array(Vec::new()));
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Err(malformed("`parents` must be an array")),
    }
    Ok((key, Value::Object(doc)))
}

/// The JSON document for `uid` with `properties` merged over its stored
/// attributes (AuthZEN: properties become attributes).
pub(crate) fn with_properties(
    set: &EntitySet,
    ty: &EntityTypeName,
    id: &str,
    properties: &Map<String, Value>,
) -> Value {
    let key = (ty.to_string(), id.to_owned());
    let mut doc = set
        .doc(&key)
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"uid": {"type": key.0, "id": key.1}, "attrs": {}, "parents": []}));
    if let Some(Value::Object(attrs)) = doc.get_mut("attrs") {
        for (name, value) in properties {
            attrs.insert(name.clone(), value.clone());
        }
    }
    doc
}

pub(crate) fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}
