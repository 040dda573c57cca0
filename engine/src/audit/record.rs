//! One audit record: the fixed field names (docs/audit.md#records). The
//! canonical bytes its MAC covers are written by `canonical`, which reads
//! this module (never the other way round).
//!
//! The canonical form is RFC 8785 (JCS) JSON of the record without `mac`, so
//! an auditor can recompute it in any language with an off-the-shelf JCS
//! library. JCS writes numbers as IEEE doubles, which is why `seq` must stay
//! below 2^53 ([`MAX_SEQ`]).

use std::fmt;
use std::str::FromStr;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::kind::{Kind, UnknownKind};

/// The largest `seq` whose JCS encoding (an IEEE double) is still exact.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// A 32-byte HMAC-SHA256 tag, written as 64 lowercase hex digits in records.
///
/// Equality here is ordinary, not constant-time: it compares `prev_mac`
/// links and roots, which are public. Checking a MAC against a key goes
/// through the keyring, which compares in constant time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 32]);

impl Mac {
    /// The `prev_mac` of record 1: 32 zero bytes.
    pub const ZERO: Self = Self([0; 32]);

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as stored in `prev_mac` and `mac`. Written through
    /// [`hex_bytes`](Self::hex_bytes): `hex::encode` collects a `String`
    /// one `char` at a time, twice per record on the writer's path.
    pub fn to_hex(&self) -> String {
        // INVARIANT: hex digits are ASCII, so the bytes are UTF-8.
        String::from_utf8(self.hex_bytes().to_vec()).unwrap_or_default()
    }

    /// [`to_hex`](Self::to_hex) without allocating.
    pub(crate) fn hex_bytes(&self) -> [u8; 64] {
        let mut hex = [0u8; 64];
        // INVARIANT: 64 bytes is exactly the hex length of 32 bytes.
        let _ = hex::encode_to_slice(self.0, &mut hex);
        hex
    }

    /// Parses exactly 64 lowercase hex digits. Uppercase is refused so that a
    /// tag has one spelling: the canonical bytes contain `prev_mac` as text.
    pub fn from_hex(text: &str) -> Result<Self, MacParseError> {
        if text.len() != 64 {
            return Err(MacParseError::Length(text.len()));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0; 32];
        for (out, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
                return Err(MacParseError::NotLowercaseHex);
            };
            match (digit(hi), digit(lo)) {
                (Some(h), Some(l)) => *out = h << 4 | l,
                _ => return Err(MacParseError::NotLowercaseHex),
            }
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({})", self.to_hex())
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// Why a text is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacParseError {
    #[error("expected 64 hex digits, found {0} characters")]
    Length(usize),
    #[error("expected lowercase hex digits")]
    NotLowercaseHex,
}

/// The `decision` field: what was decided about a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
}

impl Outcome {
    /// The `decision` field's text, as serde writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// An event to be sealed: every record field except `key_id`, `prev_mac` and
/// `mac`, which sealing fills in.
///
/// The caller gives `seq` (its store makes it gap-free) and `ts` (the engine
/// has no clock). Values should already be redacted: a record is immutable
/// once sealed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339, UTC (`Z` or a zero offset).
    pub ts: String,
    /// A [`Kind`]'s text for every record warrant makes (`Entry::new` takes
    /// one); text, because the record format allows any non-empty kind and a
    /// record read back keeps what was stored ([`Record::entry`]).
    pub kind: String,
    /// Who caused the event.
    pub actor: String,
    pub token_id: Option<String>,
    pub token_owner: Option<String>,
    pub connection: Option<String>,
    pub project: Option<String>,
    pub decision: Option<Outcome>,
    pub reasons: Option<Vec<String>>,
    /// `sha256:<hex>` of the policy bundle active for a decision.
    pub policy_digest: Option<String>,
    pub details: Map<String, Value>,
}

impl Entry {
    /// An entry with the required fields set, optional ones absent and empty
    /// `details`.
    pub fn new(seq: u64, ts: impl Into<String>, kind: impl Into<String>, actor: impl Into<String>) -> Self {
        Self { seq, ts: ts.into(), kind: kind.into(), actor: actor.into(), ..Self::default() }
    }
}

/// One sealed record, exactly as stored and exported (one JSON object per
/// line). Optional fields are absent, never `null`, when unset.
///
/// Fields are public because a record is data read back from a store or an
/// export; whether it is genuine is what the chain's verification decides,
/// never its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    pub ts: String,
    /// The stored text, known [`Kind`] or not: a record of a kind this build
    /// does not write is still read, exported and verified.
    pub kind: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    pub details: Map<String, Value>,
    /// Which keyring key signed this record.
    pub key_id: String,
    /// The previous record's `mac` (64 lowercase hex digits); zeros for seq 1.
    pub prev_mac: String,
    pub mac: String,
}

impl Record {
    /// The record's kind, if it is one warrant writes.
    pub fn known_kind(&self) -> Result<Kind, UnknownKind> {
        self.kind.parse()
    }

    /// The record's `mac`, parsed.
    pub fn mac(&self) -> Result<Mac, MacParseError> {
        Mac::from_hex(&self.mac)
    }

    /// The record's `prev_mac`, parsed.
    pub fn prev_mac(&self) -> Result<Mac, MacParseError> {
        Mac::from_hex(&self.prev_mac)
    }

    /// The event fields, without the seal.
    pub fn entry(&self) -> Entry {
        Entry {
            seq: self.seq,
            ts: self.ts.clone(),
            kind: self.kind.clone(),
            actor: self.actor.clone(),
            token_id: self.token_id.clone(),
            token_owner: self.token_owner.clone(),
            connection: self.connection.clone(),
            project: self.project.clone(),
            decision: self.decision,
            reasons: self.reasons.clone(),
            policy_digest: self.policy_digest.clone(),
            details: self.details.clone(),
        }
    }

    /// The record an entry becomes, before its MAC is known (`mac` empty).
    pub(crate) fn unsealed(entry: Entry, key_id: String, prev_mac: &Mac) -> Self {
        Self {
            seq: entry.seq,
            ts: entry.ts,
            kind: entry.kind,
            actor: entry.actor,
            token_id: entry.token_id,
            token_owner: entry.token_owner,
            connection: entry.connection,
            project: entry.project,
            decision: entry.decision,
            reasons: entry.reasons,
            policy_digest: entry.policy_digest,
            details: entry.details,
            key_id,
            prev_mac: prev_mac.to_hex(),
            mac: String::new(),
        }
    }
}

/// Why an entry or a checkpoint could not be sealed. Each is a caller bug:
/// the store must not write anything it could not seal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("seq {0} is outside 1..=2^53-1")]
    SeqOutOfRange(u64),
    #[error("tree size {0} is above 2^53-1")]
    TreeSizeOutOfRange(u64),
    #[error("`{ts}` is not an RFC 3339 UTC timestamp: {message}")]
    InvalidTimestamp { ts: String, message: String },
    #[error("`{0}` must not be empty")]
    EmptyField(&'static str),
    #[error("cannot canonicalize: {0}")]
    Canonical(String),
    #[error("the current audit key `{key_id}` does not sign seq {seq} (see its `from=` in the key file)")]
    KeyOutOfRange { key_id: String, seq: u64 },
}

/// Checks that `ts` is RFC 3339 with a zero UTC offset.
pub(crate) fn check_timestamp(ts: &str) -> Result<(), SealError> {
    let invalid = |message: String| SealError::InvalidTimestamp { ts: ts.to_owned(), message };
    let parsed = DateTime::parse_from_rfc3339(ts).map_err(|e| invalid(e.to_string()))?;
    if parsed.offset().local_minus_utc() != 0 {
        return Err(invalid("the offset is not UTC".to_owned()));
    }
    Ok(())
}

/// The checks sealing makes on an entry's own fields.
pub(crate) fn check_entry(entry: &Entry) -> Result<(), SealError> {
    if entry.seq == 0 || entry.seq > MAX_SEQ {
        return Err(SealError::SeqOutOfRange(entry.seq));
    }
    check_timestamp(&entry.ts)?;
    if entry.kind.is_empty() {
        return Err(SealError::EmptyField("kind"));
    }
    if entry.actor.is_empty() {
        return Err(SealError::EmptyField("actor"));
    }
    Ok(())
}
