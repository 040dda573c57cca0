//! What a search answers from: the stored entities of one type, numbered in
//! id order, with lookups built on first use and kept for the store version
//! (an entity set is immutable, so its indexes never go stale). They live
//! with the entity set that owns them; `search` reads them.
//!
//! - [`Bits`]: a set of candidate positions.
//! - [`Candidates`]: one type's entities, the attribute indexes (value →
//!   positions, and which positions have the attribute) and the ancestor
//!   index (`in` an entity → positions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cedar_policy::{Entities, EntityUid, EvalResult};

/// A set of candidate positions, `0..len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    pub(crate) fn none(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(64)], len }
    }

    pub(crate) fn all(len: usize) -> Self {
        let mut bits = Self { words: vec![u64::MAX; len.div_ceil(64)], len };
        bits.trim();
        bits
    }

    pub(crate) fn from_positions(len: usize, positions: &[u32]) -> Self {
        let mut bits = Self::none(len);
        for &p in positions {
            bits.insert(p as usize);
        }
        bits
    }

    pub(crate) fn insert(&mut self, position: usize) {
        if let Some(word) = self.words.get_mut(position / 64) {
            *word |= 1 << (position % 64);
        }
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a | b)
    }

    pub(crate) fn intersect(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a & b)
    }

    /// `self` without `other`.
    pub(crate) fn minus(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a & !b)
    }

    pub(crate) fn complement(&self) -> Self {
        let mut bits = Self { words: self.words.iter().map(|w| !w).collect(), len: self.len };
        bits.trim();
        bits
    }

    /// The positions in the set, ascending.
    pub(crate) fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(i * 64 + bit)
            })
        })
    }

    fn zip(&self, other: &Self, f: impl Fn(u64, u64) -> u64) -> Self {
        let words = self.words.iter().zip(&other.words).map(|(a, b)| f(*a, *b)).collect();
        Self { words, len: self.len.min(other.len) }
    }

    /// Clears the bits past `len` in the last word.
    fn trim(&mut self) {
        let spare = self.words.len() * 64 - self.len;
        if spare > 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= u64::MAX >> spare;
        }
    }
}

/// A literal a residual compares an attribute with, in a hashable form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Bool(bool),
    Long(i64),
    String(String),
    /// `(type, id)`, both as written (the type qualified).
    Entity(String, String),
}

impl Key {
    fn of(value: &EvalResult) -> Option<Self> {
        match value {
            EvalResult::Bool(b) => Some(Self::Bool(*b)),
            EvalResult::Long(n) => Some(Self::Long(*n)),
            EvalResult::String(s) => Some(Self::String(s.clone())),
            EvalResult::EntityUid(uid) => Some(Self::entity(uid)),
            EvalResult::Set(_) | EvalResult::Record(_) | EvalResult::ExtensionValue(_) => None,
        }
    }

    pub(crate) fn entity(uid: &EntityUid) -> Self {
        Self::Entity(uid.type_name().to_string(), uid.id().unescaped().to_owned())
    }
}

/// One attribute of one entity type, indexed.
#[derive(Debug, Default)]
pub(crate) struct AttrIndex {
    /// Positions whose entity has the attribute.
    pub(crate) present: Vec<u32>,
    /// Scalar value → positions whose attribute equals it.
    pub(crate) scalars: HashMap<Key, Vec<u32>>,
    /// Set element → positions whose set-valued attribute contains it. An
    /// element with no [`Key`] (a record, an extension value, a set) is left
    /// out: it never equals a literal, which is all a residual compares.
    pub(crate) elements: HashMap<Key, Vec<u32>>,
}

/// The stored entities of one type, the candidates of a search.
#[derive(Debug)]
pub(crate) struct Candidates {
    pub(crate) ids: Vec<String>,
    uids: Vec<EntityUid>,
    position: HashMap<String, u32>,
    attrs: Mutex<HashMap<String, Arc<AttrIndex>>>,
    /// Ancestor (as a [`Key`]) → positions of its descendants.
    ancestors: OnceLock<HashMap<Key, Vec<u32>>>,
}

impl Candidates {
    fn new(ids: &[String], uids: Vec<EntityUid>) -> Self {
        let position = ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
        Self { ids: ids.to_vec(), uids, position, attrs: Mutex::default(), ancestors: OnceLock::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The attributes indexed so far, and whether the ancestor index is built.
    fn built(&self) -> (Vec<String>, bool) {
        let attrs = self.attrs.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        (attrs, self.ancestors.get().is_some())
    }

    /// The position of the candidate with this id.
    pub(crate) fn position_of(&self, id: &str) -> Option<usize> {
        self.position.get(id).map(|p| *p as usize)
    }

    /// The index of `attr`, built on first use from `entities`.
    pub(crate) fn attr(&self, attr: &str, entities: &Entities) -> Arc<AttrIndex> {
        if let Some(index) = self.attrs.lock().ok().and_then(|m| m.get(attr).cloned()) {
            return index;
        }
        let index = Arc::new(self.build_attr(attr, entities));
        if let Ok(mut map) = self.attrs.lock() {
            map.entry(attr.to_owned()).or_insert_with(|| Arc::clone(&index));
        }
        index
    }

    fn build_attr(&self, attr: &str, entities: &Entities) -> AttrIndex {
        let mut index = AttrIndex::default();
        for (position, uid) in self.uids.iter().enumerate() {
            let position = position as u32;
            let Some(Ok(value)) = entities.get(uid).and_then(|e| e.attr(attr)) else { continue };
            index.present.push(position);
            match &value {
                EvalResult::Set(set) => {
                    for key in set.iter().filter_map(Key::of) {
                        index.elements.entry(key).or_default().push(position);
                    }
                }
                other => {
                    if let Some(key) = Key::of(other) {
                        index.scalars.entry(key).or_default().push(position);
                    }
                }
            }
        }
        index
    }

    /// Positions of the candidates that are descendants of `ancestor`
    /// (not the candidate equal to it: `in` adds that itself).
    pub(crate) fn descendants_of(&self, ancestor: &Key, entities: &Entities) -> &[u32] {
        self.ancestor_index(entities).get(ancestor).map_or(&[], Vec::as_slice)
    }

    fn ancestor_index(&self, entities: &Entities) -> &HashMap<Key, Vec<u32>> {
        self.ancestors.get_or_init(|| {
            let mut map: HashMap<Key, Vec<u32>> = HashMap::new();
            for (position, uid) in self.uids.iter().enumerate() {
                for a in entities.ancestors(uid).into_iter().flatten() {
                    map.entry(Key::entity(a)).or_default().push(position as u32);
                }
            }
            map
        })
    }
}

/// The candidates of every type searched so far, for one store version.
/// Clones share it: they hold the same entities.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchCache {
    types: Arc<Mutex<HashMap<String, Arc<Candidates>>>>,
}

impl SearchCache {
    /// The candidates of `type_name` (qualified), numbered like `ids`.
    pub(crate) fn candidates(&self, type_name: &cedar_policy::EntityTypeName, ids: &[String]) -> Arc<Candidates> {
        let key = type_name.to_string();
        if let Some(found) = self.types.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return found;
        }
        let uids = ids.iter().map(|id| crate::cedar::uid(type_name, id)).collect();
        let built = Arc::new(Candidates::new(ids, uids));
        if let Ok(mut map) = self.types.lock() {
            return Arc::clone(map.entry(key).or_insert(built));
        }
        built
    }

    /// What has been built: per type, the attributes indexed and whether the
    /// ancestor index is.
    pub(crate) fn built(&self) -> Vec<(String, Vec<String>, bool)> {
        let types: Vec<(String, Arc<Candidates>)> =
            self.types.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()).unwrap_or_default();
        types
            .into_iter()
            .map(|(ty, c)| {
                let (attrs, ancestors) = c.built();
                (ty, attrs, ancestors)
            })
            .collect()
    }

    /// Builds, for `entities`, the indexes `built` lists (from a previous
    /// store version), so the first search after a change is not the one
    /// that pays for them.
    pub(crate) fn build_like(
        &self,
        built: &[(String, Vec<String>, bool)],
        entities: &Entities,
        ids_of: impl Fn(&str) -> Vec<String>,
    ) {
        for (ty, attrs, ancestors) in built {
            let Ok(type_name) = ty.parse::<cedar_policy::EntityTypeName>() else { continue };
            let candidates = self.candidates(&type_name, &ids_of(ty));
            for attr in attrs {
                candidates.attr(attr, entities);
            }
            if *ancestors {
                candidates.ancestor_index(entities);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bits;

    #[test]
    fn bits_set_algebra_respects_the_length() {
        let a = Bits::from_positions(70, &[0, 5, 64, 69]);
        let b = Bits::from_positions(70, &[5, 6, 69]);
        assert_eq!(a.union(&b).positions().collect::<Vec<_>>(), [0, 5, 6, 64, 69]);
        assert_eq!(a.intersect(&b).positions().collect::<Vec<_>>(), [5, 69]);
        assert_eq!(a.minus(&b).positions().collect::<Vec<_>>(), [0, 64]);
        let not_a = a.complement();
        assert_eq!(not_a.positions().count(), 66);
        assert!(not_a.positions().all(|p| p < 70 && ![0, 5, 64, 69].contains(&p)));
        assert_eq!(Bits::all(70).positions().count(), 70);
        assert_eq!(Bits::none(70).positions().count(), 0);
    }
}
