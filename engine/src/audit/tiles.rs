//! The log's tree as C2SP tiles (`c2sp.org/tlog-tiles`, height 8): level
//! `k` holds the hashes of the complete subtrees of `256^k` leaves (level 0:
//! the leaves), cut into tiles of 256 consecutive hashes. The hash of any
//! aligned complete subtree is at most 128 hashes of one tile hashed
//! together, so the tree's root at any size, and any proof, costs O(log n)
//! tile reads instead of hashing every leaf.
//!
//! The algorithms read tiles through [`TileSource`], so the same code runs
//! over the whole tree in memory ([`TileTree`], for tests and tools) and
//! over the few tiles a store fetched. A store first asks [`plan`] which
//! tiles a question needs (that depends only on the sizes and indexes, never
//! on the hashes), reads them in one go, then answers with a [`TileReader`].
//! The writer's side, the right edge that grows with each append, is
//! `tile_edge.rs`.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::merkle::{self, Hash, ProofError};

/// Hashes per full tile: a tile spans 8 levels of the tree.
pub const TILE_WIDTH: u64 = 256;
/// Levels of the tree one tile spans.
pub(super) const TILE_HEIGHT: u32 = 8;

/// A tile: its level and its index along that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

/// Where tile hashes are read from.
pub trait TileSource {
    /// The hashes of tile `id` this source holds: the full tile, or a prefix
    /// of it (a partial tile), or `None`.
    fn tile(&self, id: TileId) -> Option<&[Hash]>;

    /// Whether the hashes are only being counted ([`plan`]): then nothing
    /// is hashed.
    fn planning(&self) -> bool {
        false
    }
}

impl TileSource for HashMap<TileId, Vec<Hash>> {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        self.get(&id).map(Vec::as_slice)
    }
}

/// Two sources read as one: each tile from whichever holds more of it (a
/// store's tiles under a writer's in-memory edge, say).
#[derive(Clone, Copy)]
pub struct Layered<'a>(pub &'a dyn TileSource, pub &'a dyn TileSource);

impl std::fmt::Debug for Layered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Layered")
    }
}

impl TileSource for Layered<'_> {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        match (self.0.tile(id), self.1.tile(id)) {
            (Some(a), Some(b)) => Some(if b.len() > a.len() { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// Answers about the tree of `size` leaves from the tiles of `tiles`.
#[derive(Debug, Clone, Copy)]
pub struct TileReader<'a, S: ?Sized> {
    tiles: &'a S,
    size: u64,
}

impl<'a, S: TileSource + ?Sized> TileReader<'a, S> {
    /// A reader over a tree of `size` leaves whose tiles `tiles` holds.
    pub fn new(tiles: &'a S, size: u64) -> Self {
        Self { tiles, size }
    }

    /// The root of the tree over the first `size` leaves (RFC 6962 MTH).
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(merkle::empty_root());
        }
        self.subtree(0, size)
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash, ProofError> {
        if index >= self.size {
            return Err(ProofError::IndexOutOfRange { index, tree_size: self.size });
        }
        self.complete(index, 1)
    }

    /// PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf level first, from the
    /// tiles: O(log size) subtree hashes. Same answers and errors as
    /// [`merkle::inclusion_proof`] over the leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, tree_size: size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof)?;
        Ok(proof)
    }

    /// PROOF(old, D[new]) (RFC 9162 §2.1.4.1), from the tiles. Same answers
    /// and errors as [`merkle::consistency_proof`] over the leaves.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(ProofError::SizesOutOfOrder { old: old_size, new: new_size });
        }
        let mut proof = Vec::new();
        if old_size != 0 && old_size != new_size {
            self.subproof(old_size, 0, new_size, true, &mut proof)?;
        }
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size {
            return Err(ProofError::TreeSizeTooLarge { tree_size: size, leaves: self.size });
        }
        Ok(())
    }

    /// PATH(m, D[start..end]), appended leaf level first.
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        let len = end - start;
        if len <= 1 {
            return Ok(());
        }
        let k = split_point(len);
        if m < k {
            self.path(m, start, start + k, out)?;
            out.push(self.subtree(start + k, end)?);
        } else {
            self.path(m - k, start + k, end, out)?;
            out.push(self.subtree(start, start + k)?);
        }
        Ok(())
    }

    /// SUBPROOF(m, D[start..end], complete), appended; `0 < m ≤ end − start`.
    fn subproof(&self, m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        let len = end - start;
        if m == len {
            if !complete {
                out.push(self.subtree(start, end)?);
            }
            return Ok(());
        }
        let k = split_point(len);
        if m <= k {
            self.subproof(m, start, start + k, complete, out)?;
            out.push(self.subtree(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            out.push(self.subtree(start, start + k)?);
        }
        Ok(())
    }

    /// MTH over leaves `start..end` (`end` ≤ the reader's size): split at
    /// the largest power of two below the length (RFC 6962 §2.1), down to
    /// aligned complete subtrees, which the tiles hold.
    fn subtree(&self, start: u64, end: u64) -> Result<Hash, ProofError> {
        let len = end - start;
        if len.is_power_of_two() && start.is_multiple_of(len) {
            return self.complete(start, len);
        }
        let split = if len.is_power_of_two() { len / 2 } else { split_point(len) };
        let (left, right) = (self.subtree(start, start + split)?, self.subtree(start + split, end)?);
        if self.tiles.planning() {
            return Ok([0; 32]);
        }
        Ok(merkle::node_hash(&left, &right))
    }

    /// The hash of the aligned complete subtree of `len` (a power of two)
    /// leaves from `start`: `len = 256^k · 2^r` is 2^r hashes of level k,
    /// all in one tile.
    fn complete(&self, start: u64, len: u64) -> Result<Hash, ProofError> {
        let bits = len.trailing_zeros();
        let (level, count) = (bits / TILE_HEIGHT, 1u64 << (bits % TILE_HEIGHT));
        let first = start >> (level * TILE_HEIGHT);
        let id = TileId { level: level as u8, index: first / TILE_WIDTH };
        let missing = ProofError::MissingTile { level: id.level, index: id.index };
        let offset = usize::try_from(first % TILE_WIDTH).map_err(|_| missing.clone())?;
        let count = usize::try_from(count).map_err(|_| missing.clone())?;
        let hashes = self.tiles.tile(id).and_then(|t| t.get(offset..offset + count)).ok_or(missing)?;
        if self.tiles.planning() {
            return Ok([0; 32]);
        }
        Ok(merkle::root(hashes))
    }
}

/// The tiles answering `question` over a tree of `size` leaves reads, in
/// order: what a store fetches before it answers with a [`TileReader`].
/// Depends only on the sizes and indexes `question` asks about.
pub fn plan<R>(size: u64, question: impl FnOnce(&TileReader<'_, dyn TileSource + '_>) -> R) -> Vec<TileId> {
    let planner = Planner::default();
    question(&TileReader::new(&planner as &dyn TileSource, size));
    planner.wanted.into_inner().into_iter().collect()
}

/// A [`TileSource`] that holds every tile (of zero hashes) and notes which
/// were read.
#[derive(Debug, Default)]
struct Planner {
    wanted: RefCell<BTreeSet<TileId>>,
}

/// A full tile of zero hashes, what the planner answers.
static ZERO_TILE: [Hash; TILE_WIDTH as usize] = [[0; 32]; TILE_WIDTH as usize];

impl TileSource for Planner {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        self.wanted.borrow_mut().insert(id);
        Some(&ZERO_TILE)
    }

    fn planning(&self) -> bool {
        true
    }
}

/// The whole tree in memory, by tile level: for tests, benchmarks and tools
/// that hold every leaf anyway. The service reads tiles from its store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileTree {
    levels: Vec<Vec<Hash>>,
}

impl TileTree {
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::default();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf, and the subtree hashes it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0;
        let mut hash = leaf;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(hashes) = self.levels.get_mut(level) else { return };
            hashes.push(hash);
            if !(hashes.len() as u64).is_multiple_of(TILE_WIDTH) {
                return;
            }
            let start = hashes.len() - TILE_WIDTH as usize;
            hash = merkle::root(hashes.get(start..).unwrap_or_default());
            level += 1;
        }
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.leaves().len() as u64
    }

    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// Answers about this tree as it stands.
    pub fn reader(&self) -> TileReader<'_, Self> {
        TileReader::new(self, self.size())
    }

    /// The root of the tree over the first `size` leaves (RFC 6962 MTH).
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        self.reader().root_at(size).ok()
    }

    /// See [`TileReader::inclusion_proof`].
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.reader().inclusion_proof(index, size)
    }

    /// See [`TileReader::consistency_proof`].
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.reader().consistency_proof(old_size, new_size)
    }
}

impl TileSource for TileTree {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        let start = usize::try_from(id.index.checked_mul(TILE_WIDTH)?).ok()?;
        let hashes = self.levels.get(usize::from(id.level))?;
        let end = start.saturating_add(TILE_WIDTH as usize).min(hashes.len());
        hashes.get(start..end).filter(|t| !t.is_empty())
    }
}

/// The largest entry an entry bundle can hold: its length is a `uint16`.
pub const MAX_BUNDLED_ENTRY: usize = u16::MAX as usize;

/// A C2SP entry bundle: each entry prefixed with its length as a big-endian
/// `uint16`. `Err(i)`: entry `i` is longer than [`MAX_BUNDLED_ENTRY`].
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, usize> {
    let mut bundle = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let len = u16::try_from(entry.len()).map_err(|_| i)?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// The entries of a C2SP entry bundle, or `None` if it is cut short.
pub fn bundle_entries(mut bundle: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    while let Some((len, rest)) = bundle.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, rest) = rest.split_at_checked(len)?;
        entries.push(entry);
        bundle = rest;
    }
    bundle.is_empty().then_some(entries)
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 9162
/// splits a tree.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The path element of tile index `n`: 3-digit groups, all but the last
/// prefixed `x` (`1234067` → `x001/x234/067`).
pub fn index_path(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// A tile a client asks for: `<level>/<index path>[.p/<width>]`, or
/// `entries/<index path>[.p/<width>]` (level `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    pub level: Option<u8>,
    pub index: u64,
    /// 1..=256; 256 for a full tile.
    pub width: u64,
}

impl TilePath {
    /// Parses the part of a tile URL after `tile/`; `None` for anything
    /// that is not exactly a C2SP tile path (no leading zeros, no `x` on the
    /// last group, width 1..=255 after `.p/`).
    pub fn parse(path: &str) -> Option<Self> {
        let (path, width) = match path.split_once(".p/") {
            Some((p, w)) => {
                let width: u64 = canonical_decimal(w)?;
                (p, (1..TILE_WIDTH).contains(&width).then_some(width)?)
            }
            None => (path, TILE_WIDTH),
        };
        let (level, rest) = path.split_once('/')?;
        let level = if level == "entries" {
            None
        } else {
            Some(u8::try_from(canonical_decimal(level)?).ok().filter(|l| *l < 64)?)
        };
        let groups: Vec<&str> = rest.split('/').collect();
        let (last, leading) = groups.split_last()?;
        let mut index: u64 = 0;
        for group in leading {
            let digits = group.strip_prefix('x')?;
            index = index.checked_mul(1000)?.checked_add(three_digits(digits)?)?;
        }
        index = index.checked_mul(1000)?.checked_add(three_digits(last)?)?;
        // The shortest spelling only: no leading `x000/` group.
        if leading.first().is_some_and(|g| *g == "x000") {
            return None;
        }
        Some(Self { level, index, width })
    }
}

fn three_digits(text: &str) -> Option<u64> {
    (text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

fn canonical_decimal(text: &str) -> Option<u64> {
    let ok = text == "0" || (!text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    fn leaf(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    #[test]
    fn roots_equal_the_reference_at_every_size() {
        let leaves: Vec<Hash> = (0..70_000).map(leaf).collect();
        let tree = TileTree::from_leaves(leaves.iter().copied());
        for size in [0, 1, 2, 3, 255, 256, 257, 511, 512, 1000, 65_535, 65_536, 65_537, 69_999, 70_000] {
            assert_eq!(tree.root_at(size), Some(merkle::root(&leaves[..size as usize])), "size {size}");
        }
        assert_eq!(tree.root_at(70_001), None);
        // Size 70,000: level 0 has 273 full tiles and a partial of 112,
        // level 1 one full and 17, level 2 one hash (the spec's example).
        let width = |level: u8, index: u64| TileSource::tile(&tree, TileId { level, index }).map(<[Hash]>::len);
        assert_eq!((width(0, 272), width(0, 273), width(0, 274)), (Some(256), Some(112), None));
        assert_eq!((width(1, 0), width(1, 1), width(2, 0)), (Some(256), Some(17), Some(1)));
        let first = |level: u8| TileSource::tile(&tree, TileId { level, index: 0 }).map(|t| t[0]);
        assert_eq!(first(2), Some(merkle::root(&leaves[..65_536])));
        assert_eq!(first(1), Some(merkle::root(&leaves[..256])));
    }

    #[test]
    fn proofs_equal_the_reference() {
        let leaves: Vec<Hash> = (0..1_300).map(leaf).collect();
        let tree = TileTree::from_leaves(leaves.iter().copied());
        let sizes: [u64; 15] = [1, 2, 3, 7, 8, 255, 256, 257, 300, 511, 512, 513, 1_024, 1_299, 1_300];
        for &size in &sizes {
            for index in [0, 1, size / 2, size.saturating_sub(2), size - 1] {
                assert_eq!(
                    tree.inclusion_proof(index, size),
                    merkle::inclusion_proof(&leaves, index, size),
                    "inclusion {index} of {size}"
                );
            }
            for &old in &sizes {
                assert_eq!(
                    tree.consistency_proof(old, size),
                    merkle::consistency_proof(&leaves, old, size),
                    "consistency {old} → {size}"
                );
            }
        }
        assert_eq!(tree.inclusion_proof(5, 5), merkle::inclusion_proof(&leaves, 5, 5));
        assert_eq!(tree.inclusion_proof(0, 1_301), merkle::inclusion_proof(&leaves, 0, 1_301));
        assert_eq!(tree.consistency_proof(0, 10), Ok(Vec::new()));
    }

    #[test]
    fn a_reader_over_the_planned_tiles_answers_as_the_whole_tree() {
        let tree = TileTree::from_leaves((0..70_000).map(leaf));
        let full = tree.reader();
        for (index, size) in [(0, 1), (5, 300), (65_535, 65_536), (12_345, 69_999), (69_999, 70_000)] {
            let tiles = plan(tree.size(), |r| {
                let _ = (r.inclusion_proof(index, size), r.root_at(size), r.leaf(index));
                let _ = r.consistency_proof(index + 1, size);
            });
            // O(log n): a handful of tiles, not the 274 of level 0.
            assert!(tiles.len() <= 12, "{} tiles for {index} of {size}", tiles.len());
            let fetched: HashMap<TileId, Vec<Hash>> =
                tiles.iter().map(|&id| (id, TileSource::tile(&tree, id).unwrap().to_vec())).collect();
            let part = TileReader::new(&fetched as &dyn TileSource, tree.size());
            assert_eq!(part.inclusion_proof(index, size), full.inclusion_proof(index, size));
            assert_eq!(part.root_at(size), full.root_at(size));
            assert_eq!(part.leaf(index), Ok(leaf(index)));
            assert_eq!(part.consistency_proof(index + 1, size), full.consistency_proof(index + 1, size));
        }
    }

    #[test]
    fn a_missing_or_short_tile_is_named() {
        let tree = TileTree::from_leaves((0..600).map(leaf));
        let mut fetched: HashMap<TileId, Vec<Hash>> = HashMap::new();
        let reader = TileReader::new(&fetched, 600);
        assert_eq!(reader.leaf(300), Err(ProofError::MissingTile { level: 0, index: 1 }));
        let tile = TileSource::tile(&tree, TileId { level: 0, index: 1 }).unwrap();
        fetched.insert(TileId { level: 0, index: 1 }, tile[..10].to_vec());
        let reader = TileReader::new(&fetched, 600);
        assert_eq!(reader.leaf(265), Ok(leaf(265)));
        assert_eq!(reader.leaf(300), Err(ProofError::MissingTile { level: 0, index: 1 }));
    }

    #[test]
    fn entry_bundles_are_length_prefixed() {
        let bundle = entry_bundle([&b"ab"[..], b""]).unwrap();
        assert_eq!(bundle, [0, 2, b'a', b'b', 0, 0]);
        assert_eq!(bundle_entries(&bundle), Some(vec![&b"ab"[..], b""]));
        assert_eq!(bundle_entries(&bundle[..5]), None);
        assert_eq!(bundle_entries(&bundle[..1]), None);
        let big = vec![7u8; MAX_BUNDLED_ENTRY + 1];
        assert_eq!(entry_bundle([&b"ok"[..], &big]), Err(1));
        let largest = vec![7u8; MAX_BUNDLED_ENTRY];
        assert_eq!(bundle_entries(&entry_bundle([&largest[..]]).unwrap()), Some(vec![&largest[..]]));
    }

    #[test]
    fn tile_paths_are_c2sp_paths() {
        for (n, path) in [
            (0, "000"),
            (5, "005"),
            (999, "999"),
            (1000, "x001/000"),
            (1_234_067, "x001/x234/067"),
            (123_456_789, "x123/x456/789"),
        ] {
            assert_eq!(index_path(n), path);
            assert_eq!(TilePath::parse(&format!("0/{path}")), Some(TilePath { level: Some(0), index: n, width: 256 }));
        }
        assert_eq!(TilePath::parse("entries/x001/234.p/17"), Some(TilePath { level: None, index: 1234, width: 17 }));
        assert_eq!(TilePath::parse("2/000.p/1"), Some(TilePath { level: Some(2), index: 0, width: 1 }));
        for bad in [
            "0/5",
            "0/0005",
            "0/x001",
            "0/001/000",
            "0/x000/001",
            "00/000",
            "64/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/017",
            "x/000",
            "0/000/",
        ] {
            assert_eq!(TilePath::parse(bad), None, "{bad}");
        }
    }
}
