//! The entities decisions read: the bundle's `entities.json` overlaid with the
//! service's stored entities, validated against the schema once per change.
//!
//! Each entity is kept twice: as Cedar `Entities` (what `is_authorized`
//! reads) and as its JSON document, so a request's AuthZEN `properties` can be
//! merged over the stored attributes of the same id.
//!
//! A set also carries the indexes searches build over it (`candidates`):
//! a set never changes, so they never go stale.

pub(crate) mod candidates;
pub mod diff;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityTypeName, EntityUid, Schema};
use serde_json::{Map, Value};

pub(crate) use candidates::SearchCache;

use crate::cedar::{cedar_message, uid};

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

/// A slice larger than this is not worth building: copy the whole store.
const MAX_SLICE: usize = 4096;

/// A validated entity store. Immutable: changes build a new one.
#[derive(Debug, Clone)]
pub struct EntitySet {
    docs: HashMap<UidKey, Value>,
    pub(crate) cedar: Entities,
    stored: usize,
    /// Parsed uid of every entity, so slicing never re-parses type names.
    uids: HashMap<UidKey, EntityUid>,
    /// Where a request can go from each entity: what its attributes refer
    /// to and its parents (as stored; their parents are theirs to list).
    reach: HashMap<UidKey, Vec<UidKey>>,
    /// Ids of each entity type, sorted: the candidates of a search.
    by_type: HashMap<String, Vec<String>>,
    /// Search indexes, built on first use for this version of the store.
    pub(crate) search: SearchCache,
    /// Unique to this build: what a decider's kept slices are kept under.
    id: u64,
}

/// The next [`EntitySet::id`].
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl EntitySet {
    /// Builds the entity set decisions see: the bundle's `entities.json`
    /// (`base`), then `stored` (later wins for the same uid), all checked
    /// against `schema`. Duplicates within `stored` are refused: a store
    /// replace must be unambiguous.
    pub(crate) fn build(schema: &Schema, base: &[Value], stored: Vec<Value>) -> Result<Self, EntitiesError> {
        let mut docs = HashMap::new();
        for (index, doc) in base.iter().enumerate() {
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
            Entities::from_json_value(all, Some(schema)).map_err(|e| EntitiesError::Schema(cedar_message(&e)))?;
        let mut type_names: HashMap<String, EntityTypeName> = HashMap::new();
        let mut uids = HashMap::with_capacity(docs.len());
        let mut reach = HashMap::with_capacity(docs.len());
        let mut by_type: HashMap<String, Vec<String>> = HashMap::new();
        for (key, doc) in &docs {
            if !type_names.contains_key(&key.0) {
                // The schema accepted every entity, so its type name parses.
                let Ok(ty) = EntityTypeName::from_str(&key.0) else { continue };
                type_names.insert(key.0.clone(), ty);
            }
            if let Some(ty) = type_names.get(&key.0) {
                uids.insert(key.clone(), uid(ty, &key.1));
            }
            reach.insert(key.clone(), reach_of(doc));
            by_type.entry(key.0.clone()).or_default().push(key.1.clone());
        }
        by_type.values_mut().for_each(|ids| ids.sort_unstable());
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self { docs, cedar, stored: stored_count, uids, reach, by_type, search: SearchCache::default(), id })
    }

    /// Which build of the entities this is (clones share it): two sets with
    /// the same id hold the same entities.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

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

    /// Builds the search indexes `previous` (an earlier version of this
    /// store) had built, so searches right after a change do not pay for
    /// them. Call before making this version live.
    pub fn warm_search_like(&self, previous: &EntitySet) {
        let built = previous.search.built();
        self.search.build_like(&built, &self.cedar, |ty| self.ids_of_type(ty).to_vec());
    }

    /// Which search indexes are built: per type (qualified), the attributes
    /// indexed and whether the ancestor index is. For tests and diagnostics.
    pub fn search_indexes(&self) -> Vec<(String, Vec<String>, bool)> {
        let mut built = self.search.built();
        built.sort();
        built.iter_mut().for_each(|(_, attrs, _)| attrs.sort());
        built
    }

    /// Whether an entity of type `ty` (qualified) with this id is stored.
    pub fn contains(&self, ty: &str, id: &str) -> bool {
        self.docs.contains_key(&(ty.to_owned(), id.to_owned()))
    }

    /// An attribute of a stored entity, as its JSON (`ty` qualified).
    pub fn attribute(&self, ty: &str, id: &str, attr: &str) -> Option<&Value> {
        self.docs.get(&(ty.to_owned(), id.to_owned()))?.get("attrs")?.get(attr)
    }

    /// The id an entity-reference attribute points to, in either JSON spelling.
    pub fn reference_id(value: &Value) -> Option<&str> {
        value.get("__entity").unwrap_or(value).get("id")?.as_str()
    }

    /// Ids of the stored entities of type `ty` (qualified name), sorted.
    pub fn ids_of_type(&self, ty: &str) -> &[String] {
        self.by_type.get(ty).map_or(&[], Vec::as_slice)
    }

    /// The entities a request can reach: `roots`, everything their attributes
    /// refer to (transitively), and the ancestors of all of those, with
    /// `extras` replacing stored entities of the same uid (each with where it
    /// leads, [`reach_of`]). Cedar can only read an entity through a
    /// reference from the request, a policy literal or an ancestor set, so a
    /// decision against the slice equals one against the whole store. `None`
    /// when the slice would be too large to be worth it.
    pub(crate) fn slice(
        &self,
        roots: Vec<UidKey>,
        extras: Vec<(UidKey, Vec<UidKey>, Entity)>,
        actions: &[Entity],
    ) -> Option<Result<Entities, EntitiesError>> {
        let mut chosen: HashMap<EntityUid, Entity> = HashMap::new();
        let mut seen: HashSet<UidKey> = HashSet::new();
        let mut queue: VecDeque<UidKey> = roots.into();
        for (key, reach, entity) in extras {
            queue.extend(reach);
            seen.insert(key);
            chosen.insert(entity.uid(), entity);
        }
        while let Some(key) = queue.pop_front() {
            if !seen.insert(key.clone()) {
                continue;
            }
            if chosen.len() > MAX_SLICE {
                return None;
            }
            let Some(entity) = self.uids.get(&key).and_then(|uid| self.cedar.get(uid)) else {
                continue;
            };
            if let Some(reach) = self.reach.get(&key) {
                queue.extend(reach.iter().cloned());
            }
            chosen.insert(entity.uid(), entity.clone());
        }
        let all = chosen.into_values().chain(actions.iter().cloned());
        Some(Entities::from_entities(all, None).map_err(|e| EntitiesError::Schema(cedar_message(&e))))
    }
}

/// Where a request can go from an entity document: the entities its
/// attributes refer to, then its parents. Read from the JSON once, when the
/// document is parsed (asking a Cedar `Entity` for its parents means
/// serialising it whole).
pub(crate) fn reach_of(doc: &Value) -> Vec<UidKey> {
    let mut out = Vec::new();
    if let Some(attrs) = doc.get("attrs") {
        collect_refs(attrs, &mut out);
    }
    if let Some(Value::Array(parents)) = doc.get("parents") {
        out.extend(parents.iter().filter_map(ref_key));
    }
    out
}

/// The uid an entity reference names: `{"__entity": {"type", "id"}}` or the
/// schema-implicit `{"type", "id"}`.
fn ref_key(value: &Value) -> Option<UidKey> {
    let inner = value.get("__entity").unwrap_or(value);
    let ty = inner.get("type")?.as_str()?;
    let id = inner.get("id")?.as_str()?;
    Some((ty.to_owned(), id.to_owned()))
}

/// Every entity reference inside a JSON value (attributes, context, policy
/// JSON). A record that happens to have exactly `type` and `id` strings is
/// taken as a reference too: an extra entity in a slice is harmless.
pub(crate) fn collect_refs(value: &Value, out: &mut Vec<UidKey>) {
    match value {
        Value::Object(map) => {
            if let Some(inner) = map.get("__entity") {
                out.extend(ref_key(inner));
            } else if map.len() == 2
                && map.get("type").is_some_and(Value::is_string)
                && map.get("id").is_some_and(Value::is_string)
            {
                out.extend(ref_key(value));
            } else if !map.contains_key("__extn") {
                map.values().for_each(|v| collect_refs(v, out));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Parses request-carried entity documents against `schema`, keeping each
/// one's uid and where it leads ([`reach_of`]).
pub(crate) fn parse(schema: &Schema, docs: Vec<Value>) -> Result<Vec<(UidKey, Vec<UidKey>, Entity)>, EntitiesError> {
    docs.into_iter()
        .enumerate()
        .map(|(index, doc)| {
            let (key, doc) = normalize(doc, index)?;
            let reach = reach_of(&doc);
            let entity = Entity::from_json_value(doc, Some(schema))
                .map_err(|e| EntitiesError::Malformed { index, message: cedar_message(&e) })?;
            Ok((key, reach, entity))
        })
        .collect()
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
