//! The offline proof file (`c2sp.org/tlog-proof@v1`): one record's entry,
//! its inclusion proof and the signed checkpoint the proof leads to, so an
//! auditor can check that the record is in the log with the log's public
//! key alone, no database and no secret.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the record's entry: its canonical JSON>
//! index <leaf index, seq − 1>
//! <base64 hash>            (the inclusion proof, leaf level first)
//! …
//!
//! <the checkpoint note, verbatim>
//! ```
//!
//! The spec leaves `extra` to the application; warrant puts the entry
//! there, so the file carries what it proves.
//!
//! The checkpoint may carry witnesses' cosignatures (`cosignature.rs`):
//! [`ProofFile::verify_witnessed`] also requires a quorum of them, so that a
//! log showing the auditor a history of its own cannot pass.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::cosignature::{self, CosignatureError, CosignatureVerifier, Cosigned};
use super::log_checkpoint::LogCheckpoint;
use super::merkle::{self, Hash};
use super::note::{Note, NoteVerifier};

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Inclusion proofs are at most this long (a tree of 2^63 leaves).
const MAX_PROOF: usize = 63;

/// A parsed proof file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofFile {
    /// The record's entry (its canonical JSON).
    pub entry: Vec<u8>,
    pub index: u64,
    pub proof: Vec<Hash>,
    /// The checkpoint note, as signed.
    pub checkpoint: Note,
}

/// Why a proof file was refused, or does not prove its record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFileError {
    #[error("malformed proof file: {0}")]
    Malformed(String),
    #[error("the checkpoint: {0}")]
    Checkpoint(String),
    #[error("the checkpoint's origin `{0}` is not the name of a key that signed it")]
    Origin(String),
    #[error("the record is not in the log the checkpoint signs: {0}")]
    NotIncluded(String),
    #[error("the checkpoint's witnesses: {0}")]
    Witnesses(CosignatureError),
}

impl ProofFile {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\nextra {}\nindex {}\n", BASE64.encode(&self.entry), self.index);
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_string());
        out
    }

    pub fn parse(text: &str) -> Result<Self, ProofFileError> {
        let malformed = |m: &str| ProofFileError::Malformed(m.to_owned());
        let (head, note) = text.split_once("\n\n").ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(malformed("the first line must be `c2sp.org/tlog-proof@v1`"));
        }
        let mut line = lines.next().ok_or_else(|| malformed("no `index` line"))?;
        let mut entry = None;
        if let Some(extra) = line.strip_prefix("extra ") {
            entry = Some(BASE64.decode(extra).map_err(|_| malformed("`extra` is not base64"))?);
            line = lines.next().ok_or_else(|| malformed("no `index` line"))?;
        }
        let entry = entry.ok_or_else(|| malformed("no `extra` line: warrant's proofs carry the record's entry"))?;
        let index = line.strip_prefix("index ").ok_or_else(|| malformed("no `index` line"))?;
        if index.is_empty() || (index.len() > 1 && index.starts_with('0')) || !index.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed("the index is not decimal"));
        }
        let index = index.parse().map_err(|_| malformed("the index is too large"))?;
        let proof = lines
            .map(|l| BASE64.decode(l).ok().and_then(|h| Hash::try_from(h).ok()))
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| malformed("a proof line is not a base64 SHA-256 hash"))?;
        if proof.len() > MAX_PROOF {
            return Err(malformed("the proof is longer than any tree needs"));
        }
        let checkpoint = Note::parse(note.as_bytes()).map_err(|e| ProofFileError::Checkpoint(e.to_string()))?;
        Ok(Self { entry, index, proof, checkpoint })
    }

    /// Checks the checkpoint's signature with `verifiers` (the log's keys),
    /// that its origin is a signer's name, and that the entry is leaf
    /// `index` of the tree it signs. Returns the checkpoint.
    pub fn verify(&self, verifiers: &[NoteVerifier]) -> Result<LogCheckpoint, ProofFileError> {
        let checkpoint = self.signed_checkpoint(verifiers)?;
        self.check_inclusion(&checkpoint)?;
        Ok(checkpoint)
    }

    /// [`ProofFile::verify`], and also that at least `quorum` of `witnesses`
    /// cosigned the checkpoint, in the spec's order: log signature,
    /// cosignatures, inclusion. Returns the checkpoint and who cosigned it
    /// when; judging the times is the caller's (the engine reads no clock).
    pub fn verify_witnessed(
        &self,
        verifiers: &[NoteVerifier],
        witnesses: &[CosignatureVerifier],
        quorum: usize,
    ) -> Result<(LogCheckpoint, Vec<Cosigned>), ProofFileError> {
        let checkpoint = self.signed_checkpoint(verifiers)?;
        let cosigned =
            cosignature::witnessed(&self.checkpoint, witnesses, quorum).map_err(ProofFileError::Witnesses)?;
        self.check_inclusion(&checkpoint)?;
        Ok((checkpoint, cosigned))
    }

    /// The checkpoint, if a key of `verifiers` named as its origin signed it.
    fn signed_checkpoint(&self, verifiers: &[NoteVerifier]) -> Result<LogCheckpoint, ProofFileError> {
        let signed_by = self.checkpoint.verify(verifiers).map_err(|e| ProofFileError::Checkpoint(e.to_string()))?;
        let checkpoint =
            LogCheckpoint::parse(self.checkpoint.text()).map_err(|e| ProofFileError::Checkpoint(e.to_string()))?;
        if signed_by.iter().all(|v| v.name() != checkpoint.origin) {
            return Err(ProofFileError::Origin(checkpoint.origin));
        }
        Ok(checkpoint)
    }

    /// Whether the entry is leaf `index` of the tree `checkpoint` signs.
    fn check_inclusion(&self, checkpoint: &LogCheckpoint) -> Result<(), ProofFileError> {
        let leaf = merkle::leaf_hash(&self.entry);
        merkle::verify_inclusion(&leaf, self.index, checkpoint.tree_size, &self.proof, &checkpoint.root)
            .map_err(|e| ProofFileError::NotIncluded(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;
    use crate::audit::cosignature::CosignerKey;
    use crate::audit::note::NoteSigner;

    fn file(entries: &[&[u8]], index: usize) -> (ProofFile, NoteVerifier) {
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let size = leaves.len() as u64;
        let signer = NoteSigner::from_seed("example.com/log", [5; 32]).unwrap();
        let head = LogCheckpoint { origin: "example.com/log".into(), tree_size: size, root: merkle::root(&leaves) };
        let checkpoint = Note::sign(&head.text(), &[&signer]).unwrap();
        let proof = merkle::inclusion_proof(&leaves, index as u64, size).unwrap();
        (ProofFile { entry: entries[index].to_vec(), index: index as u64, proof, checkpoint }, signer.verifier())
    }

    #[test]
    fn round_trips_and_proves_its_record() {
        let entries: Vec<&[u8]> = vec![b"{\"seq\":1}", b"{\"seq\":2}", b"{\"seq\":3}", b"{\"seq\":4}", b"{\"seq\":5}"];
        for index in 0..entries.len() {
            let (proof, key) = file(&entries, index);
            let text = proof.to_text();
            let parsed = ProofFile::parse(&text).unwrap();
            assert_eq!(parsed, proof);
            assert_eq!(parsed.verify(std::slice::from_ref(&key)).unwrap().tree_size, 5);
        }
    }

    #[test]
    fn a_changed_record_index_proof_or_key_is_refused() {
        let entries: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d"];
        let (proof, key) = file(&entries, 2);
        let keys = [key];
        let mut other = proof.clone();
        other.entry = b"C".to_vec();
        assert!(matches!(other.verify(&keys), Err(ProofFileError::NotIncluded(_))));
        let mut other = proof.clone();
        other.index = 1;
        assert!(matches!(other.verify(&keys), Err(ProofFileError::NotIncluded(_))));
        let mut other = proof.clone();
        other.proof[0][0] ^= 1;
        assert!(matches!(other.verify(&keys), Err(ProofFileError::NotIncluded(_))));
        let stranger = NoteSigner::from_seed("example.com/log", [6; 32]).unwrap().verifier();
        assert!(matches!(proof.verify(&[stranger]), Err(ProofFileError::Checkpoint(_))));
        for text in [
            proof.to_text().replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            proof.to_text().replacen("index 2", "index 02", 1),
            proof.to_text().replacen("\nextra ", "\nextra !", 1),
            proof.to_text().replacen("index 2\n", "index 2\nnot-a-hash\n", 1),
        ] {
            assert!(matches!(ProofFile::parse(&text), Err(ProofFileError::Malformed(_))), "{text}");
        }
    }

    #[test]
    fn a_quorum_of_witnesses_is_required() {
        let entries: Vec<&[u8]> = vec![b"a", b"b", b"c"];
        let (mut proof, key) = file(&entries, 1);
        let keys: Vec<CosignerKey> =
            (1..=3).map(|i| CosignerKey::from_seed(&format!("w{i}.example"), [i; 32]).unwrap()).collect();
        let witnesses: Vec<CosignatureVerifier> = keys.iter().map(CosignerKey::verifier).collect();
        for (k, time) in keys.iter().take(2).zip([100, 200]) {
            let line = k.cosign(proof.checkpoint.text(), time).unwrap().line;
            proof.checkpoint.add_signature_lines(&format!("{line}\n")).unwrap();
        }
        let proof = ProofFile::parse(&proof.to_text()).unwrap();
        let logs = [key];

        let (head, cosigned) = proof.verify_witnessed(&logs, &witnesses, 2).unwrap();
        assert_eq!(head.tree_size, 3);
        assert_eq!(
            cosigned.iter().map(|c| (c.name.as_str(), c.timestamp)).collect::<Vec<_>>(),
            [("w1.example", 100), ("w2.example", 200)]
        );
        assert_eq!(proof.verify(&logs).unwrap(), head, "`verify` ignores cosignatures");

        let err = proof.verify_witnessed(&logs, &witnesses, 3).unwrap_err();
        assert_eq!(err, ProofFileError::Witnesses(CosignatureError::Quorum { cosigned: 2, known: 3, quorum: 3 }));
        assert_eq!(
            err.to_string(),
            "the checkpoint's witnesses: 2 of 3 known witnesses cosigned the checkpoint, 3 required"
        );

        // A cosignature changed in its timestamp no longer verifies.
        let line = &proof.checkpoint.signatures()[2].line;
        let (name, encoded) = line.trim_start_matches("\u{2014} ").split_once(' ').unwrap();
        let mut bytes = BASE64.decode(encoded).unwrap();
        bytes[11] ^= 1; // the timestamp's last byte
        let forged = format!("\u{2014} {name} {}", BASE64.encode(bytes));
        let tampered = ProofFile::parse(&proof.to_text().replacen(line.as_str(), &forged, 1)).unwrap();
        assert_eq!(
            tampered.verify_witnessed(&logs, &witnesses, 1),
            Err(ProofFileError::Witnesses(CosignatureError::BadSignature("w2.example".into())))
        );
        // Without a log signature, cosignatures do not help.
        let stranger = NoteSigner::from_seed("example.com/log", [6; 32]).unwrap().verifier();
        assert!(matches!(proof.verify_witnessed(&[stranger], &witnesses, 2), Err(ProofFileError::Checkpoint(_))));
    }
}
