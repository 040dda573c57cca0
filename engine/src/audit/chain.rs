//! The keyed chain: each record's MAC covers the previous record's MAC and
//! its own canonical bytes,
//! `mac_n = HMAC-SHA256(key[key_id], prev_mac_n ‖ JCS(record_n without mac))`,
//! with `prev_mac` of record 1 = 32 zero bytes.
//!
//! Changing a field breaks that record's MAC; deleting, inserting or
//! reordering records breaks `seq` continuity or the `prev_mac` link. So
//! verification walks records in order and names the first `seq` where any
//! of that fails, and why.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use super::canonical::{self, StoredRecord};
use super::keyring::{Keyring, MacCheck};
use super::merkle::Hash;
use super::record::{Entry, Mac, Record, SealError, check_entry};

/// Seals `entry` as the record after the one whose MAC is `prev_mac`
/// ([`Mac::ZERO`] for seq 1), signing with the keyring's current key.
///
/// The caller (the store) guarantees `seq` is the previous record's plus one
/// and that `prev_mac` is that record's MAC, inside one transaction.
pub fn seal(entry: Entry, prev_mac: &Mac, keyring: &Keyring) -> Result<Record, SealError> {
    check_entry(&entry)?;
    let key_id = keyring.current_key_id();
    if !keyring.signs(key_id, entry.seq) {
        return Err(SealError::KeyOutOfRange { key_id: key_id.to_owned(), seq: entry.seq });
    }
    let mut record = Record::unsealed(entry, key_id.to_owned(), prev_mac);
    let canonical = record.canonical_bytes()?;
    let (_, mac) = keyring.sign(&[prev_mac.as_bytes(), &canonical]);
    record.mac = mac.to_hex();
    Ok(record)
}

/// Where a verified run of records starts: the `seq` its first record must
/// have and the MAC of the record before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainStart {
    seq: u64,
    prev_mac: Mac,
}

impl ChainStart {
    /// The start of the whole log: seq 1, zero `prev_mac`.
    pub const fn genesis() -> Self {
        Self { seq: 1, prev_mac: Mac::ZERO }
    }

    /// A range starting at `seq`, after a record whose MAC is `prev_mac`
    /// (trusted: read it from a record verified earlier, or a checkpoint's).
    pub const fn new(seq: u64, prev_mac: Mac) -> Self {
        Self { seq, prev_mac }
    }

    pub const fn seq(&self) -> u64 {
        self.seq
    }

    pub const fn prev_mac(&self) -> &Mac {
        &self.prev_mac
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSummary {
    /// Records verified.
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Ids of the keys that signed the records verified.
    pub key_ids: BTreeSet<String>,
    next: ChainStart,
}

impl VerifiedSummary {
    /// Where the next run continues, so a large log verifies page by page.
    pub const fn next_start(&self) -> ChainStart {
        self.next
    }

    /// The MAC of the last record verified (the start's `prev_mac` when none).
    pub const fn last_mac(&self) -> &Mac {
        &self.next.prev_mac
    }
}

/// The first record at which a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain breaks at seq {seq}: {reason}")]
pub struct ChainBreak {
    /// The first bad `seq`: for a missing or misplaced record, the `seq`
    /// expected at that position.
    pub seq: u64,
    pub reason: BreakReason,
}

/// Why a record does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakReason {
    /// A record was deleted, inserted, duplicated or moved.
    #[error("expected seq {expected}, found {found}")]
    SeqMismatch { expected: u64, found: u64 },
    /// The record does not follow the one before it.
    #[error("prev_mac does not link to the previous record's mac")]
    PrevMacMismatch,
    #[error("unknown key id `{0}`")]
    UnknownKey(String),
    /// The key is known but does not sign this `seq`: a retired key used
    /// after its successor's start, or a key used before its own.
    #[error("key `{key_id}` signs seq {from}..{}, not this one", end.map_or_else(|| "".to_owned(), |e| (e - 1).to_string()))]
    KeyOutOfRange { key_id: String, from: u64, end: Option<u64> },
    /// Some field was changed after sealing, or the MAC itself.
    #[error("mac does not match the record's contents")]
    MacMismatch,
    /// The stored `details` or `reasons` text is not the canonical text its
    /// MAC was computed over, though it parses to the same content: the
    /// stored bytes were rewritten.
    #[error("`details` or `reasons` were rewritten: the stored text is not the canonical text the mac covers")]
    NotCanonical,
    #[error("malformed `{field}`: {message}")]
    Malformed { field: &'static str, message: String },
}

/// Verifies `records`, in the order given, as the run that begins at `start`
/// (use [`ChainStart::genesis`] for the whole log), and reports the first
/// record that does not verify.
///
/// Per record, in this order: `seq` is the expected one, `prev_mac` is the
/// previous record's `mac`, `key_id` is known, and `mac` matches the
/// canonical bytes (compared in constant time).
///
/// This cannot see records cut off after the last one given: compare the
/// result with a checkpoint for that.
pub fn verify_chain<I>(records: I, keyring: &Keyring, start: &ChainStart) -> Result<VerifiedSummary, ChainBreak>
where
    I: IntoIterator,
    I::Item: Borrow<Record>,
{
    let mut expected = start.seq;
    let mut prev_mac = start.prev_mac;
    let mut summary =
        VerifiedSummary { count: 0, first_seq: None, last_seq: None, key_ids: BTreeSet::new(), next: *start };
    for item in records {
        let record = item.borrow();
        let fail = |reason| ChainBreak { seq: expected, reason };
        if record.seq != expected {
            return Err(fail(BreakReason::SeqMismatch { expected, found: record.seq }));
        }
        let claimed_prev = record
            .prev_mac()
            .map_err(|e| fail(BreakReason::Malformed { field: "prev_mac", message: e.to_string() }))?;
        if claimed_prev != prev_mac {
            return Err(fail(BreakReason::PrevMacMismatch));
        }
        let mac = record.mac().map_err(|e| fail(BreakReason::Malformed { field: "mac", message: e.to_string() }))?;
        let canonical = record
            .canonical_bytes()
            .map_err(|e| fail(BreakReason::Malformed { field: "record", message: e.to_string() }))?;
        match keyring.check_record(&record.key_id, record.seq, &[prev_mac.as_bytes(), &canonical], &mac) {
            Ok(()) => {}
            Err(MacCheck::UnknownKey) => return Err(fail(BreakReason::UnknownKey(record.key_id.clone()))),
            Err(MacCheck::Mismatch) => return Err(fail(BreakReason::MacMismatch)),
            Err(MacCheck::OutOfRange(from, end)) => {
                return Err(fail(BreakReason::KeyOutOfRange { key_id: record.key_id.clone(), from, end }));
            }
        }

        summary.count += 1;
        summary.first_seq.get_or_insert(record.seq);
        summary.last_seq = Some(record.seq);
        if !summary.key_ids.contains(&record.key_id) {
            summary.key_ids.insert(record.key_id.clone());
        }
        prev_mac = mac;
        // INVARIANT: `expected` equals a `seq` that parsed as u64 and is below
        // u64::MAX in any log that respects MAX_SEQ; saturate rather than wrap.
        expected = expected.saturating_add(1);
    }
    summary.next = ChainStart::new(expected, prev_mac);
    Ok(summary)
}

/// Verifies stored records one at a time, in order, with the same checks
/// and the same first-bad-`seq` report as [`verify_chain`].
///
/// The MAC is checked over the canonical bytes built around the stored
/// `details` and `reasons` text, which writers store in canonical form.
/// Only if that fails is the text parsed and re-canonicalized: a match then
/// means the content is genuine but its stored text is not the canonical
/// one. That is accepted for records before [`strict_from`](Self::strict_from)
/// (stores written before canonical text was stored) and reported as
/// [`BreakReason::NotCanonical`] from there on, since no writer produces it.
///
/// The splice cannot be abused to move bytes between fields: every other
/// field is an escaped string (or digits) under a fixed key in a fixed
/// order, so a byte string that matches a genuine record's bytes has only
/// one split into fields.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    keyring: &'k Keyring,
    expected: u64,
    prev_mac: Mac,
    /// `prev_mac` as the lowercase hex a following record must hold.
    prev_hex: [u8; 64],
    strict_from: u64,
    /// The canonical bytes (without `mac`) of the last record checked, and
    /// where its `mac` goes in them: its leaf, on demand.
    buf: Vec<u8>,
    mac_at: usize,
    summary: VerifiedSummary,
}

impl<'k> ChainVerifier<'k> {
    /// Starts at `start` (use [`ChainStart::genesis`] for the whole log),
    /// strict about canonical text everywhere.
    pub fn new(keyring: &'k Keyring, start: &ChainStart) -> Self {
        Self {
            keyring,
            expected: start.seq,
            prev_mac: start.prev_mac,
            prev_hex: start.prev_mac.hex_bytes(),
            strict_from: 0,
            buf: Vec::with_capacity(1024),
            mac_at: 0,
            summary: VerifiedSummary {
                count: 0,
                first_seq: None,
                last_seq: None,
                key_ids: BTreeSet::new(),
                next: *start,
            },
        }
    }

    /// Records with `seq` below `seq` may hold non-canonical (but genuine)
    /// `details`/`reasons` text.
    #[must_use]
    pub fn strict_from(mut self, seq: u64) -> Self {
        self.strict_from = seq;
        self
    }

    /// The Merkle leaf of the record the last successful [`push`](Self::push)
    /// checked: `SHA-256(0x00 ‖ entry)` over its canonical content (a record
    /// stored before canonical text gets the leaf of its canonical form).
    pub fn leaf(&self) -> Hash {
        canonical::entry_leaf(&self.buf, self.mac_at, &self.prev_hex)
    }

    /// Checks the next record; on success returns its MAC.
    pub fn push(&mut self, record: &StoredRecord<'_>) -> Result<Mac, ChainBreak> {
        let expected = self.expected;
        let fail = |reason| ChainBreak { seq: expected, reason };
        if record.seq != expected {
            return Err(fail(BreakReason::SeqMismatch { expected, found: record.seq }));
        }
        // Equal text is an equal tag: both are 64 lowercase hex digits.
        if record.prev_mac.as_bytes() != self.prev_hex {
            return Err(fail(match Mac::from_hex(record.prev_mac) {
                Err(e) => BreakReason::Malformed { field: "prev_mac", message: e.to_string() },
                Ok(_) => BreakReason::PrevMacMismatch,
            }));
        }
        let mac = Mac::from_hex(record.mac)
            .map_err(|e| fail(BreakReason::Malformed { field: "mac", message: e.to_string() }))?;
        let malformed = |e: SealError| fail(BreakReason::Malformed { field: "record", message: e.to_string() });
        self.buf.clear();
        self.mac_at = canonical::write(&mut self.buf, record).map_err(malformed)?;
        match self.keyring.check_record(record.key_id, record.seq, &[self.prev_mac.as_bytes(), &self.buf], &mac) {
            Ok(()) => {}
            Err(MacCheck::UnknownKey) => return Err(fail(BreakReason::UnknownKey(record.key_id.to_owned()))),
            Err(MacCheck::OutOfRange(from, end)) => {
                return Err(fail(BreakReason::KeyOutOfRange { key_id: record.key_id.to_owned(), from, end }));
            }
            Err(MacCheck::Mismatch) => {
                let Some((details, reasons)) = record.recanonicalized() else {
                    return Err(fail(BreakReason::MacMismatch));
                };
                self.buf.clear();
                self.mac_at = canonical::write(&mut self.buf, &record.with_text(&details, reasons.as_deref()))
                    .map_err(malformed)?;
                if self
                    .keyring
                    .check_record(record.key_id, record.seq, &[self.prev_mac.as_bytes(), &self.buf], &mac)
                    .is_err()
                {
                    return Err(fail(BreakReason::MacMismatch));
                }
                if record.seq >= self.strict_from {
                    return Err(fail(BreakReason::NotCanonical));
                }
            }
        }
        let summary = &mut self.summary;
        summary.count += 1;
        summary.first_seq.get_or_insert(record.seq);
        summary.last_seq = Some(record.seq);
        if !summary.key_ids.contains(record.key_id) {
            summary.key_ids.insert(record.key_id.to_owned());
        }
        self.prev_mac = mac;
        // `mac` parsed from exactly this text: 64 lowercase hex digits.
        self.prev_hex.copy_from_slice(record.mac.as_bytes());
        self.expected = expected.saturating_add(1);
        Ok(mac)
    }

    /// The keyring records are checked with.
    pub fn keyring(&self) -> &'k Keyring {
        self.keyring
    }

    /// From which `seq` on canonical text is required.
    pub fn strict_seq(&self) -> u64 {
        self.strict_from
    }

    /// Where the chain stands: the `seq` expected next and the MAC before it.
    pub fn position(&self) -> ChainStart {
        ChainStart::new(self.expected, self.prev_mac)
    }

    /// Takes over what another verifier checked from `start` on (`run`, its
    /// summary), so runs of one log can be checked in parallel and joined in
    /// order. The chain goes on only if this verifier stands at `start`
    /// now; if not, the break is reported where it stands.
    pub fn continue_with(&mut self, start: &ChainStart, run: VerifiedSummary) -> Result<(), ChainBreak> {
        if self.position() != *start {
            return Err(ChainBreak { seq: self.expected, reason: BreakReason::PrevMacMismatch });
        }
        if run.count == 0 {
            return Ok(());
        }
        self.expected = run.next.seq;
        self.prev_mac = run.next.prev_mac;
        self.prev_hex = run.next.prev_mac.hex_bytes();
        let summary = &mut self.summary;
        summary.count += run.count;
        summary.first_seq = summary.first_seq.or(run.first_seq);
        summary.last_seq = run.last_seq.or(summary.last_seq);
        summary.key_ids.extend(run.key_ids);
        Ok(())
    }

    /// What was verified, and where the next run continues.
    pub fn finish(mut self) -> VerifiedSummary {
        self.summary.next = ChainStart::new(self.expected, self.prev_mac);
        self.summary
    }
}
