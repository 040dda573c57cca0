//! The writer's side of the tiled tree (`tiles.rs`): its right edge, the
//! rightmost tile of each level, which is the only part an append changes.
//!
//! Appending a batch of leaves yields the tiles it changed: each tile it
//! completed (then immutable) and the new state of each partial tile it
//! grew (a partial tile is a prefix of the full tile it becomes). A store
//! writes those in the transaction that stores the records, so the tiles
//! never disagree with the log, and it keeps nothing else in memory: the
//! edge is at most 255 hashes per level, 8 KiB a level, whatever the size.
//! The root at the edge's size is computed from the edge alone.

use std::collections::BTreeMap;

use super::merkle::{self, Hash, ProofError};
use super::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, TileReader, TileSource};

/// The rightmost tile of every level of a tree of [`size`](Self::size) leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileEdge {
    size: u64,
    /// Level k: the hashes of tile `size >> 8(k+1)`, fewer than 256.
    levels: Vec<Vec<Hash>>,
}

/// Level `level`'s rightmost tile in a tree of `size` leaves, and how many
/// hashes it holds (0: that level has no partial tile).
fn edge_tile(size: u64, level: u32) -> (TileId, u64) {
    let hashes = size.checked_shr(level * TILE_HEIGHT).unwrap_or(0);
    let id = TileId { level: u8::try_from(level).unwrap_or(u8::MAX), index: hashes / TILE_WIDTH };
    (id, hashes % TILE_WIDTH)
}

impl TileEdge {
    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The partial tiles a tree of `size` leaves has, with their widths:
    /// what a store reads to rebuild the edge ([`Self::from_tiles`]).
    pub fn tiles_at(size: u64) -> Vec<(TileId, u64)> {
        (0..)
            .take_while(|&level| size.checked_shr(level * TILE_HEIGHT).unwrap_or(0) > 0)
            .map(|level| edge_tile(size, level))
            .filter(|(_, width)| *width > 0)
            .collect()
    }

    /// The edge of a tree of `size` leaves, from its stored tiles (each
    /// partial tile at least as wide as `size` needs; wider ones are cut).
    pub fn from_tiles(size: u64, tiles: &(impl TileSource + ?Sized)) -> Result<Self, ProofError> {
        let mut levels = Vec::new();
        for level in (0..).take_while(|&level| size.checked_shr(level * TILE_HEIGHT).unwrap_or(0) > 0) {
            let (id, width) = edge_tile(size, level);
            let width = usize::try_from(width).unwrap_or(usize::MAX);
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let missing = ProofError::MissingTile { level: id.level, index: id.index };
                tiles.tile(id).and_then(|t| t.get(..width)).ok_or(missing)?.to_vec()
            };
            levels.push(hashes);
        }
        Ok(Self { size, levels })
    }

    /// Appends `leaves`; returns every tile they changed with its hashes
    /// now, by id: the tiles they completed, full, and the partial tiles
    /// they grew. Writing those (replacing what is stored under each id)
    /// brings stored tiles from this edge's old size to its new one.
    pub fn append(&mut self, leaves: impl IntoIterator<Item = Hash>) -> BTreeMap<TileId, Vec<Hash>> {
        let mut changed = BTreeMap::new();
        let mut grown = vec![false; self.levels.len()];
        for leaf in leaves {
            let mut hash = leaf;
            let mut level = 0;
            loop {
                if self.levels.len() <= level {
                    self.levels.push(Vec::new());
                    grown.push(false);
                }
                let (Some(hashes), Some(g)) = (self.levels.get_mut(level), grown.get_mut(level)) else { break };
                hashes.push(hash);
                *g = true;
                if hashes.len() < TILE_WIDTH as usize {
                    break;
                }
                // The tile is full: it is written whole and feeds the level above.
                let (id, _) = edge_tile(self.size, level as u32);
                hash = merkle::root(hashes);
                changed.insert(id, std::mem::take(hashes));
                level += 1;
            }
            self.size += 1;
        }
        for (level, hashes) in self.levels.iter().enumerate() {
            if grown.get(level) == Some(&true) && !hashes.is_empty() {
                changed.insert(edge_tile(self.size, level as u32).0, hashes.clone());
            }
        }
        changed
    }

    /// The root of the tree at this edge's size.
    pub fn root(&self) -> Hash {
        TileReader::new(self, self.size).root_at(self.size).unwrap_or_else(|_| merkle::empty_root())
    }
}

/// The edge's partial tiles; any other tile is not here.
impl TileSource for TileEdge {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        let (at, _) = edge_tile(self.size, u32::from(id.level));
        let hashes = self.levels.get(usize::from(id.level))?;
        (at == id && !hashes.is_empty()).then_some(hashes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use std::collections::HashMap;

    use super::*;
    use crate::audit::TileTree;

    fn leaf(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    #[test]
    fn appending_in_batches_writes_the_tiles_of_the_whole_tree() {
        let total = 70_000;
        let tree = TileTree::from_leaves((0..total).map(leaf));
        let mut stored: HashMap<TileId, Vec<Hash>> = HashMap::new();
        let mut edge = TileEdge::default();
        let mut next = 0;
        // Batches of awkward sizes, crossing tile and level boundaries.
        for (i, batch) in [1, 2, 253, 1, 256, 300, 65_000, 7].into_iter().cycle().enumerate() {
            if next == total {
                break;
            }
            let end = (next + batch).min(total);
            let changed = edge.append((next..end).map(leaf));
            // Every changed tile is a prefix of the final tree's tile.
            for (id, hashes) in &changed {
                let want = TileSource::tile(&tree, *id).unwrap();
                assert_eq!(&want[..hashes.len()], hashes.as_slice(), "batch {i}: tile {id:?}");
            }
            stored.extend(changed);
            next = end;
            assert_eq!(edge.size(), next);
            assert_eq!(Some(edge.root()), tree.root_at(next), "root at {next}");
            // The stored tiles rebuild this edge.
            assert_eq!(TileEdge::from_tiles(next, &stored).unwrap(), edge);
        }
        for (id, hashes) in &stored {
            assert_eq!(TileSource::tile(&tree, *id), Some(hashes.as_slice()), "{id:?}");
        }
        // Level 0: 273 full tiles and one of 112; level 1: one full and one
        // of 17; level 2: one of 1.
        assert_eq!(stored.len(), 274 + 2 + 1);
        assert_eq!(
            TileEdge::tiles_at(70_000),
            [
                (TileId { level: 0, index: 273 }, 112),
                (TileId { level: 1, index: 1 }, 17),
                (TileId { level: 2, index: 0 }, 1)
            ]
        );
    }

    #[test]
    fn the_edge_at_every_small_size_has_the_reference_root() {
        let leaves: Vec<Hash> = (0..1_100).map(leaf).collect();
        let mut edge = TileEdge::default();
        assert_eq!(edge.root(), merkle::empty_root());
        for (n, l) in leaves.iter().enumerate() {
            edge.append([*l]);
            assert_eq!(edge.root(), merkle::root(&leaves[..=n]), "size {}", n + 1);
        }
    }

    #[test]
    fn an_edge_cannot_be_rebuilt_from_a_short_tile() {
        let mut stored: HashMap<TileId, Vec<Hash>> = HashMap::new();
        stored.extend(TileEdge::default().append((0..300).map(leaf)));
        assert!(TileEdge::from_tiles(300, &stored).is_ok());
        assert!(TileEdge::from_tiles(299, &stored).is_ok(), "a wider stored tile is cut");
        assert_eq!(TileEdge::from_tiles(301, &stored), Err(ProofError::MissingTile { level: 0, index: 1 }));
    }
}
