//! The RFC 9162 (Certificate Transparency 2.0, §2.1) Merkle tree over the
//! log, with RFC 6962 hashing: leaf = `SHA-256(0x00 ‖ data)`, node =
//! `SHA-256(0x01 ‖ left ‖ right)`, empty tree = `SHA-256("")`.
//!
//! The chain alone cannot show that the newest records were cut off; a tree
//! head kept by an auditor can, through consistency proofs. For the log the
//! leaf data is each record's 32-byte MAC.
//!
//! Everything works from a slice of leaf hashes, the shape a store returns,
//! and any prefix of it (`tree_size ≤ leaves.len()`), so proofs against an
//! old checkpoint come from the same slice. Generation is O(n) hashes; the
//! verifiers are independent of it and follow the RFC's algorithms step by
//! step (§2.1.3.2 and §2.1.4.2).

use sha2::{Digest as _, Sha256};

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// Why a proof could not be produced or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("tree size {tree_size} exceeds the {leaves} leaves available")]
    TreeSizeTooLarge { tree_size: u64, leaves: u64 },
    #[error("leaf index {index} is not below tree size {tree_size}")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    #[error("the proof is empty but the trees differ in size")]
    EmptyProof,
    #[error("the proof must be empty for these tree sizes")]
    UnexpectedProof,
    #[error("the proof has more hashes than the tree sizes allow")]
    ProofTooLong,
    #[error("the proof has fewer hashes than the tree sizes need")]
    ProofTooShort,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("the proof does not lead to the old root")]
    OldRootMismatch,
    #[error("the proof does not lead to the new root")]
    NewRootMismatch,
    /// The tree's own storage lacks a tile it should hold (damage, not bad
    /// input).
    #[error("tile {level}/{index} of the tree is missing or short")]
    MissingTile { level: u8, index: u64 },
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([0x00]).chain_update(data).finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([0x01]).chain_update(left).chain_update(right).finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// MTH(D[n]): the root of the tree over all of `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        _ => mth(leaves),
    }
}

/// The root of the tree over the first `tree_size` leaves: an older head.
pub fn root_at(leaves: &[Hash], tree_size: u64) -> Result<Hash, ProofError> {
    Ok(root(prefix(leaves, tree_size)?))
}

/// PATH(index, D[tree_size]) (RFC 9162 §2.1.3.1): the audit path proving
/// leaf `index` is in the tree over the first `tree_size` leaves, leaf level
/// first.
pub fn inclusion_proof(leaves: &[Hash], index: u64, tree_size: u64) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaves, tree_size)?;
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let index = to_usize(index, tree_size, leaves)?;
    let mut proof = Vec::with_capacity(depth(tree.len()));
    path(index, tree, &mut proof);
    Ok(proof)
}

/// PROOF(m, D[n]) (RFC 9162 §2.1.4.1): the proof that the tree of the first
/// `old_size` leaves is a prefix of the tree of the first `new_size`. Empty
/// when `old_size` is 0 or equals `new_size`: nothing needs proving.
pub fn consistency_proof(leaves: &[Hash], old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaves, new_size)?;
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old: old_size, new: new_size });
    }
    let mut proof = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(proof);
    }
    let old = to_usize(old_size, new_size, leaves)?;
    subproof(old, tree, true, &mut proof);
    Ok(proof)
}

/// RFC 9162 §2.1.3.2: verifies that `leaf_hash` is leaf `index` of the tree
/// of size `tree_size` whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. leaf_index must be below tree_size.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    // 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = *leaf_hash;
    // 4. For each p in the path:
    for p in proof {
        // a. sn == 0: the path is longer than the tree is deep.
        if snode == 0 {
            return Err(ProofError::ProofTooLong);
        }
        // b. A right child, or the last node of its level: p is on the left.
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // ii. Skip the levels where this node has no right sibling.
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // c. One level up.
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. sn must be 0 and r the root.
    if snode != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree of size `old_size` with root
/// `old_root` is a prefix of the tree of size `new_size` with root
/// `new_root`.
///
/// The RFC's algorithm covers `0 < old_size < new_size`; the edges follow
/// from the definitions: a tree is consistent with itself (equal roots, empty
/// proof) and every tree extends the empty one (empty proof).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old: old_size, new: new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::UnexpectedProof);
        }
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if old_size == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::UnexpectedProof) };
    }

    // 1. An empty path fails.
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::EmptyProof);
    };
    // 2. If first is an exact power of 2, prepend first_hash to the path.
    let (seed, path): (&Hash, &[Hash]) = if old_size.is_power_of_two() { (old_root, proof) } else { (first, rest) };
    // 3. fn = first - 1, sn = second - 1.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    // 4. If LSB(fn) is set, right-shift fn and sn until it is not.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. fr = sr = the first value of the path.
    let (mut fr, mut sr) = (*seed, *seed);
    // 6. For each subsequent value c:
    for c in path {
        // a. sn == 0: more hashes than the new tree is deep.
        if snode == 0 {
            return Err(ProofError::ProofTooLong);
        }
        // b. c is a left sibling for both trees, or a right one for the new tree only.
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // iii. Skip the levels where the old tree's node has no right sibling.
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // c. One level up.
        fnode >>= 1;
        snode >>= 1;
    }
    // 7. fr must be first_hash, sr second_hash, and sn 0.
    if snode != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The first `tree_size` leaves, or why there are not that many.
fn prefix(leaves: &[Hash], tree_size: u64) -> Result<&[Hash], ProofError> {
    let too_large = || ProofError::TreeSizeTooLarge { tree_size, leaves: leaves.len() as u64 };
    let n = usize::try_from(tree_size).map_err(|_| too_large())?;
    leaves.get(..n).ok_or_else(too_large)
}

/// `value` (already checked to be ≤ `tree_size` ≤ `leaves.len()`) as usize.
fn to_usize(value: u64, tree_size: u64, leaves: &[Hash]) -> Result<usize, ProofError> {
    usize::try_from(value).map_err(|_| ProofError::TreeSizeTooLarge { tree_size, leaves: leaves.len() as u64 })
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 9162
/// splits a tree.
fn split_point(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The number of levels above the leaves of a tree of `n` leaves.
fn depth(n: usize) -> usize {
    match n {
        0 | 1 => 0,
        _ => (usize::BITS - (n - 1).leading_zeros()) as usize,
    }
}

/// MTH over a non-empty run of leaves.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            // INVARIANT: 0 < k < len, so both halves are non-empty.
            let (left, right) = leaves.split_at(split_point(leaves.len()));
            node_hash(&mth(left), &mth(right))
        }
    }
}

/// PATH(m, D[n]), appended to `out` leaf level first.
fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len());
    // INVARIANT: 0 < k < len.
    let (left, right) = leaves.split_at(k);
    if m < k {
        path(m, left, out);
        out.push(mth(right));
    } else {
        path(m - k, right, out);
        out.push(mth(left));
    }
}

/// SUBPROOF(m, D[n], complete), appended to `out`; `0 < m ≤ n`.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    if m == leaves.len() {
        if !complete {
            out.push(mth(leaves));
        }
        return;
    }
    let k = split_point(leaves.len());
    // INVARIANT: m < n, so n ≥ 2 and 0 < k < n.
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(m, left, complete, out);
        out.push(mth(right));
    } else {
        subproof(m - k, right, false, out);
        out.push(mth(left));
    }
}
