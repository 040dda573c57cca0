//! The canonical bytes of a record, written directly instead of through a
//! generic JCS serializer.
//!
//! A record's JCS form is one flat object with fixed key names, so its key
//! order is fixed too (RFC 8785 sorts by UTF-16 code units; every key is
//! ASCII):
//!
//! `actor, connection?, decision?, details, key_id, kind, policy_digest?,
//! prev_mac, project?, reasons?, seq, token_id?, token_owner?, ts`
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

use serde_json::{Map, Value};

use super::chain::StoredRecord;
use super::keyring::Keyring;
use super::record::{Entry, MAX_SEQ, Mac, Outcome, SealError, check_timestamp};

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
pub fn details_json(details: &Map<String, Value>) -> Result<String, SealError> {
    serde_json_canonicalizer::to_string(details).map_err(|e| SealError::Canonical(e.to_string()))
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

pub(crate) const fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
    }
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

/// Appends the canonical bytes of `f` (without its `mac`) to `out`; its
/// `details` and `reasons` are spliced as they are, so they must be JCS text.
pub(crate) fn write(out: &mut Vec<u8>, f: &StoredRecord<'_>) -> Result<(), SealError> {
    out.push(b'{');
    field(out, b"\"actor\":", f.actor);
    optional(out, b"\"connection\":", f.connection);
    optional(out, b"\"decision\":", f.decision);
    raw(out, b"\"details\":", Some(f.details));
    field(out, b"\"key_id\":", f.key_id);
    field(out, b"\"kind\":", f.kind);
    optional(out, b"\"policy_digest\":", f.policy_digest);
    field(out, b"\"prev_mac\":", f.prev_mac);
    optional(out, b"\"project\":", f.project);
    raw(out, b"\"reasons\":", f.reasons);
    push_seq(out, f.seq)?;
    optional(out, b"\"token_id\":", f.token_id);
    optional(out, b"\"token_owner\":", f.token_owner);
    out.extend_from_slice(b"\"ts\":");
    push_str(out, f.ts);
    out.push(b'}');
    Ok(())
}

/// An entry made ready for sealing away from the writer: its `details` and
/// `reasons` canonicalized and every field that does not depend on its
/// place in the chain already rendered. `seq` and `ts` of the entry are
/// ignored (the writer assigns them).
#[derive(Debug, Clone)]
pub struct Prepared {
    entry: Entry,
    details_json: String,
    reasons_json: Option<String>,
    /// Rendered fields, in canonical order, cut where `key_id`, `prev_mac`
    /// and `seq` go: `{actor…details,` | `kind…policy_digest,` |
    /// `project…reasons,` | `token_id…token_owner,`.
    body: Vec<u8>,
    cuts: [usize; 3],
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
        let mut body = Vec::with_capacity(128 + details_json.len());
        body.push(b'{');
        field(&mut body, b"\"actor\":", &entry.actor);
        optional(&mut body, b"\"connection\":", entry.connection.as_deref());
        optional(&mut body, b"\"decision\":", entry.decision.map(outcome_str));
        raw(&mut body, b"\"details\":", Some(&details_json));
        let key_id_at = body.len();
        field(&mut body, b"\"kind\":", &entry.kind);
        optional(&mut body, b"\"policy_digest\":", entry.policy_digest.as_deref());
        let prev_mac_at = body.len();
        optional(&mut body, b"\"project\":", entry.project.as_deref());
        raw(&mut body, b"\"reasons\":", reasons_json.as_deref());
        let seq_at = body.len();
        optional(&mut body, b"\"token_id\":", entry.token_id.as_deref());
        optional(&mut body, b"\"token_owner\":", entry.token_owner.as_deref());
        Ok(Self { entry, details_json, reasons_json, body, cuts: [key_id_at, prev_mac_at, seq_at] })
    }

    /// The entry's fields (`seq` and `ts` not yet assigned).
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// `details` as JCS text: what is stored.
    pub fn details_json(&self) -> &str {
        &self.details_json
    }

    /// `reasons` as JCS text: what is stored.
    pub fn reasons_json(&self) -> Option<&str> {
        self.reasons_json.as_deref()
    }

    /// The entry, its `details` text and its `reasons` text.
    pub fn into_parts(self) -> (Entry, String, Option<String>) {
        (self.entry, self.details_json, self.reasons_json)
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

    /// The MAC of `prepared` as record `seq` after the record whose MAC is
    /// `prev_mac`: `HMAC(key, prev_mac ‖ JCS(record without mac))`.
    pub fn seal(&mut self, prepared: &Prepared, seq: u64, prev_mac: &Mac) -> Result<Mac, SealError> {
        if seq == 0 || seq > MAX_SEQ {
            return Err(SealError::SeqOutOfRange(seq));
        }
        let [a, b, c] = prepared.cuts;
        let part = |range: std::ops::Range<usize>| prepared.body.get(range).unwrap_or_default();
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(part(0..a));
        field(buf, b"\"key_id\":", self.keyring.current_key_id());
        buf.extend_from_slice(part(a..b));
        buf.extend_from_slice(b"\"prev_mac\":\"");
        let mut hex = [0u8; 64];
        // INVARIANT: 64 bytes is exactly the hex length of 32 bytes.
        let _ = hex::encode_to_slice(prev_mac.as_bytes(), &mut hex);
        buf.extend_from_slice(&hex);
        buf.extend_from_slice(b"\",");
        buf.extend_from_slice(part(b..c));
        push_seq(buf, seq)?;
        buf.extend_from_slice(part(c..prepared.body.len()));
        buf.extend_from_slice(b"\"ts\":");
        push_str(buf, &self.ts);
        buf.push(b'}');
        let (_, mac) = self.keyring.sign(&[prev_mac.as_bytes(), buf]);
        Ok(mac)
    }
}
