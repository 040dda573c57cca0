//! What a replacement of the stored entities changed: the set's digest
//! before and after, and per entity type how many entities were added,
//! removed or changed, with a few of their uids. The service records this
//! with every `PUT /v1/entities` (`entities.replaced`, docs/audit.md), so
//! promoting a user to admin leaves a trace an auditor can find.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Uids named per type and change; the counts are always complete.
pub const MAX_EXAMPLES: usize = 10;

/// The difference between two entity sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntitiesDiff {
    /// `sha256:<hex>` of the set before (see [`digest`]).
    pub digest_before: String,
    /// `sha256:<hex>` of the set after.
    pub digest_after: String,
    pub count_before: usize,
    pub count_after: usize,
    /// Only types with at least one change, by type name. A list, not an
    /// object keyed by type: redaction works by key name, and a type named
    /// `Token` or `Session` must not turn its counts into a digest.
    pub changes: Vec<TypeChanges>,
}

/// The changes to the entities of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeChanges {
    #[serde(rename = "type")]
    pub type_name: String,
    pub added: usize,
    pub removed: usize,
    /// Same uid, different attributes or parents.
    pub changed: usize,
    /// Up to [`MAX_EXAMPLES`] ids of each change, in id order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_ids: Vec<String>,
}

impl EntitiesDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes to entities of type `name`, if any.
    pub fn of_type(&self, name: &str) -> Option<&TypeChanges> {
        self.changes.iter().find(|c| c.type_name == name)
    }
}

/// Each document in canonical JSON (RFC 8785), keyed by uid. Documents are
/// normalised first (`attrs` and `parents` made explicit, the uid as
/// `{"type", "id"}`), so spelling a set two ways is no change; a document
/// without a readable uid is keyed by its own text (the service only diffs
/// validated sets).
fn canonical(docs: &[Value]) -> BTreeMap<UidKey, String> {
    docs.iter()
        .enumerate()
        .map(|(index, doc)| {
            let (key, doc) =
                normalized(doc).unwrap_or_else(|| ((String::new(), format!("{index}:{doc}")), doc.clone()));
            let text = serde_json_canonicalizer::to_string(&doc).unwrap_or_else(|_| doc.to_string());
            (key, text)
        })
        .collect()
}

/// `(type, id)` of an entity.
type UidKey = (String, String);

/// The uid of `doc` and the document as stored: the uid as `{"type", "id"}`
/// (not `{"__entity": …}`), `attrs` and `parents` present. The same
/// defaults as `entities::normalize`, which validates; this one only reads.
fn normalized(doc: &Value) -> Option<(UidKey, Value)> {
    let uid = doc.get("uid")?;
    let uid = uid.get("__entity").unwrap_or(uid);
    let key = (uid.get("type")?.as_str()?.to_owned(), uid.get("id")?.as_str()?.to_owned());
    let mut doc = doc.as_object()?.clone();
    doc.insert("uid".into(), serde_json::json!({"type": key.0, "id": key.1}));
    if doc.get("attrs").is_none_or(Value::is_null) {
        doc.insert("attrs".into(), Value::Object(serde_json::Map::new()));
    }
    if doc.get("parents").is_none_or(Value::is_null) {
        doc.insert("parents".into(), Value::Array(Vec::new()));
    }
    Some((key, Value::Object(doc)))
}

fn digest_of(set: &BTreeMap<UidKey, String>) -> String {
    let mut hasher = Sha256::new();
    for text in set.values() {
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// `sha256:<hex>` over the set's documents in canonical JSON, one per line,
/// in uid order: the same set gives the same digest however it was ordered
/// or spelled.
pub fn digest(docs: &[Value]) -> String {
    digest_of(&canonical(docs))
}

/// What replacing `before` with `after` changes.
pub fn diff(before: &[Value], after: &[Value]) -> EntitiesDiff {
    let (old, new) = (canonical(before), canonical(after));
    let mut changes: BTreeMap<String, TypeChanges> = BTreeMap::new();
    let note = |count: &mut usize, ids: &mut Vec<String>, id: &str| {
        *count += 1;
        if ids.len() < MAX_EXAMPLES {
            ids.push(id.to_owned());
        }
    };
    for ((ty, id), text) in &new {
        match old.get(&(ty.clone(), id.clone())) {
            None => {
                let c = changes.entry(ty.clone()).or_default();
                note(&mut c.added, &mut c.added_ids, id);
            }
            Some(was) if was != text => {
                let c = changes.entry(ty.clone()).or_default();
                note(&mut c.changed, &mut c.changed_ids, id);
            }
            Some(_) => {}
        }
    }
    for (ty, id) in old.keys() {
        if !new.contains_key(&(ty.clone(), id.clone())) {
            let c = changes.entry(ty.clone()).or_default();
            note(&mut c.removed, &mut c.removed_ids, id);
        }
    }
    let changes = changes.into_iter().map(|(type_name, c)| TypeChanges { type_name, ..c }).collect();
    EntitiesDiff {
        digest_before: digest_of(&old),
        digest_after: digest_of(&new),
        count_before: old.len(),
        count_after: new.len(),
        changes,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(id: &str, admin: bool) -> Value {
        json!({"uid": {"type": "User", "id": id}, "attrs": {"admin": admin}, "parents": []})
    }

    #[test]
    fn counts_added_removed_and_changed_per_type() {
        let before = vec![user("ann", false), user("bob", false), json!({"uid": {"type": "Team", "id": "t"}})];
        let after =
            vec![user("ann", true), user("cid", false), json!({"uid": {"__entity": {"type": "Team", "id": "t"}}})];
        let d = diff(&before, &after);
        assert_eq!((d.count_before, d.count_after), (3, 3));
        let users = d.of_type("User").unwrap();
        assert_eq!((users.added, users.removed, users.changed), (1, 1, 1));
        assert_eq!(
            (users.added_ids.as_slice(), users.changed_ids.as_slice()),
            (&["cid".to_owned()][..], &["ann".to_owned()][..])
        );
        assert_eq!(users.removed_ids, ["bob"]);
        assert!(d.of_type("Team").is_none(), "the same team, spelled another way: {d:?}");
        assert_ne!(d.digest_before, d.digest_after);
    }

    #[test]
    fn the_digest_ignores_order_and_spelling() {
        let a = vec![user("ann", false), json!({"uid": {"type": "User", "id": "bob"}})];
        let b = vec![json!({"parents": [], "attrs": {}, "uid": {"id": "bob", "type": "User"}}), user("ann", false)];
        assert_eq!(digest(&a), digest(&b));
        assert!(diff(&a, &b).is_empty());
        assert_ne!(digest(&a), digest(&[user("ann", true)]));
        assert!(digest(&[]).starts_with("sha256:"));
    }

    #[test]
    fn examples_are_capped_and_counts_are_not() {
        let after: Vec<Value> = (0..25).map(|i| user(&format!("u{i:02}"), false)).collect();
        let d = diff(&[], &after);
        assert_eq!(d.of_type("User").unwrap().added, 25);
        assert_eq!(d.of_type("User").unwrap().added_ids.len(), MAX_EXAMPLES);
    }
}
