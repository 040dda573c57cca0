//! The audit log's pure core: records, their canonical form, the keyed chain
//! that links them, the RFC 9162 Merkle tree over them and signed checkpoints.
//!
//! Auditors must be able to trust the log without trusting the server that
//! wrote it, so every piece here is deterministic and independently
//! re-implementable:
//!
//! - [`kind`]: the kinds of record warrant writes, and their stored text.
//! - [`record`]: one event and its fixed field names.
//! - [`canonical`]: its RFC 8785 (JCS) canonical bytes, written directly;
//!   records as stores hold them; entries prepared for sealing away from
//!   the single writer.
//! - [`keyring`]: the HMAC keys, by id, and which one signs new records.
//! - [`chain`]: `mac_n = HMAC-SHA256(key[key_id], prev_mac ‖ canonical(record_n without mac))`;
//!   sealing a record and verifying a run of records, naming the first bad `seq`.
//! - [`merkle`]: RFC 9162 tree heads, inclusion and consistency proofs, so
//!   cutting off the newest records is detectable too.
//! - [`checkpoint`]: an HMAC-signed tree head an auditor keeps (the key
//!   holder's check).
//! - [`note`]: C2SP signed notes with Ed25519 keys, checkable by anyone.
//! - [`log_checkpoint`]: the C2SP checkpoint text a note signs.
//! - [`cosignature`]: witnesses' timestamped cosignatures on checkpoints
//!   (`c2sp.org/tlog-cosignature`), and the quorum a client requires.
//! - [`witness`]: the witness side of `add-checkpoint`
//!   (`c2sp.org/tlog-witness`): the request, the decision and its refusals.
//! - [`overview`]: a window's decisions over time, deny reasons, token
//!   events per connection and rule failures, folded from grouped counts.
//! - [`proof_file`]: a record, its inclusion proof and a signed checkpoint
//!   in one file (`c2sp.org/tlog-proof`), checked offline.
//! - [`tiles`]: the tree as C2SP tiles: roots and proofs from O(log n)
//!   tiles, and which tiles a question needs.
//! - [`tile_edge`]: the tree's right edge, which an append grows: the tiles
//!   each batch changes, for a store to write with the records.
//!
//! Nothing here does I/O or reads a clock: timestamps come from the caller.

pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod cosignature;
pub mod keyring;
pub mod kind;
pub mod log_checkpoint;
pub mod merkle;
pub mod note;
pub mod overview;
pub mod proof_file;
pub mod record;
pub mod tile_edge;
pub mod tiles;
pub mod witness;

pub use canonical::{Columns, Prepared, Seal, Sealer, StoredRecord};
pub use chain::{BreakReason, ChainBreak, ChainStart, ChainVerifier, VerifiedSummary, seal, verify_chain};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use cosignature::{CosignatureError, CosignatureVerifier, Cosigned, CosignerKey};
pub use keyring::{Keyring, KeyringError, MIN_SECRET_LEN};
pub use kind::{Kind, UnknownKind};
pub use log_checkpoint::{LogCheckpoint, LogCheckpointError};
pub use merkle::{Hash, ProofError};
pub use note::{Note, NoteError, NoteSignature, NoteSigner, NoteVerifier};
pub use proof_file::{ProofFile, ProofFileError};
pub use record::{Entry, MAX_SEQ, Mac, MacParseError, Outcome, Record, SealError};
pub use tile_edge::TileEdge;
pub use tiles::{TileId, TilePath, TileReader, TileSource, TileTree};
pub use witness::{AddCheckpoint, FollowedLog, Refusal};
