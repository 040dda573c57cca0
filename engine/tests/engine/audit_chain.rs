//! The keyed audit chain and checkpoints, through the engine's public API:
//! every kind of tampering with a stored log is reported at the first
//! affected `seq`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use hmac::{Hmac, KeyInit, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use warrant_engine::audit::merkle;
use warrant_engine::audit::{
    BreakReason, ChainBreak, ChainStart, Checkpoint, CheckpointError, Entry, Keyring, KeyringError, Kind, MAX_SEQ, Mac,
    Outcome, Record, SealError, UnknownKind, seal, verify_chain,
};

const SECRET_1: &[u8] = b"k1-secret-material-0123456789abcdef";
const SECRET_2: &[u8] = b"k2-secret-material-0123456789abcdef";

fn keyring() -> Keyring {
    Keyring::new("k1", SECRET_1).unwrap()
}

fn ts(seq: u64) -> String {
    format!("2026-03-01T12:00:{:02}Z", seq % 60)
}

/// A token-use entry with every optional field set.
fn full_entry(seq: u64) -> Entry {
    Entry {
        token_id: Some(format!("tok-{seq}")),
        token_owner: Some("alice".into()),
        connection: Some("snowflake-prod".into()),
        project: Some("p1".into()),
        decision: Some(Outcome::Deny),
        reasons: Some(vec!["reauth_required".into()]),
        policy_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        details: json!({"surface": "notebook", "n": seq, "nested": {"ok": true}}).as_object().unwrap().clone(),
        ..Entry::new(seq, ts(seq), Kind::TokenUsed, "alice")
    }
}

/// A chain of `n` records: odd ones minimal, even ones with every field.
fn chain(n: u64, keyring: &Keyring) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    for seq in 1..=n {
        let entry = if seq % 2 == 0 { full_entry(seq) } else { Entry::new(seq, ts(seq), Kind::Decision, "svc-api") };
        let prev = records.last().map_or(Mac::ZERO, |r| r.mac().unwrap());
        records.push(seal(entry, &prev, keyring).unwrap());
    }
    records
}

fn verify(records: &[Record], keyring: &Keyring) -> Result<u64, ChainBreak> {
    verify_chain(records, keyring, &ChainStart::genesis()).map(|s| s.count)
}

fn break_at(records: &[Record], keyring: &Keyring) -> ChainBreak {
    verify_chain(records, keyring, &ChainStart::genesis()).expect_err("tampering must be detected")
}

#[test]
fn a_sealed_chain_verifies() {
    let keys = keyring();
    let records = chain(10, &keys);
    let summary = verify_chain(&records, &keys, &ChainStart::genesis()).unwrap();
    assert_eq!(summary.count, 10);
    assert_eq!((summary.first_seq, summary.last_seq), (Some(1), Some(10)));
    assert_eq!(summary.key_ids.iter().collect::<Vec<_>>(), ["k1"]);
    assert_eq!(summary.last_mac(), &records[9].mac().unwrap());
    assert_eq!(summary.next_start(), ChainStart::new(11, records[9].mac().unwrap()));
    assert_eq!(records[0].prev_mac, "0".repeat(64));
    assert_eq!(records[0].key_id, "k1");
    // Owned records verify too (a store streams them).
    assert_eq!(verify_chain(records.clone(), &keys, &ChainStart::genesis()).unwrap().count, 10);
    // An empty run verifies trivially and continues where it started.
    let empty = verify_chain(Vec::<Record>::new(), &keys, &ChainStart::genesis()).unwrap();
    assert_eq!((empty.count, empty.next_start()), (0, ChainStart::genesis()));
}

#[test]
fn the_mac_is_hmac_of_prev_mac_and_jcs_without_mac() {
    // Recompute record 2's MAC from its stored JSON alone, as an auditor would.
    let keys = keyring();
    let records = chain(2, &keys);
    let mut stored = serde_json::to_value(&records[1]).unwrap();
    let mac = stored.as_object_mut().unwrap().remove("mac").unwrap();
    let canonical = serde_json_canonicalizer::to_vec(&stored).unwrap();
    assert_eq!(records[1].canonical_bytes().unwrap(), canonical);

    let mut hmac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET_1).unwrap();
    hmac.update(&hex::decode(&records[0].mac).unwrap());
    hmac.update(&canonical);
    assert_eq!(hex::encode(hmac.finalize().into_bytes()), mac.as_str().unwrap());
}

#[test]
fn canonical_form_is_jcs_with_absent_optionals() {
    let keys = keyring();
    let mut entry = Entry::new(1, "2026-03-01T12:00:00Z", Kind::TokenRevoked, "bob");
    entry.details = json!({"z": 1, "a": [true, null], "é": "x"}).as_object().unwrap().clone();
    let record = seal(entry, &Mac::ZERO, &keys).unwrap();
    let canonical = String::from_utf8(record.canonical_bytes().unwrap()).unwrap();
    assert_eq!(
        canonical,
        format!(
            r#"{{"actor":"bob","details":{{"a":[true,null],"z":1,"é":"x"}},"key_id":"k1","kind":"token.revoked","prev_mac":"{}","seq":1,"ts":"2026-03-01T12:00:00Z"}}"#,
            "0".repeat(64)
        )
    );
    // Stored form: optional fields absent, not null.
    let stored = serde_json::to_value(&record).unwrap();
    for absent in ["token_id", "token_owner", "connection", "project", "decision", "reasons", "policy_digest"] {
        assert!(stored.get(absent).is_none(), "{absent} should be absent");
    }
}

#[test]
fn a_record_of_a_kind_warrant_does_not_write_is_read_and_verified() {
    // A later version's kind, or one written by hand: still data, still chained.
    let keys = keyring();
    let mut records = chain(2, &keys);
    let entry = Entry::new(3, ts(3), "bundle.archived", "ops");
    records.push(seal(entry, &records[1].mac().unwrap(), &keys).unwrap());
    let line = serde_json::to_string(&records[2]).unwrap();
    let back: Record = serde_json::from_str(&line).unwrap();
    assert_eq!(back.kind, "bundle.archived");
    assert_eq!(back.known_kind(), Err(UnknownKind("bundle.archived".into())));
    assert_eq!(records[1].known_kind(), Ok(Kind::TokenUsed));
    assert_eq!(verify(&[records[0].clone(), records[1].clone(), back], &keys), Ok(3));
}

#[test]
fn records_round_trip_through_json() {
    let keys = keyring();
    for record in chain(4, &keys) {
        let line = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
    }
    let full = &chain(2, &keys)[1];
    let stored = serde_json::to_value(full).unwrap();
    assert_eq!(stored["decision"], "deny");
    assert_eq!(stored["reasons"], json!(["reauth_required"]));
    // An unknown field is refused rather than silently dropped.
    let mut extra = stored.clone();
    extra["note"] = json!("added later");
    assert!(serde_json::from_value::<Record>(extra).is_err());
}

/// Record 5 of 8, stored as JSON, with one field changed.
fn tampered(records: &[Record], change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<Record> {
    let mut records = records.to_vec();
    let mut stored = serde_json::to_value(&records[4]).unwrap();
    change(stored.as_object_mut().unwrap());
    records[4] = serde_json::from_value(stored).unwrap();
    records
}

#[test]
fn changing_any_field_is_detected_at_that_seq() {
    let mut keys = keyring();
    keys.add_retired("k0", b"k0-an-older-key-material-0123456789").unwrap();
    let original = chain(8, &keys);
    // Record 5 is minimal; record 6 has every field. Try both.
    for target in [4_usize, 5] {
        let seq = target as u64 + 1;
        let stored = serde_json::to_value(&original[target]).unwrap();
        let fields: Vec<(&str, Value)> = vec![
            ("seq", json!(seq + 100)),
            ("ts", json!("2026-03-01T12:00:59Z")),
            ("kind", json!("token.refreshed")),
            ("actor", json!("mallory")),
            ("token_id", json!("tok-other")),
            ("token_owner", json!("mallory")),
            ("connection", json!("other")),
            ("project", json!("p2")),
            ("decision", json!("allow")),
            ("reasons", json!([])),
            ("policy_digest", json!(format!("sha256:{}", "cd".repeat(32)))),
            ("details", json!({"surface": "app"})),
            ("key_id", json!("k0")),
            ("key_id", json!("k9")),
            ("prev_mac", json!("1".repeat(64))),
            ("mac", json!("2".repeat(64))),
        ];
        for (field, value) in fields {
            let mut records = original.clone();
            let mut changed = stored.clone();
            changed[field] = value.clone();
            records[target] = serde_json::from_value(changed).unwrap();
            let found = break_at(&records, &keys);
            assert_eq!(found.seq, seq, "changing `{field}` to {value} must break at seq {seq}: {found}");
            let expected = match field {
                "seq" => BreakReason::SeqMismatch { expected: seq, found: seq + 100 },
                "prev_mac" => BreakReason::PrevMacMismatch,
                "key_id" if value == "k9" => BreakReason::UnknownKey("k9".into()),
                _ => BreakReason::MacMismatch,
            };
            assert_eq!(found.reason, expected, "changing `{field}`");
        }
    }
    // Removing an optional field, or a key inside details.
    assert_eq!(verify(&original, &keys).unwrap(), 8);
    let mut records = original.clone();
    let mut changed = serde_json::to_value(&records[5]).unwrap();
    changed.as_object_mut().unwrap().remove("token_id");
    records[5] = serde_json::from_value(changed).unwrap();
    assert_eq!(break_at(&records, &keys), ChainBreak { seq: 6, reason: BreakReason::MacMismatch });
    let mut records = original.clone();
    records[5].details.remove("nested");
    assert_eq!(break_at(&records, &keys), ChainBreak { seq: 6, reason: BreakReason::MacMismatch });
}

#[test]
fn malformed_tags_are_reported_at_their_seq() {
    let keys = keyring();
    let original = chain(8, &keys);
    let upper = tampered(&original, |r| {
        let mac = r["mac"].as_str().unwrap().to_uppercase();
        r.insert("mac".into(), json!(mac));
    });
    let found = break_at(&upper, &keys);
    assert_eq!(found.seq, 5);
    assert!(matches!(found.reason, BreakReason::Malformed { field: "mac", .. }), "{found}");
    let short = tampered(&original, |r| {
        r.insert("prev_mac".into(), json!("abcd"));
    });
    let found = break_at(&short, &keys);
    assert_eq!(found.seq, 5);
    assert!(matches!(found.reason, BreakReason::Malformed { field: "prev_mac", .. }), "{found}");
}

#[test]
fn deleting_a_record_is_detected_at_its_seq() {
    let keys = keyring();
    let original = chain(8, &keys);
    for gone in 0..7 {
        let mut records = original.clone();
        records.remove(gone);
        let seq = gone as u64 + 1;
        let found = break_at(&records, &keys);
        assert_eq!(found, ChainBreak { seq, reason: BreakReason::SeqMismatch { expected: seq, found: seq + 1 } });
        assert_eq!(found.to_string(), format!("chain breaks at seq {seq}: expected seq {seq}, found {}", seq + 1));
    }
    // Deleting and renumbering the rest breaks the link instead.
    let mut records = original.clone();
    records.remove(4);
    for r in &mut records[4..] {
        r.seq -= 1;
    }
    assert_eq!(break_at(&records, &keys), ChainBreak { seq: 5, reason: BreakReason::PrevMacMismatch });
}

#[test]
fn inserting_a_record_is_detected_at_its_seq() {
    let keys = keyring();
    let original = chain(8, &keys);
    // A forged record 5 that links correctly to record 4 but was not signed
    // with the key, the later ones renumbered.
    let mut forged = original[4].clone();
    forged.kind = "token.revoked".into();
    forged.actor = "mallory".into();
    let mut records = original.clone();
    records.insert(4, forged.clone());
    for (i, r) in records.iter_mut().enumerate().skip(5) {
        r.seq = i as u64 + 1;
    }
    assert_eq!(break_at(&records, &keys), ChainBreak { seq: 5, reason: BreakReason::MacMismatch });
    // Inserted without renumbering: a duplicate seq.
    let mut records = original.clone();
    records.insert(5, original[4].clone());
    assert_eq!(
        break_at(&records, &keys),
        ChainBreak { seq: 6, reason: BreakReason::SeqMismatch { expected: 6, found: 5 } }
    );
    // A record sealed with a different key (an attacker's) at the end.
    let attacker = Keyring::new("k1", b"not-the-real-key-material-0123456789").unwrap();
    let mut records = original.clone();
    let entry = Entry::new(9, ts(9), "token.used", "mallory");
    records.push(seal(entry, &original[7].mac().unwrap(), &attacker).unwrap());
    assert_eq!(break_at(&records, &keys), ChainBreak { seq: 9, reason: BreakReason::MacMismatch });
}

#[test]
fn reordering_records_is_detected_at_the_first_moved_seq() {
    let keys = keyring();
    let original = chain(8, &keys);
    for first in 0..7 {
        let seq = first as u64 + 1;
        let mut records = original.clone();
        records.swap(first, first + 1);
        assert_eq!(
            break_at(&records, &keys),
            ChainBreak { seq, reason: BreakReason::SeqMismatch { expected: seq, found: seq + 1 } }
        );
        // Swapped and renumbered: the link breaks.
        records[first].seq = seq;
        records[first + 1].seq = seq + 1;
        assert_eq!(break_at(&records, &keys), ChainBreak { seq, reason: BreakReason::PrevMacMismatch });
    }
    // Two records far apart swapped.
    let mut records = original.clone();
    records.swap(2, 6);
    assert_eq!(break_at(&records, &keys).seq, 3);
}

#[test]
fn key_rotation_mid_chain_verifies() {
    let mut keys = keyring();
    let mut records = chain(4, &keys);
    keys.rotate("k2", SECRET_2).unwrap();
    assert_eq!(keys.current_key_id(), "k2");
    for seq in 5..=8 {
        let prev = records.last().unwrap().mac().unwrap();
        records.push(seal(full_entry(seq), &prev, &keys).unwrap());
    }
    assert!(records[..4].iter().all(|r| r.key_id == "k1"));
    assert!(records[4..].iter().all(|r| r.key_id == "k2"));
    let summary = verify_chain(&records, &keys, &ChainStart::genesis()).unwrap();
    assert_eq!(summary.count, 8);
    assert_eq!(summary.key_ids.iter().collect::<Vec<_>>(), ["k1", "k2"]);

    // An auditor's keyring built the other way round (k1 retired) agrees.
    let mut auditor = Keyring::new("k2", SECRET_2).unwrap();
    auditor.add_retired("k1", SECRET_1).unwrap();
    assert_eq!(auditor.current_key_id(), "k2");
    assert_eq!(verify(&records, &auditor).unwrap(), 8);

    // Without the old key, the first record it signed is reported.
    let only_new = Keyring::new("k2", SECRET_2).unwrap();
    assert_eq!(break_at(&records, &only_new), ChainBreak { seq: 1, reason: BreakReason::UnknownKey("k1".into()) });
    assert_eq!(break_at(&records, &only_new).to_string(), "chain breaks at seq 1: unknown key id `k1`");
    // But the range signed by the new key verifies alone.
    let start = ChainStart::new(5, records[3].mac().unwrap());
    assert_eq!(verify_chain(&records[4..], &only_new, &start).unwrap().count, 4);
}

/// A key that carries the seq it signs from bounds the key before it
/// (issue 19, row 7): a leaked retired key cannot extend the log.
#[test]
fn a_retired_key_cannot_sign_past_its_successors_start() {
    let mut keys = keyring();
    let mut records = chain(4, &keys);
    keys.rotate_from("k2", SECRET_2, Some(5)).unwrap();
    assert_eq!((keys.range("k1"), keys.range("k2")), (Some((1, Some(5))), Some((5, None))));
    for seq in 5..=6 {
        let prev = records.last().unwrap().mac().unwrap();
        records.push(seal(full_entry(seq), &prev, &keys).unwrap());
    }
    assert_eq!(verify(&records, &keys).unwrap(), 6);

    // Whoever still holds k1 appends record 7 with a correct link and MAC...
    let leaked = keyring();
    let prev = records.last().unwrap().mac().unwrap();
    records.push(seal(full_entry(7), &prev, &leaked).unwrap());
    // ...which an unbounded keyring accepts, and the bounded one refuses.
    let mut unbounded = keyring();
    unbounded.rotate("k2", SECRET_2).unwrap();
    assert_eq!(verify(&records, &unbounded).unwrap(), 7);
    let found = break_at(&records, &keys);
    assert_eq!(
        found,
        ChainBreak { seq: 7, reason: BreakReason::KeyOutOfRange { key_id: "k1".into(), from: 1, end: Some(5) } }
    );
    assert_eq!(found.to_string(), "chain breaks at seq 7: key `k1` signs seq 1..4, not this one");

    // The sealer refuses to sign outside the current key's range, and a
    // start that does not follow the previous one is refused.
    let mut early = keyring();
    early.rotate_from("k2", SECRET_2, Some(100)).unwrap();
    let prev = records[3].mac().unwrap();
    assert_eq!(
        seal(full_entry(5), &prev, &early).unwrap_err(),
        SealError::KeyOutOfRange { key_id: "k2".into(), seq: 5 }
    );
    assert_eq!(
        early.rotate_from("k3", SECRET_1, Some(50)).unwrap_err(),
        KeyringError::StartsTooEarly { key_id: "k3".into(), from: 50, previous: 100 }
    );
}

#[test]
fn ranges_verify_from_the_previous_mac() {
    let keys = keyring();
    let records = chain(12, &keys);
    let start = ChainStart::new(5, records[3].mac().unwrap());
    let summary = verify_chain(&records[4..9], &keys, &start).unwrap();
    assert_eq!((summary.count, summary.first_seq, summary.last_seq), (5, Some(5), Some(9)));
    // Page by page covers the whole log.
    let mut next = ChainStart::genesis();
    for page in records.chunks(5) {
        next = verify_chain(page, &keys, &next).unwrap().next_start();
    }
    assert_eq!(next, ChainStart::new(13, records[11].mac().unwrap()));
    // A wrong starting MAC or seq is reported at the range's first record.
    let wrong_mac = ChainStart::new(5, records[2].mac().unwrap());
    assert_eq!(
        verify_chain(&records[4..9], &keys, &wrong_mac).unwrap_err(),
        ChainBreak { seq: 5, reason: BreakReason::PrevMacMismatch }
    );
    let wrong_seq = ChainStart::new(6, records[3].mac().unwrap());
    assert_eq!(
        verify_chain(&records[4..9], &keys, &wrong_seq).unwrap_err(),
        ChainBreak { seq: 6, reason: BreakReason::SeqMismatch { expected: 6, found: 5 } }
    );
}

#[test]
fn cutting_off_the_newest_records_is_caught_by_a_checkpoint() {
    let keys = keyring();
    let records = chain(8, &keys);
    let leaves: Vec<merkle::Hash> = records.iter().map(|r| r.leaf_hash().unwrap()).collect();
    let checkpoint = Checkpoint::sign(8, &merkle::root(&leaves), "2026-03-01T13:00:00Z", &keys).unwrap();

    // The chain alone cannot tell that records 7 and 8 are gone...
    let cut = &records[..6];
    assert_eq!(verify(cut, &keys).unwrap(), 6);
    // ...but the kept checkpoint can: no size-6 log proves consistency with it.
    checkpoint.verify(&keys).unwrap();
    let cut_leaves: Vec<merkle::Hash> = cut.iter().map(|r| r.leaf_hash().unwrap()).collect();
    assert!(cut_leaves.len() < checkpoint.tree_size as usize);
    assert_ne!(merkle::root(&cut_leaves), checkpoint.root_hash().unwrap());
    // While the intact log proves it extends an older checkpoint.
    let old = Checkpoint::sign(6, &merkle::root(&cut_leaves), "2026-03-01T12:30:00Z", &keys).unwrap();
    let proof = merkle::consistency_proof(&leaves, 6, 8).unwrap();
    merkle::verify_consistency(6, 8, &old.root_hash().unwrap(), &checkpoint.root_hash().unwrap(), &proof).unwrap();
    // And every record is provably in it.
    for (i, leaf) in leaves.iter().enumerate() {
        let proof = merkle::inclusion_proof(&leaves, i as u64, 8).unwrap();
        merkle::verify_inclusion(leaf, i as u64, 8, &proof, &checkpoint.root_hash().unwrap()).unwrap();
    }
}

#[test]
fn checkpoints_sign_verify_and_detect_tampering() {
    let keys = keyring();
    let root = merkle::leaf_hash(b"x");
    let checkpoint = Checkpoint::sign(1, &root, "2026-03-01T13:00:00Z", &keys).unwrap();
    checkpoint.verify(&keys).unwrap();
    assert_eq!(checkpoint.key_id, "k1");
    assert_eq!(checkpoint.root, hex::encode(root));
    assert_eq!(checkpoint.root_hash().unwrap(), root);

    // MAC = HMAC(key, JCS of the other fields), recomputed independently.
    let mut stored = serde_json::to_value(&checkpoint).unwrap();
    let mac = stored.as_object_mut().unwrap().remove("mac").unwrap();
    let mut hmac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET_1).unwrap();
    hmac.update(&serde_json_canonicalizer::to_vec(&stored).unwrap());
    assert_eq!(hex::encode(hmac.finalize().into_bytes()), mac.as_str().unwrap());

    let back: Checkpoint = serde_json::from_str(&serde_json::to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(back, checkpoint);

    let tampered = [
        Checkpoint { tree_size: 2, ..checkpoint.clone() },
        Checkpoint { root: hex::encode(merkle::leaf_hash(b"y")), ..checkpoint.clone() },
        Checkpoint { ts: "2026-03-01T13:00:01Z".into(), ..checkpoint.clone() },
        Checkpoint { mac: "0".repeat(64), ..checkpoint.clone() },
    ];
    for t in &tampered {
        assert_eq!(t.verify(&keys), Err(CheckpointError::MacMismatch), "{t:?}");
    }
    let unknown = Checkpoint { key_id: "k9".into(), ..checkpoint.clone() };
    assert_eq!(unknown.verify(&keys), Err(CheckpointError::UnknownKey("k9".into())));
    let bad_root = Checkpoint { root: "zz".into(), ..checkpoint.clone() };
    assert!(matches!(bad_root.verify(&keys), Err(CheckpointError::Malformed { field: "root", .. })));

    // Rotation: an old checkpoint still verifies with its retired key.
    let mut rotated = keyring();
    rotated.rotate("k2", SECRET_2).unwrap();
    checkpoint.verify(&rotated).unwrap();
    assert_eq!(Checkpoint::sign(1, &root, "2026-03-01T13:00:00Z", &rotated).unwrap().key_id, "k2");
    assert_eq!(
        Checkpoint::sign(MAX_SEQ + 1, &root, "2026-03-01T13:00:00Z", &keys),
        Err(SealError::TreeSizeOutOfRange(MAX_SEQ + 1))
    );
}

#[test]
fn sealing_refuses_entries_it_cannot_sign_faithfully() {
    let keys = keyring();
    let seal_entry = |entry: Entry| seal(entry, &Mac::ZERO, &keys);
    assert_eq!(seal_entry(Entry::new(0, ts(0), "decision", "a")), Err(SealError::SeqOutOfRange(0)));
    assert_eq!(seal_entry(Entry::new(MAX_SEQ + 1, ts(1), "decision", "a")), Err(SealError::SeqOutOfRange(1 << 53)));
    assert!(seal_entry(Entry::new(MAX_SEQ, ts(1), "decision", "a")).is_ok());
    for bad in ["yesterday", "2026-03-01 12:00:00", "2026-03-01T12:00:00+02:00", ""] {
        assert!(
            matches!(seal_entry(Entry::new(1, bad, "decision", "a")), Err(SealError::InvalidTimestamp { .. })),
            "{bad}"
        );
    }
    assert!(seal_entry(Entry::new(1, "2026-03-01T12:00:00.123456+00:00", "decision", "a")).is_ok());
    assert_eq!(seal_entry(Entry::new(1, ts(1), "", "a")), Err(SealError::EmptyField("kind")));
    assert_eq!(seal_entry(Entry::new(1, ts(1), "decision", "")), Err(SealError::EmptyField("actor")));
}

#[test]
fn keyrings_guard_their_keys() {
    let secret = b"super-secret-key-material-0123456789";
    let mut keys = Keyring::new("2026-03", secret).unwrap();
    keys.rotate("2026-04", SECRET_2).unwrap();
    let debug = format!("{keys:?}");
    assert!(debug.contains("2026-03") && debug.contains("2026-04"), "{debug}");
    for leaked in ["super-secret", "k2-secret", &hex::encode(secret)[..16]] {
        assert!(!debug.contains(leaked), "{debug}");
    }
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), ["2026-03", "2026-04"]);
    assert!(keys.contains("2026-03") && !keys.contains("k1"));

    assert_eq!(Keyring::new("k1", b"short").unwrap_err(), KeyringError::WeakSecret { key_id: "k1".into(), len: 5 });
    assert_eq!(keys.rotate("2026-03", SECRET_1), Err(KeyringError::DuplicateKeyId("2026-03".into())));
    assert_eq!(keys.current_key_id(), "2026-04", "a failed rotation keeps the current key");
    for bad in ["", "has space", "x".repeat(65).as_str(), "é"] {
        assert_eq!(Keyring::new(bad, SECRET_1).unwrap_err(), KeyringError::InvalidKeyId(bad.into()));
    }
    assert_eq!(
        KeyringError::WeakSecret { key_id: "k1".into(), len: 5 }.to_string(),
        "the secret of key `k1` has 5 bytes: use at least 32 random bytes"
    );
}
