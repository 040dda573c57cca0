//! Request-carried entity documents, parsed once per bundle.
//!
//! A request's `entities` (and AuthZEN `properties` merged over a stored
//! entity) are parsed against the schema before Cedar sees them: in a
//! revealing credential resolution, where the service passes the token as
//! an entity, that parse was a tenth of the server's CPU (perf, 64
//! connections). The same documents come back request after request (a
//! token's state changes only when it is refreshed or revoked), so the
//! parse of each document is kept by its JSON text, which decides it: the
//! schema is the bundle's, and the cache lives and dies with the bundle.
//!
//! Bounded: at [`MAX`] documents the cache starts afresh. A document that
//! fails to parse is never kept, so its error is reported every time.

use std::collections::HashMap;
use std::sync::Mutex;

use cedar_policy::{Entity, Schema};
use serde_json::Value;

use crate::entities::{EntitiesError, UidKey, parse};

/// Documents kept at most.
const MAX: usize = 4096;

/// A parsed document: its uid, where it leads (`reach_of`), the entity.
type Parsed = (UidKey, Vec<UidKey>, Entity);

#[derive(Default)]
pub(crate) struct ParsedCache {
    kept: Mutex<HashMap<String, Parsed>>,
}

impl std::fmt::Debug for ParsedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.kept.lock().map_or(0, |k| k.len());
        f.debug_struct("ParsedCache").field("kept", &kept).finish()
    }
}

impl ParsedCache {
    /// [`parse`], answered from the cache for documents seen before; each
    /// with its text, which names it (the slice cache keys on it).
    pub(crate) fn parse(&self, schema: &Schema, docs: Vec<Value>) -> Result<Vec<(String, Parsed)>, EntitiesError> {
        let mut out = Vec::with_capacity(docs.len());
        for (index, doc) in docs.into_iter().enumerate() {
            // serde_json's maps are sorted: equal documents, equal text.
            let text = doc.to_string();
            if let Some(hit) = self.kept.lock().ok().and_then(|k| k.get(&text).cloned()) {
                out.push((text, hit));
                continue;
            }
            let parsed = parse(schema, vec![doc]).map_err(|e| at(e, index))?;
            if let (Some(one), Ok(mut kept)) = (parsed.into_iter().next(), self.kept.lock()) {
                if kept.len() >= MAX {
                    kept.clear();
                }
                kept.insert(text.clone(), one.clone());
                out.push((text, one));
            }
        }
        Ok(out)
    }
}

/// `e`, naming the document's place in the request.
fn at(e: EntitiesError, index: usize) -> EntitiesError {
    match e {
        EntitiesError::Malformed { message, .. } => EntitiesError::Malformed { index, message },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use std::str::FromStr as _;

    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::from_str(
            "entity User { level: Long }; entity Doc; action read appliesTo { principal: User, resource: Doc };",
        )
        .unwrap()
    }

    #[test]
    fn a_document_seen_before_is_answered_the_same_and_errors_keep_their_index() {
        let cache = ParsedCache::default();
        let doc = json!({"uid": {"type": "User", "id": "ann"}, "attrs": {"level": 3}, "parents": []});
        let first = cache.parse(&schema(), vec![doc.clone()]).unwrap();
        let again = cache.parse(&schema(), vec![doc]).unwrap();
        assert_eq!(first[0].0, again[0].0);
        assert_eq!(first[0].1.0, again[0].1.0);
        assert_eq!(first[0].1.2, again[0].1.2);
        assert_eq!(cache.kept.lock().unwrap().len(), 1);
        // A bad second document is reported at its index, and not kept.
        let good = json!({"uid": {"type": "User", "id": "bob"}, "attrs": {"level": 1}, "parents": []});
        let bad = json!({"uid": {"type": "User", "id": "cy"}, "attrs": {"level": "high"}, "parents": []});
        for _ in 0..2 {
            let e = cache.parse(&schema(), vec![good.clone(), bad.clone()]).unwrap_err();
            assert!(matches!(e, EntitiesError::Malformed { index: 1, .. }), "{e:?}");
        }
        assert_eq!(cache.kept.lock().unwrap().len(), 2, "ann and bob, not cy");
    }

    #[test]
    fn the_cache_starts_afresh_when_full() {
        let cache = ParsedCache::default();
        for i in 0..=MAX {
            let doc = json!({"uid": {"type": "User", "id": format!("u{i}")}, "attrs": {"level": 1}, "parents": []});
            cache.parse(&schema(), vec![doc]).unwrap();
        }
        assert_eq!(cache.kept.lock().unwrap().len(), 1);
    }
}
