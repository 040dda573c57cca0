//! Entity slices kept between requests.
//!
//! A request that carries entities is decided against the slice of the
//! store it can reach (`EntitySet::slice`), which Cedar's
//! `Entities::from_entities` builds, transitive closure included. In a
//! revealing credential resolution that build was the largest single cost
//! left (perf at 64 connections: 15% of the server's CPU), though the same
//! user asks with the same token again and again. A slice is a function of
//! the entity set, the roots (principal, resource, context references,
//! policy literals) and the carried documents; so it is kept under exactly
//! those, with the set's identity (`EntitySet::id`), in the bundle's
//! decider: a new bundle starts with none.
//!
//! Bounded: at [`MAX`] slices the cache starts afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cedar_policy::Entities;

/// Slices kept at most.
const MAX: usize = 1024;

/// What a slice is a function of: the entity set, the roots, and the text
/// of each carried document, in order.
pub(crate) type SliceKey = (u64, Vec<(String, String)>, Vec<String>);

#[derive(Default)]
pub(crate) struct SliceCache {
    kept: Mutex<HashMap<SliceKey, Arc<Entities>>>,
}

impl std::fmt::Debug for SliceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.kept.lock().map_or(0, |k| k.len());
        f.debug_struct("SliceCache").field("kept", &kept).finish()
    }
}

impl SliceCache {
    pub(crate) fn get(&self, key: &SliceKey) -> Option<Arc<Entities>> {
        self.kept.lock().ok()?.get(key).cloned()
    }

    pub(crate) fn keep(&self, key: SliceKey, slice: Arc<Entities>) {
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= MAX {
                kept.clear();
            }
            kept.insert(key, slice);
        }
    }
}
