//! The directly written canonical bytes are byte-identical to a generic JCS
//! serializer (`serde_json_canonicalizer`) over the record's own JSON, for
//! generated records full of escapes, control characters, non-BMP text,
//! numbers of every shape and absent optional fields; and the stored-text
//! verifier agrees with the record verifier.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use hmac::{Hmac, KeyInit, Mac as _};
use serde_json::{Map, Number, Value, json};
use sha2::Sha256;
use warrant_engine::audit::canonical::details_json;
use warrant_engine::audit::{
    BreakReason, ChainStart, ChainVerifier, Entry, Keyring, Mac, Outcome, Prepared, Record, Sealer, StoredRecord,
    merkle, seal, verify_chain,
};

const SECRET: &[u8] = b"canonical-test-secret-0123456789abcdef";

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Text drawn from the characters JCS treats specially, and some it
    /// does not (which a sloppy escaper might).
    fn text(&mut self) -> String {
        const PICKS: &[&str] = &[
            "a",
            "Z",
            "0",
            " ",
            "\"",
            "\\",
            "/",
            "\u{0}",
            "\u{1}",
            "\u{7}",
            "\u{8}",
            "\t",
            "\n",
            "\u{b}",
            "\u{c}",
            "\r",
            "\u{e}",
            "\u{1f}",
            "\u{7f}",
            "\u{80}",
            "é",
            "ß",
            "\u{2028}",
            "\u{2029}",
            "€",
            "\u{e000}",
            "\u{fffd}",
            "\u{ffff}",
            "😀",
            "\u{10ffff}",
            "𝄞",
            "<",
            ">",
            "&",
            "'",
            "hmac-sha256:",
            "eyJ",
            "ü",
            "\u{200b}",
        ];
        let len = self.below(12);
        (0..len).map(|_| PICKS[self.below(PICKS.len() as u64) as usize]).collect()
    }

    fn number(&mut self) -> Value {
        match self.below(8) {
            0 => json!(self.below(1000)),
            1 => json!(-(self.below(1 << 40) as i64)),
            2 => json!(self.next()),
            // i64::MIN, and the integers around 2^53, where a double stops
            // holding every integer (JCS writes what the double holds).
            3 => {
                const EDGES: &[i64] = &[i64::MIN, 1 << 53, (1 << 53) + 1, (1 << 53) + 3, -(1 << 53) - 1, (1 << 54) + 1];
                json!(EDGES[self.below(EDGES.len() as u64) as usize])
            }
            4 => {
                const FLOATS: &[f64] = &[
                    0.0,
                    -0.0,
                    1.0,
                    -1.5,
                    0.1,
                    1e21,
                    1e-7,
                    1e-6,
                    123456789.0,
                    4.35,
                    5e-324,
                    1.7976931348623157e308,
                    9007199254740993.0,
                    2.5e-8,
                    1e300,
                ];
                Value::Number(Number::from_f64(FLOATS[self.below(FLOATS.len() as u64) as usize]).unwrap())
            }
            5 => Value::Number(Number::from_f64(f64::from_bits(self.next() >> 2)).unwrap_or_else(|| Number::from(7))),
            6 => json!(u64::MAX),
            _ => json!((self.below(2000) as f64) / 8.0),
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(50)),
            2 => self.number(),
            3 | 4 => Value::String(self.text()),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Object(self.object(depth + 1)),
        }
    }

    fn object(&mut self, depth: u32) -> Map<String, Value> {
        (0..self.below(6)).map(|_| (self.text(), self.value(depth))).collect()
    }

    fn opt_text(&mut self) -> Option<String> {
        self.chance(50).then(|| self.text())
    }

    fn entry(&mut self) -> Entry {
        let mut e = Entry::new(0, "", format!("k{}", self.text()), format!("a{}", self.text()));
        e.token_id = self.opt_text();
        e.token_owner = self.opt_text();
        e.connection = self.opt_text();
        e.project = self.opt_text();
        e.decision = match self.below(3) {
            0 => None,
            1 => Some(Outcome::Allow),
            _ => Some(Outcome::Deny),
        };
        e.reasons = self.chance(50).then(|| (0..self.below(4)).map(|_| self.text()).collect());
        e.policy_digest = self.opt_text();
        e.details = self.object(0);
        e
    }
}

fn keyring() -> Keyring {
    Keyring::new("k:1", SECRET).unwrap()
}

/// What an auditor computes from an exported record with any JCS library.
fn reference_bytes(record: &Record) -> Vec<u8> {
    let mut value = serde_json::to_value(record).unwrap();
    value.as_object_mut().unwrap().remove("mac").unwrap();
    serde_json_canonicalizer::to_vec(&value).unwrap()
}

fn hmac(prev: &Mac, bytes: &[u8]) -> String {
    let mut h = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    h.update(prev.as_bytes());
    h.update(bytes);
    hex::encode(h.finalize().into_bytes())
}

fn stored<'a>(record: &'a Record, details: &'a str, reasons: Option<&'a str>) -> StoredRecord<'a> {
    StoredRecord {
        seq: record.seq,
        ts: &record.ts,
        kind: &record.kind,
        actor: &record.actor,
        token_id: record.token_id.as_deref(),
        token_owner: record.token_owner.as_deref(),
        connection: record.connection.as_deref(),
        project: record.project.as_deref(),
        decision: record.decision.map(|d| if d == Outcome::Allow { "allow" } else { "deny" }),
        reasons,
        policy_digest: record.policy_digest.as_deref(),
        details,
        key_id: &record.key_id,
        prev_mac: &record.prev_mac,
        mac: &record.mac,
    }
}

/// Generated records, sealed both ways: the prepared (writer) path and the
/// record path give the MAC a generic JCS serializer gives.
fn generated(n: u64, seed: u64) -> Vec<(Record, Prepared)> {
    let keys = keyring();
    let mut rng = Rng(seed);
    let mut out: Vec<(Record, Prepared)> = Vec::new();
    for seq in 1..=n {
        let ts =
            ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123456Z", "2026-11-22T10:00:00+00:00"][rng.below(3) as usize];
        let entry = rng.entry();
        let prev = out.last().map_or(Mac::ZERO, |(r, _)| r.mac().unwrap());
        let prepared = Prepared::new(entry.clone()).unwrap();
        let mut sealer = Sealer::new(&keys, ts).unwrap();
        let fast = sealer.seal(&prepared, seq, &prev).unwrap();

        let record = seal(Entry { seq, ts: ts.to_owned(), ..entry }, &prev, &keys).unwrap();
        let reference = reference_bytes(&record);
        assert_eq!(
            String::from_utf8_lossy(&record.canonical_bytes().unwrap()),
            String::from_utf8_lossy(&reference),
            "seq {seq}"
        );
        assert_eq!(record.mac, hmac(&prev, &reference), "seq {seq}: the record path's MAC");
        assert_eq!(fast.mac.to_hex(), record.mac, "seq {seq}: the prepared path's MAC");
        // The entry is the whole record's JCS, `mac` included; its leaf is
        // what the writer computes without building it.
        let entry = serde_json_canonicalizer::to_vec(&serde_json::to_value(&record).unwrap()).unwrap();
        assert_eq!(String::from_utf8_lossy(&record.entry_bytes().unwrap()), String::from_utf8_lossy(&entry));
        assert_eq!(fast.leaf, merkle::leaf_hash(&entry), "seq {seq}: the writer's leaf");
        assert_eq!(record.leaf_hash().unwrap(), fast.leaf, "seq {seq}: the record's leaf");
        assert_eq!(prepared.details_json(), serde_json_canonicalizer::to_string(&record.details).unwrap());
        out.push((record, prepared));
    }
    out
}

#[test]
fn direct_canonical_bytes_equal_a_generic_jcs_serializer_over_generated_records() {
    for seed in [1, 0x5eed, 0xdead_beef, 42_424_242] {
        generated(500, seed);
    }
}

#[test]
fn the_stored_text_verifier_agrees_with_the_record_verifier() {
    let keys = keyring();
    let chain = generated(300, 7);
    let records: Vec<Record> = chain.iter().map(|(r, _)| r.clone()).collect();
    let whole = verify_chain(&records, &keys, &ChainStart::genesis()).unwrap();
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis());
    for (record, prepared) in &chain {
        let mac = verifier.push(&stored(record, prepared.details_json(), prepared.reasons_json())).unwrap();
        assert_eq!(mac.to_hex(), record.mac);
    }
    assert_eq!(verifier.finish(), whole);
}

/// A record with non-trivial details at seq 2 of a 3-record chain, and
/// the verifier's verdict on seq 2 stored with `details` text `text`.
fn verdict(text: &str, strict_from: u64) -> Result<(), BreakReason> {
    let keys = keyring();
    let mut records = Vec::new();
    let mut prev = Mac::ZERO;
    for seq in 1..=3 {
        let mut e = Entry::new(seq, "2026-11-22T10:00:00Z", "token.issued", "alice");
        e.details =
            json!({"status": "active", "ratio": 1.0, "n": [1, 2e21], "é": "x\u{1}"}).as_object().unwrap().clone();
        let r = seal(e, &prev, &keys).unwrap();
        prev = r.mac().unwrap();
        records.push(r);
    }
    let canonical = details_json(&records[0].details).unwrap();
    let mut verifier = ChainVerifier::new(&keys, &ChainStart::genesis()).strict_from(strict_from);
    verifier.push(&stored(&records[0], &canonical, None)).unwrap();
    let result = verifier.push(&stored(&records[1], text, None)).map(|_| ()).map_err(|b| {
        assert_eq!(b.seq, 2);
        b.reason
    });
    if result.is_ok() {
        verifier.push(&stored(&records[2], &canonical, None)).unwrap();
    }
    result
}

#[test]
fn stored_details_must_be_the_canonical_text() {
    let canonical = r#"{"n":[1,2e+21],"ratio":1,"status":"active","é":"x\u0001"}"#;
    assert_eq!(verdict(canonical, 0), Ok(()));
    // Same JSON content, other text: whitespace, key order, number spelling, escapes.
    for same in [
        r#"{"n": [1, 2e+21], "ratio": 1, "status": "active", "é": "x\u0001"}"#,
        r#"{"status":"active","ratio":1,"n":[1,2e+21],"é":"x\u0001"}"#,
        r#"{"n":[1,2e21],"ratio":1.0,"status":"active","é":"x\u0001"}"#,
        r#"{"n":[1,2e+21],"ratio":1,"status":"\u0061ctive","\u00e9":"x\u0001"}"#,
    ] {
        assert_eq!(verdict(same, 0), Err(BreakReason::NotCanonical), "{same}");
        assert_eq!(verdict(same, 3), Ok(()), "before strict_from, {same} is a legacy row: accepted");
        assert_eq!(verdict(same, 2), Err(BreakReason::NotCanonical), "strict from its own seq: {same}");
    }
    // Different content, or not JSON at all: the MAC does not match.
    for changed in [
        r#"{"n":[1,2e+21],"ratio":2,"status":"active","é":"x\u0001"}"#,
        r#"{"n":[1,2e+21],"ratio":1,"status":"active"}"#,
        r#"{"n":[1,2e+21],"ratio":1,"status":"active","é":"x\u0001""#,
        r#"[1]"#,
        "",
        r#"{"n":[1,2e+21],"ratio":1,"status":"active","é":"x\u0001"},"key_id":"k:1""#,
    ] {
        assert_eq!(verdict(changed, 0), Err(BreakReason::MacMismatch), "{changed}");
        assert_eq!(verdict(changed, 3), Err(BreakReason::MacMismatch), "{changed}");
    }
}

#[test]
fn stored_reasons_must_be_the_canonical_text() {
    let keys = keyring();
    let mut e = Entry::new(1, "2026-11-22T10:00:00Z", "decision", "svc");
    e.reasons = Some(vec!["a\"b".into(), "c".into()]);
    let r = seal(e, &Mac::ZERO, &keys).unwrap();
    let check = |reasons: &str, strict_from: u64| {
        ChainVerifier::new(&keys, &ChainStart::genesis())
            .strict_from(strict_from)
            .push(&stored(&r, "{}", Some(reasons)))
            .map(|_| ())
            .map_err(|b| b.reason)
    };
    assert_eq!(check(r#"["a\"b","c"]"#, 0), Ok(()));
    assert_eq!(check(r#"["a\"b", "c"]"#, 0), Err(BreakReason::NotCanonical));
    assert_eq!(check(r#"["a\"b", "c"]"#, 2), Ok(()));
    assert_eq!(check(r#"["a\"b"]"#, 2), Err(BreakReason::MacMismatch));
    assert_eq!(check(r#"["a\"b","c""#, 2), Err(BreakReason::MacMismatch));
}

#[test]
fn sealing_refuses_what_the_record_path_refuses() {
    let keys = keyring();
    assert!(Prepared::new(Entry::new(0, "", "", "a")).is_err());
    assert!(Prepared::new(Entry::new(0, "", "k", "")).is_err());
    assert!(Sealer::new(&keys, "2026-11-22T10:00:00+01:00").is_err());
    assert!(Sealer::new(&keys, "yesterday").is_err());
    let p = Prepared::new(Entry::new(0, "", "k", "a")).unwrap();
    let mut sealer = Sealer::new(&keys, "2026-11-22T10:00:00Z").unwrap();
    assert!(sealer.seal(&p, 0, &Mac::ZERO).is_err());
    assert!(sealer.seal(&p, 1 << 53, &Mac::ZERO).is_err());
    assert!(sealer.seal(&p, (1 << 53) - 1, &Mac::ZERO).is_ok());
}
