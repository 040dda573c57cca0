//! Checkpoints: signed Merkle tree heads `{tree_size, root, ts, key_id, mac}`.
//!
//! An auditor who keeps one can later ask for a consistency proof from it to
//! the current head, and so detect the log being rewritten or cut since.
//! `mac = HMAC-SHA256(key[key_id], JCS({tree_size, root, ts, key_id}))`.
//!
//! No domain prefix is needed to keep checkpoint and record MACs apart: a
//! record's MAC input starts with 32 bytes of `prev_mac` (zeros or an HMAC
//! output), a checkpoint's with the JCS text `{"key_id":`.

use serde::{Deserialize, Serialize};

use super::keyring::{Keyring, MacCheck};
use super::merkle::Hash;
use super::record::{MAX_SEQ, Mac, MacParseError, SealError, check_timestamp};

/// A signed tree head, as published and kept by auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Leaves covered: records seq 1..=tree_size.
    pub tree_size: u64,
    /// RFC 9162 root over those records' leaf hashes, 64 lowercase hex digits.
    pub root: String,
    /// When it was signed, RFC 3339 UTC.
    pub ts: String,
    pub key_id: String,
    pub mac: String,
}

/// The signed fields, in the form the MAC covers.
#[derive(Serialize)]
struct Unsigned<'a> {
    tree_size: u64,
    root: &'a str,
    ts: &'a str,
    key_id: &'a str,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("unknown key id `{0}`")]
    UnknownKey(String),
    #[error("mac does not match the checkpoint's contents")]
    MacMismatch,
    #[error("malformed `{field}`: {message}")]
    Malformed { field: &'static str, message: String },
}

impl Checkpoint {
    /// Signs the head of a tree of `tree_size` leaves with root `root`, at
    /// `ts`, with the keyring's current key.
    pub fn sign(tree_size: u64, root: &Hash, ts: &str, keyring: &Keyring) -> Result<Self, SealError> {
        if tree_size > MAX_SEQ {
            return Err(SealError::TreeSizeOutOfRange(tree_size));
        }
        check_timestamp(ts)?;
        let mut checkpoint = Self {
            tree_size,
            root: hex::encode(root),
            ts: ts.to_owned(),
            key_id: keyring.current_key_id().to_owned(),
            mac: String::new(),
        };
        let (_, mac) = keyring.sign(&[&checkpoint.canonical_bytes()?]);
        checkpoint.mac = mac.to_hex();
        Ok(checkpoint)
    }

    /// Checks the MAC (in constant time) and the shape of `root`.
    pub fn verify(&self, keyring: &Keyring) -> Result<(), CheckpointError> {
        let mac = Mac::from_hex(&self.mac).map_err(|e| malformed("mac", &e))?;
        self.root_hash()?;
        let canonical = self
            .canonical_bytes()
            .map_err(|e| CheckpointError::Malformed { field: "checkpoint", message: e.to_string() })?;
        match keyring.check(&self.key_id, &[&canonical], &mac) {
            Ok(()) => Ok(()),
            Err(MacCheck::UnknownKey) => Err(CheckpointError::UnknownKey(self.key_id.clone())),
            Err(MacCheck::Mismatch | MacCheck::OutOfRange(..)) => Err(CheckpointError::MacMismatch),
        }
    }

    /// The root, parsed: what inclusion and consistency proofs verify against.
    pub fn root_hash(&self) -> Result<Hash, CheckpointError> {
        Mac::from_hex(&self.root).map(|m| *m.as_bytes()).map_err(|e| malformed("root", &e))
    }

    /// RFC 8785 (JCS) bytes of every field but `mac`.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, SealError> {
        let unsigned = Unsigned { tree_size: self.tree_size, root: &self.root, ts: &self.ts, key_id: &self.key_id };
        serde_json_canonicalizer::to_vec(&unsigned).map_err(|e| SealError::Canonical(e.to_string()))
    }
}

fn malformed(field: &'static str, e: &MacParseError) -> CheckpointError {
    CheckpointError::Malformed { field, message: e.to_string() }
}
