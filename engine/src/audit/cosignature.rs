//! Witness cosignatures (`c2sp.org/tlog-cosignature@v1.0.1`, Ed25519 only):
//! a witness's signed statement that, as of a time, the checkpoint is the
//! largest tree it has seen for the log and consistent with every earlier
//! one. A client that requires a quorum of witnesses before trusting a
//! checkpoint cannot be shown a split view of the log unless the witnesses
//! collude with it.
//!
//! A cosignature is an ordinary note signature line (`note.rs`) whose key id
//! is `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[..4]` and whose bytes after the
//! id are `timestamp (u64, big-endian) ‖ Ed25519 signature`, 72 bytes, over
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <the checkpoint's note text, final newline included>
//! ```
//!
//! Keys are written as the note keys are, with type `0x04`: verifier keys
//! `<name>+<hex id>+<base64(0x04 ‖ public key)>`, signer keys
//! `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 ‖ seed)>`. The type byte in the
//! id keeps a cosignature from ever passing as a log signature, or the
//! reverse. The signed message does not name the witness, so each witness
//! needs a key of its own.
//!
//! ML-DSA-44 cosignatures (type `0x06`, tlog-cosignature v1.1) are not
//! supported: their lines have another key id and are ignored like any
//! unknown key's. The timestamps are returned, not judged: the engine reads
//! no clock, so rejecting future ones (which the spec allows) is the caller's.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::note::{self, Note, NoteError, NoteSignature};

/// The signature type byte of an Ed25519 cosignature (timestamped).
pub const COSIGNATURE_V1: u8 = 0x04;
/// The largest timestamp a cosignature may carry, 2^63 − 1.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// The bytes of a cosignature after the key id: timestamp and signature.
const SIGNATURE_LEN: usize = 8 + 64;

/// Why a cosignature could not be made, or a checkpoint is not witnessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("timestamp `{0}` exceeds 2^63 - 1")]
    TimestampTooLarge(u64),
    #[error("a witness's cosignature must not have timestamp 0")]
    ZeroTimestamp,
    #[error("the cosignature by `{0}` does not verify")]
    BadSignature(String),
    #[error("{cosigned} of {known} known witnesses cosigned the checkpoint, {quorum} required")]
    Quorum { cosigned: usize, known: usize, quorum: usize },
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// The message a cosignature signs: header, time, then the note text.
fn message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A signature's bytes after the key id, split into timestamp and Ed25519
/// signature; `None` unless exactly 72 bytes with a timestamp in range.
fn split_signature(bytes: &[u8]) -> Option<(u64, ed25519_dalek::Signature)> {
    if bytes.len() != SIGNATURE_LEN {
        return None;
    }
    let (time, signature) = bytes.split_at(8);
    let timestamp = u64::from_be_bytes(time.try_into().ok()?);
    if timestamp > MAX_TIMESTAMP {
        return None;
    }
    Some((timestamp, ed25519_dalek::Signature::from_slice(signature).ok()?))
}

/// The Ed25519 key material of a type `0x04` key: 32 bytes after the type.
fn key_material(key: &[u8], what: &'static str) -> Result<[u8; 32], NoteError> {
    let Some((&COSIGNATURE_V1, material)) = key.split_first() else {
        return Err(NoteError::Key("not an Ed25519 cosignature key (type 0x04)"));
    };
    material.try_into().map_err(|_| NoteError::Key(what))
}

/// A witness's public key, to check its cosignatures.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses a verifier key `<name>+<hex id>+<base64(0x04 ‖ public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = note::split_key(vkey.trim())?;
        let public = key_material(&key, "an Ed25519 public key is 32 bytes")?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::Key("not an Ed25519 public key"))?;
        if note::key_id(name, COSIGNATURE_V1, &public) != id {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(Self { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The timestamp of `signature` (the bytes after the key id) if it is
    /// this key's cosignature of `text`.
    fn verify(&self, text: &str, signature: &[u8]) -> Option<u64> {
        let (timestamp, signature) = split_signature(signature)?;
        self.key.verify_strict(message(text, timestamp).as_bytes(), &signature).ok()?;
        Some(timestamp)
    }
}

/// The verifier key string.
impl fmt::Display for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&note::key_text(&self.name, self.id, COSIGNATURE_V1, self.key.as_bytes()))
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureVerifier({self})")
    }
}

/// A witness's signing key. Its `Debug` shows only the public half.
pub struct CosignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl CosignerKey {
    /// A key named `name` from 32 random bytes (the caller's: the engine
    /// has no source of randomness of its own).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        let (id, key) = note::signing_key(name, COSIGNATURE_V1, seed)?;
        Ok(Self { name: name.to_owned(), id, key })
    }

    /// Parses a signer key `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 ‖ seed)>`.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = note::split_signer_key(skey)?;
        let seed = key_material(&key, "an Ed25519 private key is 32 bytes")?;
        let signer = Self::from_seed(name, seed)?;
        if signer.id != id {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer key string: secret, for the key file only.
    pub fn to_skey(&self) -> String {
        format!("PRIVATE+KEY+{}", note::key_text(&self.name, self.id, COSIGNATURE_V1, self.key.as_bytes()))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The cosignature of `text` (a checkpoint's note text, final newline
    /// included, no signatures) at `timestamp` (POSIX seconds, from the
    /// caller's clock). Its `line` is the signature line, without newline.
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        note::check_text(text)?;
        let mut bytes = Vec::with_capacity(4 + SIGNATURE_LEN);
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.key.sign(message(text, timestamp).as_bytes()).to_bytes());
        let line = format!("{}{} {}", note::SIGNATURE_PREFIX, self.name, BASE64.encode(bytes));
        Ok(note::parse_signature(&line)?)
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignerKey({})", self.verifier())
    }
}

/// A witness whose cosignature on a checkpoint verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    pub name: String,
    /// When the witness cosigned (POSIX seconds, the witness's clock): the
    /// latest, if it cosigned more than once.
    pub timestamp: u64,
}

/// The witnesses in `witnesses` whose cosignature is on `note` and verifies,
/// each once, in the order of their first line. As for log signatures,
/// lines of unknown keys (another name or id) are ignored, and a known key's
/// line that does not verify is an error: someone forged or damaged it.
pub fn cosignatures(note: &Note, witnesses: &[CosignatureVerifier]) -> Result<Vec<Cosigned>, CosignatureError> {
    let mut cosigned: Vec<(&CosignatureVerifier, u64)> = Vec::new();
    for s in note.signatures() {
        let Some(key) = witnesses.iter().find(|k| k.name == s.name && k.id == s.id) else { continue };
        let timestamp =
            key.verify(note.text(), &s.signature).ok_or_else(|| CosignatureError::BadSignature(s.name.clone()))?;
        match cosigned.iter_mut().find(|(k, _)| k.name == key.name && k.id == key.id) {
            Some((_, latest)) => *latest = (*latest).max(timestamp),
            None => cosigned.push((key, timestamp)),
        }
    }
    Ok(cosigned.into_iter().map(|(k, timestamp)| Cosigned { name: k.name.clone(), timestamp }).collect())
}

/// [`cosignatures`], required from at least `quorum` of `witnesses`: the
/// check a client makes before trusting a checkpoint (its log signature is
/// checked separately, with [`Note::verify`]).
pub fn witnessed(
    note: &Note,
    witnesses: &[CosignatureVerifier],
    quorum: usize,
) -> Result<Vec<Cosigned>, CosignatureError> {
    let cosigned = cosignatures(note, witnesses)?;
    if cosigned.len() < quorum {
        return Err(CosignatureError::Quorum { cosigned: cosigned.len(), known: witnesses.len(), quorum });
    }
    Ok(cosigned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    /// The seed of Go's `PeterNeumann` test key, reused (for a test only:
    /// one key must not serve two types) as a witness key.
    fn go_seed() -> [u8; 32] {
        let key = BASE64.decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        key[1..].try_into().unwrap()
    }

    // c2sp.org/tlog-cosignature's example checkpoint and time.
    const SOFA: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const SOFA_LOG_LINE: &str = "\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=";
    const TIME: u64 = 1_679_315_147;
    // Computed for the research memo with Python's `cryptography` over SOFA at TIME.
    const W1_VKEY: &str = "witness.example/w1+cc9a7044+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const W1_LINE: &str = "\u{2014} witness.example/w1 zJpwRAAAAABkGFDLJeR//pqzhnEKVvEm2wWbh2RJ6oru5+cUUfm5X9NnlaGr8aSH9QE5RVZD4QGlxl2F5UpVIIi94p178KLfqPPsAA==";

    fn sofa(lines: &[&str]) -> Note {
        let mut text = format!("{SOFA}\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        Note::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_memo_vector_signs_and_verifies() {
        let key = CosignerKey::from_seed("witness.example/w1", go_seed()).unwrap();
        assert_eq!(key.verifier().id(), 0xcc9a_7044);
        assert_eq!(key.verifier().to_string(), W1_VKEY);
        assert_eq!(CosignatureVerifier::parse(W1_VKEY).unwrap(), key.verifier());
        // Ed25519 is deterministic: the line is the memo's, byte for byte.
        let signature = key.cosign(SOFA, TIME).unwrap();
        assert_eq!(signature.line, W1_LINE);
        assert_eq!((signature.id, signature.signature.len()), (0xcc9a_7044, 72));
        let note = sofa(&[SOFA_LOG_LINE, W1_LINE]);
        let witnesses = [key.verifier()];
        assert_eq!(
            witnessed(&note, &witnesses, 1).unwrap(),
            [Cosigned { name: "witness.example/w1".into(), timestamp: TIME }]
        );
        let skey = key.to_skey();
        assert!(skey.starts_with("PRIVATE+KEY+witness.example/w1+cc9a7044+B"), "{skey}");
        assert_eq!(CosignerKey::parse(&skey).unwrap().verifier(), key.verifier());
    }

    #[test]
    fn the_spec_example_line_decodes() {
        // c2sp.org/tlog-cosignature's example; its public key is not published.
        let note = sofa(&[
            SOFA_LOG_LINE,
            "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
        ]);
        let line = &note.signatures()[1];
        assert_eq!((line.name.as_str(), line.id), ("witness.example.com/w1", 0x8d66_cf3f));
        assert_eq!(split_signature(&line.signature).unwrap().0, TIME);
        // Known to nobody here: ignored, not an error.
        let ours = CosignerKey::from_seed("witness.example/w1", go_seed()).unwrap().verifier();
        assert_eq!(cosignatures(&note, &[ours]).unwrap(), []);
    }

    #[test]
    fn quorums_count_distinct_witnesses() {
        let keys: Vec<CosignerKey> =
            (1..=3).map(|i| CosignerKey::from_seed(&format!("w{i}.example"), [i; 32]).unwrap()).collect();
        let witnesses: Vec<CosignatureVerifier> = keys.iter().map(CosignerKey::verifier).collect();
        let line = |k: usize, t: u64| keys[k].cosign(SOFA, t).unwrap().line;
        let note = sofa(&[SOFA_LOG_LINE, &line(0, 10), &line(1, 20), &line(0, 30)]);
        let cosigned = witnessed(&note, &witnesses, 2).unwrap();
        assert_eq!(
            cosigned,
            [
                Cosigned { name: "w1.example".into(), timestamp: 30 },
                Cosigned { name: "w2.example".into(), timestamp: 20 }
            ]
        );
        let err = witnessed(&note, &witnesses, 3).unwrap_err();
        assert_eq!(err, CosignatureError::Quorum { cosigned: 2, known: 3, quorum: 3 });
        assert_eq!(err.to_string(), "2 of 3 known witnesses cosigned the checkpoint, 3 required");
        assert_eq!(witnessed(&sofa(&[SOFA_LOG_LINE]), &witnesses, 0).unwrap(), []);
    }

    #[test]
    fn bad_cosignatures_are_refused() {
        let key = CosignerKey::from_seed("w.example", [9; 32]).unwrap();
        let witnesses = [key.verifier()];
        let bad = |line: &str| cosignatures(&sofa(&[line]), &witnesses);
        let good = key.cosign(SOFA, TIME).unwrap();
        assert!(bad(&good.line).is_ok());
        // Another text, another time, a truncated or an overlong signature.
        let other = key.cosign("example.com/behind-the-sofa\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", TIME);
        let mut full = good.id.to_be_bytes().to_vec();
        full.extend_from_slice(&good.signature);
        let mut later = full.clone();
        later[11] ^= 1; // the timestamp's last byte
        let short = &full[..75];
        let long = [full.as_slice(), &[0]].concat();
        for line in [
            other.unwrap().line,
            format!("\u{2014} w.example {}", BASE64.encode(&later)),
            format!("\u{2014} w.example {}", BASE64.encode(short)),
            format!("\u{2014} w.example {}", BASE64.encode(&long)),
        ] {
            assert_eq!(bad(&line), Err(CosignatureError::BadSignature("w.example".into())), "{line}");
        }
        // A log signature by the same key is not a cosignature: its id differs.
        let log = note::NoteSigner::from_seed("w.example", [9; 32]).unwrap();
        let as_log = Note::sign(SOFA, &[&log]).unwrap();
        assert_eq!(cosignatures(&as_log, &witnesses).unwrap(), []);
        assert_eq!(key.cosign(SOFA, MAX_TIMESTAMP + 1), Err(CosignatureError::TimestampTooLarge(MAX_TIMESTAMP + 1)));
        assert!(key.cosign(SOFA, MAX_TIMESTAMP).is_ok());
        assert!(matches!(key.cosign("no newline", TIME), Err(CosignatureError::Note(_))));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for vkey in [
            "witness.example/w1+cc9a7045+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "witness.example/w2+cc9a7044+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "witness.example/w1+cc9a7044+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "witness.example/w1+cc9a7044+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
            "witness.example/w1+cc9a704+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "witness example/w1+cc9a7044+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(CosignatureVerifier::parse(vkey).is_err(), "{vkey}");
        }
        let key = CosignerKey::from_seed("witness.example/w1", go_seed()).unwrap();
        assert!(CosignerKey::parse(&key.to_skey().replace("cc9a7044", "cc9a7045")).is_err());
        // Go's note signer key (type 0x01) is not a cosigner key.
        assert!(
            CosignerKey::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
                .is_err()
        );
        assert!(CosignerKey::from_seed("a+b", [0; 32]).is_err());
        let debug = format!("{key:?}");
        assert_eq!(debug, format!("CosignerKey({W1_VKEY})"), "Debug shows the public key only");
    }
}
