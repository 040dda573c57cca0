//! The canonical bytes of a record, written directly instead of through a
//! generic JCS serializer.
//!
//! A record's JCS form is one flat object with fixed key names, so its key
//! order is fixed too; `write_fields` is the one place it is written.
//!
//! Every value is a string, a string array, `seq` (an integer below 2^53,
//! which JCS writes as plain digits) or `details`. Only `details` needs a
//! real JCS serializer (key sorting, ECMAScript number formatting); it is
//! canonicalized once, on the caller's side ([`Prepared`]), and spliced in
//! as text. Four fields depend on the record's place in the chain (`seq`,
//! `ts`, `key_id`, `prev_mac`); a [`Prepared`] entry holds the rest already
//! rendered, so the single writer only splices those four and computes the
//! HMAC.
//!
//! The output is byte-identical to `serde_json_canonicalizer` over the whole
//! record (`engine/tests/engine/canonical.rs` checks it over generated records).

use std::sync::Arc;

use serde_json::{Map, Value};

use sha2::{Digest as _, Sha256};

use super::keyring::Keyring;
use super::merkle::{self, Hash};
use super::record::{Entry, MAX_SEQ, Mac, Outcome, Record, SealError, check_timestamp};

/// Appends `s` as a JCS string literal: ECMAScript `JSON.stringify`, i.e.
/// `"` and `\` escaped, the two-character escapes for U+0008, U+0009,
/// U+000A, U+000C and U+000D, `\u00xx` (lowercase hex) for the other
/// control characters below U+0020, everything else as its UTF-8 bytes.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most text needs no escape: skip clean 16-byte blocks with a test
    // without early exits, which the compiler vectorizes.
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let clean =
        bytes.chunks_exact(16).take_while(|block| !block.iter().fold(false, |any, &b| any | needs_escape(b))).count();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean * 16) {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0a => b'n',
            0x0c => b'f',
            0x0d => b'r',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        start = i + 1;
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'));
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// RFC 8785 (JCS) text of a `details` object: what is stored, and spliced
/// into the record's canonical bytes.
///
/// Written directly, like the record around it: every decision record's
/// details pass here, and the generic serializer buffered each object to
/// sort it (about a twentieth of the audited decision path's CPU). Keys
/// sort by their UTF-16 code units, as JCS asks; an integer of at most
/// 2^53 in magnitude is its digits; any other number (a fraction, or an
/// integer a double cannot hold) is left to `serde_json_canonicalizer` for
/// ECMAScript's number formatting. `engine/tests/engine/canonical.rs`
/// compares the two over generated details.
pub fn details_json(details: &Map<String, Value>) -> Result<String, SealError> {
    let mut out = Vec::with_capacity(256);
    push_object(&mut out, details)?;
    // INVARIANT: built from `str`s, JSON punctuation and number text.
    String::from_utf8(out).map_err(|e| SealError::Canonical(e.to_string()))
}

fn push_value(out: &mut Vec<u8>, value: &Value) -> Result<(), SealError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => push_number(out, n)?,
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => push_object(out, map)?,
    }
    Ok(())
}

fn push_object(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), SealError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|(a, _), (b, _)| utf16_order(a, b));
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, key);
        out.push(b':');
        push_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// JCS's key order: by UTF-16 code units (which differs from UTF-8 byte
/// order only between characters above U+FFFF and U+E000..U+FFFF).
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() { a.cmp(b) } else { a.encode_utf16().cmp(b.encode_utf16()) }
}

/// Integers a double holds exactly are their digits in ECMAScript too.
fn push_number(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), SealError> {
    use std::io::Write as _;
    const EXACT: u64 = 1 << 53;
    // Writing to a `Vec` cannot fail.
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) if i.unsigned_abs() <= EXACT => drop(write!(out, "{i}")),
        (_, Some(u)) if u <= EXACT => drop(write!(out, "{u}")),
        _ => {
            let text = serde_json_canonicalizer::to_string(n).map_err(|e| SealError::Canonical(e.to_string()))?;
            out.extend_from_slice(text.as_bytes());
        }
    }
    Ok(())
}

/// JCS text of a `reasons` array (strings only, so no serializer needed).
pub fn reasons_json(reasons: &[String]) -> String {
    let mut out = Vec::with_capacity(2 + reasons.iter().map(|r| r.len() + 3).sum::<usize>());
    out.push(b'[');
    for (i, r) in reasons.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(&mut out, r);
    }
    out.push(b']');
    // INVARIANT: built from `str`s and ASCII punctuation only.
    String::from_utf8(out).unwrap_or_default()
}

/// `"name":"value",`
fn field(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.extend_from_slice(name);
    push_str(out, value);
    out.push(b',');
}

fn optional(out: &mut Vec<u8>, name: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        field(out, name, v);
    }
}

/// `"name":<json>,` for text that is already JCS (or, when verifying, the
/// stored text: if it is not the canonical text, the MAC will not match).
fn raw(out: &mut Vec<u8>, name: &[u8], json: Option<&str>) {
    if let Some(j) = json {
        out.extend_from_slice(name);
        out.extend_from_slice(j.as_bytes());
        out.push(b',');
    }
}

fn push_seq(out: &mut Vec<u8>, seq: u64) -> Result<(), SealError> {
    // Above 2^53 JCS would write a rounded double: no genuine record has
    // such a `seq` (sealing refuses it), so refuse rather than round.
    if seq > MAX_SEQ {
        return Err(SealError::SeqOutOfRange(seq));
    }
    out.extend_from_slice(b"\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b',');
    Ok(())
}

/// A record as a store holds it, borrowed from the row: `decision` as its
/// text, `reasons` and `details` as their stored JSON text. Verifying this
/// form splices the stored JSON into the canonical bytes instead of parsing
/// and re-canonicalizing it; it is also what the canonical writer reads
/// (with JCS text in `details`/`reasons`, `mac` not written).
#[derive(Debug, Clone, Copy)]
pub struct StoredRecord<'a> {
    pub seq: u64,
    pub ts: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub token_id: Option<&'a str>,
    pub token_owner: Option<&'a str>,
    pub connection: Option<&'a str>,
    pub project: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub reasons: Option<&'a str>,
    pub policy_digest: Option<&'a str>,
    pub details: &'a str,
    pub key_id: &'a str,
    pub prev_mac: &'a str,
    pub mac: &'a str,
}

impl<'a> StoredRecord<'a> {
    /// `record` as the canonical writer takes it, with `details` and
    /// `reasons` given as JCS text.
    fn of(record: &'a Record, details_json: &'a str, reasons_json: Option<&'a str>) -> Self {
        Self {
            seq: record.seq,
            ts: &record.ts,
            kind: &record.kind,
            actor: &record.actor,
            token_id: record.token_id.as_deref(),
            token_owner: record.token_owner.as_deref(),
            connection: record.connection.as_deref(),
            project: record.project.as_deref(),
            decision: record.decision.map(Outcome::as_str),
            reasons: reasons_json,
            policy_digest: record.policy_digest.as_deref(),
            details: details_json,
            key_id: &record.key_id,
            prev_mac: &record.prev_mac,
            mac: &record.mac,
        }
    }

    /// The same record with other `details` and `reasons` text.
    pub fn with_text(&self, details: &'a str, reasons: Option<&'a str>) -> Self {
        Self { details, reasons, ..*self }
    }

    /// The stored `details` and `reasons` parsed and re-canonicalized:
    /// `None` if either is not the JSON a record holds.
    pub fn recanonicalized(&self) -> Option<(String, Option<String>)> {
        let details = match serde_json::from_str::<Value>(self.details) {
            Ok(Value::Object(map)) => details_json(&map).ok()?,
            _ => return None,
        };
        let reasons = match self.reasons {
            Some(text) => Some(reasons_json(&serde_json::from_str::<Vec<String>>(text).ok()?)),
            None => None,
        };
        Some((details, reasons))
    }

    fn own(&self) -> Own<'a> {
        Own {
            actor: self.actor,
            connection: self.connection,
            decision: self.decision,
            details: self.details,
            kind: self.kind,
            policy_digest: self.policy_digest,
            project: self.project,
            reasons: self.reasons,
            token_id: self.token_id,
            token_owner: self.token_owner,
        }
    }

    fn placed(&self) -> Placed<'a> {
        Placed { key_id: self.key_id, mac: Some(self.mac), prev_mac: self.prev_mac, seq: self.seq, ts: self.ts }
    }

    /// The record's entry: its canonical bytes with `mac`, exactly as
    /// `details` and `reasons` are stored (see [`StoredRecord::recanonicalized`]
    /// for records stored before canonical text).
    pub fn entry_bytes(&self) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(512 + self.details.len());
        write_fields(&mut out, &self.own(), |out, slot| self.placed().write(out, slot))?;
        Ok(out)
    }

    /// The record's Merkle leaf, `SHA-256(0x00 ‖ entry)`.
    pub fn leaf_hash(&self) -> Result<Hash, SealError> {
        Ok(merkle::leaf_hash(&self.entry_bytes()?))
    }
}

impl Record {
    /// RFC 8785 (JCS) bytes of this record without `mac`: the message its
    /// MAC covers, after the 32 bytes of `prev_mac`. Defined here, beside
    /// the one writer of canonical bytes, so that `record` needs none of it.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, SealError> {
        let details = details_json(&self.details)?;
        let reasons = self.reasons.as_deref().map(reasons_json);
        let mut out = Vec::with_capacity(256 + details.len());
        write(&mut out, &StoredRecord::of(self, &details, reasons.as_deref()))?;
        Ok(out)
    }

    /// The record's entry: RFC 8785 (JCS) bytes of the whole record, `mac`
    /// included, as an auditor gets it from the API. Its Merkle leaf is
    /// `SHA-256(0x00 ‖ entry)`: checkable with no secret.
    pub fn entry_bytes(&self) -> Result<Vec<u8>, SealError> {
        let details = details_json(&self.details)?;
        let reasons = self.reasons.as_deref().map(reasons_json);
        StoredRecord::of(self, &details, reasons.as_deref()).entry_bytes()
    }

    /// The record's Merkle leaf hash, `SHA-256(0x00 ‖ entry)`.
    pub fn leaf_hash(&self) -> Result<Hash, SealError> {
        Ok(merkle::leaf_hash(&self.entry_bytes()?))
    }
}

/// The fields an entry brings itself, as canonical text: `details` and
/// `reasons` as JCS text, `decision` as its string.
struct Own<'a> {
    actor: &'a str,
    connection: Option<&'a str>,
    decision: Option<&'a str>,
    details: &'a str,
    kind: &'a str,
    policy_digest: Option<&'a str>,
    project: Option<&'a str>,
    reasons: Option<&'a str>,
    token_id: Option<&'a str>,
    token_owner: Option<&'a str>,
}

/// The fields that depend on a record's place in the chain: the single
/// writer assigns them, everything else is the entry's own. `mac` is
/// written only into the entry (the MAC input cannot hold its own MAC).
struct Placed<'a> {
    key_id: &'a str,
    mac: Option<&'a str>,
    prev_mac: &'a str,
    seq: u64,
    ts: &'a str,
}

/// Which of the [`Placed`] fields goes at a spot in the canonical bytes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    KeyId,
    /// Where `mac` goes in the entry (the MAC input has none).
    Mac,
    PrevMac,
    Seq,
    Ts,
}

impl Placed<'_> {
    /// Writes the field `slot` names. `ts` is the last key: no comma follows it.
    fn write(&self, out: &mut Vec<u8>, slot: Slot) -> Result<(), SealError> {
        match slot {
            Slot::KeyId => field(out, b"\"key_id\":", self.key_id),
            Slot::Mac => optional(out, b"\"mac\":", self.mac),
            Slot::PrevMac => field(out, b"\"prev_mac\":", self.prev_mac),
            Slot::Seq => push_seq(out, self.seq)?,
            Slot::Ts => {
                out.extend_from_slice(b"\"ts\":");
                push_str(out, self.ts);
            }
        }
        Ok(())
    }
}

/// Writes a record's canonical bytes, every key in JCS order (RFC 8785
/// sorts by UTF-16 code units; every key is ASCII): the one place that
/// order is written. At each of the five chain-dependent fields it calls
/// `slot`, which writes that field or, for a [`Prepared`] entry, marks
/// where it goes.
fn write_fields(
    out: &mut Vec<u8>,
    own: &Own<'_>,
    mut slot: impl FnMut(&mut Vec<u8>, Slot) -> Result<(), SealError>,
) -> Result<(), SealError> {
    out.push(b'{');
    field(out, b"\"actor\":", own.actor);
    optional(out, b"\"connection\":", own.connection);
    optional(out, b"\"decision\":", own.decision);
    raw(out, b"\"details\":", Some(own.details));
    slot(out, Slot::KeyId)?;
    field(out, b"\"kind\":", own.kind);
    slot(out, Slot::Mac)?;
    optional(out, b"\"policy_digest\":", own.policy_digest);
    slot(out, Slot::PrevMac)?;
    optional(out, b"\"project\":", own.project);
    raw(out, b"\"reasons\":", own.reasons);
    slot(out, Slot::Seq)?;
    optional(out, b"\"token_id\":", own.token_id);
    optional(out, b"\"token_owner\":", own.token_owner);
    slot(out, Slot::Ts)?;
    out.push(b'}');
    Ok(())
}

/// Appends the canonical bytes of `f` without its `mac` (what the MAC
/// covers) to `out`; its `details` and `reasons` are spliced as they are, so
/// they must be JCS text. Returns where, in `out`, `mac` would go (see
/// [`entry_leaf`]).
pub(crate) fn write(out: &mut Vec<u8>, f: &StoredRecord<'_>) -> Result<usize, SealError> {
    let placed = Placed { mac: None, ..f.placed() };
    let mut mac_at = 0;
    write_fields(out, &f.own(), |out, slot| {
        if matches!(slot, Slot::Mac) {
            mac_at = out.len();
        }
        placed.write(out, slot)
    })?;
    Ok(mac_at)
}

/// The Merkle leaf of a record, `SHA-256(0x00 ‖ entry)`, where the entry is
/// the record's canonical bytes with its `mac`, from `canonical`, its bytes
/// without (as [`write`] wrote them, `mac` going at `mac_at`): the MAC input
/// and the entry differ by that one field, so the entry is never built.
pub(crate) fn entry_leaf(canonical: &[u8], mac_at: usize, mac_hex: &[u8]) -> Hash {
    let (before, after) = canonical.split_at(mac_at.min(canonical.len()));
    Sha256::new()
        .chain_update([0x00])
        .chain_update(before)
        .chain_update(b"\"mac\":\"")
        .chain_update(mac_hex)
        .chain_update(b"\",")
        .chain_update(after)
        .finalize()
        .into()
}

/// An entry made ready for sealing away from the writer: its `details` and
/// `reasons` canonicalized and every field that does not depend on its
/// place in the chain already rendered. `seq` and `ts` of the entry are
/// ignored (the writer assigns them).
#[derive(Debug, Clone)]
pub struct Prepared {
    columns: Columns,
    /// Rendered fields, in canonical order, cut where the five
    /// chain-dependent fields go (in the order `write_fields` meets them).
    body: Vec<u8>,
    cuts: [(usize, Slot); 5],
}

/// A prepared entry's fields as a store writes them, `details` and
/// `reasons` as their canonical (JCS) text. Shared text (`Arc<str>`): the
/// single writer binds each one to its INSERT without a copy, since the
/// copies are made here, on the caller's side.
#[derive(Debug, Clone)]
pub struct Columns {
    pub kind: Arc<str>,
    pub actor: Arc<str>,
    pub token_id: Option<Arc<str>>,
    pub token_owner: Option<Arc<str>>,
    pub connection: Option<Arc<str>>,
    pub project: Option<Arc<str>>,
    pub decision: Option<Outcome>,
    pub reasons: Option<Arc<str>>,
    pub policy_digest: Option<Arc<str>>,
    pub details: Arc<str>,
}

impl Prepared {
    /// Checks the entry's own fields and renders them.
    pub fn new(entry: Entry) -> Result<Self, SealError> {
        if entry.kind.is_empty() {
            return Err(SealError::EmptyField("kind"));
        }
        if entry.actor.is_empty() {
            return Err(SealError::EmptyField("actor"));
        }
        let details_json = details_json(&entry.details)?;
        let reasons_json = entry.reasons.as_deref().map(reasons_json);
        let own = Own {
            actor: &entry.actor,
            connection: entry.connection.as_deref(),
            decision: entry.decision.map(Outcome::as_str),
            details: &details_json,
            kind: &entry.kind,
            policy_digest: entry.policy_digest.as_deref(),
            project: entry.project.as_deref(),
            reasons: reasons_json.as_deref(),
            token_id: entry.token_id.as_deref(),
            token_owner: entry.token_owner.as_deref(),
        };
        let mut body = Vec::with_capacity(128 + details_json.len());
        let mut cuts = [(0, Slot::KeyId); 5];
        let mut next = cuts.iter_mut();
        write_fields(&mut body, &own, |out, slot| {
            if let Some(cut) = next.next() {
                *cut = (out.len(), slot);
            }
            Ok(())
        })?;
        let shared = |s: Option<String>| s.map(Arc::from);
        let columns = Columns {
            kind: Arc::from(entry.kind),
            actor: Arc::from(entry.actor),
            token_id: shared(entry.token_id),
            token_owner: shared(entry.token_owner),
            connection: shared(entry.connection),
            project: shared(entry.project),
            decision: entry.decision,
            reasons: shared(reasons_json),
            policy_digest: shared(entry.policy_digest),
            details: Arc::from(details_json),
        };
        Ok(Self { columns, body, cuts })
    }

    /// The entry's fields as stored (`seq` and `ts` not yet assigned).
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// `details` as JCS text: what is stored.
    pub fn details_json(&self) -> &str {
        &self.columns.details
    }

    /// `reasons` as JCS text: what is stored.
    pub fn reasons_json(&self) -> Option<&str> {
        self.columns.reasons.as_deref()
    }
}

/// Seals prepared entries one after the other with a keyring's current key,
/// all stamped with one timestamp (a group commit's).
#[derive(Debug)]
pub struct Sealer<'k> {
    keyring: &'k Keyring,
    ts: String,
    buf: Vec<u8>,
}

impl<'k> Sealer<'k> {
    /// Checks `ts` (RFC 3339, UTC) once for the whole batch.
    pub fn new(keyring: &'k Keyring, ts: &str) -> Result<Self, SealError> {
        check_timestamp(ts)?;
        Ok(Self { keyring, ts: ts.to_owned(), buf: Vec::with_capacity(1024) })
    }

    /// The key id the records are signed with.
    pub fn key_id(&self) -> &str {
        self.keyring.current_key_id()
    }

    /// The timestamp every record gets.
    pub fn ts(&self) -> &str {
        &self.ts
    }

    /// Seals `prepared` as record `seq` after the record whose MAC is
    /// `prev_mac`: its MAC, `HMAC(key, prev_mac ‖ JCS(record without mac))`,
    /// and its Merkle leaf, `SHA-256(0x00 ‖ JCS(record))`.
    pub fn seal(&mut self, prepared: &Prepared, seq: u64, prev_mac: &Mac) -> Result<Seal, SealError> {
        if seq == 0 || seq > MAX_SEQ {
            return Err(SealError::SeqOutOfRange(seq));
        }
        let key_id = self.keyring.current_key_id();
        if !self.keyring.signs(key_id, seq) {
            return Err(SealError::KeyOutOfRange { key_id: key_id.to_owned(), seq });
        }
        let prev_hex = prev_mac.hex_bytes();
        // INVARIANT: hex digits are ASCII.
        let prev_text = std::str::from_utf8(&prev_hex).unwrap_or_default();
        let placed =
            Placed { key_id: self.keyring.current_key_id(), mac: None, prev_mac: prev_text, seq, ts: &self.ts };
        let buf = &mut self.buf;
        buf.clear();
        let mut start = 0;
        let mut mac_at = 0;
        for &(at, slot) in &prepared.cuts {
            buf.extend_from_slice(prepared.body.get(start..at).unwrap_or_default());
            if matches!(slot, Slot::Mac) {
                mac_at = buf.len();
            }
            placed.write(buf, slot)?;
            start = at;
        }
        buf.extend_from_slice(prepared.body.get(start..).unwrap_or_default());
        let (_, mac) = self.keyring.sign(&[prev_mac.as_bytes(), buf]);
        let leaf = entry_leaf(buf, mac_at, &mac.hex_bytes());
        Ok(Seal { mac, leaf })
    }
}

/// What sealing a record yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    pub mac: Mac,
    /// The record's Merkle leaf, `SHA-256(0x00 ‖ entry)`.
    pub leaf: Hash,
}
