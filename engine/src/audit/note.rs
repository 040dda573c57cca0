//! C2SP signed notes (`c2sp.org/signed-note@v1.0.0`) with Ed25519 keys:
//! the envelope of the log's checkpoints, which anyone holding the log's
//! public key can check, with no secret.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then signature
//! lines `— <key name> <base64(key id ‖ signature)>`. A key id is the first
//! four bytes of `SHA-256(name ‖ "\n" ‖ type ‖ public key)` (type `0x01`
//! for Ed25519). Keys are written as Go's `golang.org/x/mod/sumdb/note`
//! writes them: verifier keys `<name>+<hex id>+<base64(type ‖ public key)>`,
//! signer keys `PRIVATE+KEY+<name>+<hex id>+<base64(type ‖ seed)>`, so Go's
//! tools read ours and ours theirs.
//!
//! Written here rather than taken from the `signed_note` crate: the format
//! is small and fully specified, the crate's published version predates
//! C2SP's tile paths and cosignatures (`cosignature.rs`), and this keeps
//! parsing strict and panic-free in a server (see the spec's rejection rules
//! below, each tested).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// The signature type byte of an Ed25519 note signature.
pub const ED25519: u8 = 0x01;
/// Notes larger than this are refused (as Go's verifier does).
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// Notes with more signatures than this are refused (as Go's verifier does).
pub const MAX_SIGNATURES: usize = 100;
/// The em dash and space that start a signature line.
pub(super) const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key, a note or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("`{0}` is not a key name: it must be non-empty, with no spaces and no `+`")]
    KeyName(String),
    #[error("malformed key: {0}")]
    Key(&'static str),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("the signature by `{0}` does not verify")]
    BadSignature(String),
    #[error("no signature by a known key")]
    Unverified,
}

/// Whether `name` may name a key: non-empty, no Unicode space, no `+`.
pub fn is_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// `SHA-256(name ‖ "\n" ‖ alg ‖ public)[..4]`, big-endian.
pub fn key_id(name: &str, alg: u8, public: &[u8]) -> u32 {
    let digest = Sha256::new().chain_update(name).chain_update([b'\n', alg]).chain_update(public).finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(id)
}

/// `<name>+<hex id>+<base64(alg ‖ key)>`: how keys are written, verifier
/// keys as they are and signer keys after `PRIVATE+KEY+` (Go's format).
pub(super) fn key_text(name: &str, id: u32, alg: u8, key: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(1 + key.len());
    bytes.push(alg);
    bytes.extend_from_slice(key);
    format!("{name}+{id:08x}+{}", BASE64.encode(bytes))
}

/// The Ed25519 key of `seed` for a key named `name`, and its id as a key of
/// signature type `alg`.
pub(super) fn signing_key(name: &str, alg: u8, seed: [u8; 32]) -> Result<(u32, SigningKey), NoteError> {
    if !is_key_name(name) {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    let key = SigningKey::from_bytes(&seed);
    Ok((key_id(name, alg, key.verifying_key().as_bytes()), key))
}

fn parse_id(text: &str) -> Result<u32, NoteError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::Key("the key id must be 8 hex digits"));
    }
    u32::from_str_radix(text, 16).map_err(|_| NoteError::Key("the key id must be 8 hex digits"))
}

/// `<name>+<id>+<base64>` split at its first two `+` (base64 may hold `+`).
/// Shared with `cosignature.rs`, whose keys are written the same way.
pub(super) fn split_key(text: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let (name, rest) = text.split_once('+').ok_or(NoteError::Key("expected `<name>+<id>+<key>`"))?;
    let (id, key) = rest.split_once('+').ok_or(NoteError::Key("expected `<name>+<id>+<key>`"))?;
    if !is_key_name(name) {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    let id = parse_id(id)?;
    let key = BASE64.decode(key).map_err(|_| NoteError::Key("the key is not base64"))?;
    Ok((name, id, key))
}

/// `PRIVATE+KEY+<name>+<id>+<base64>` split like [`split_key`] (Go's signer
/// key convention, which `cosignature.rs` follows too).
pub(super) fn split_signer_key(text: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(NoteError::Key("expected `PRIVATE+KEY+…`"))?;
    split_key(rest)
}

/// A key that verifies a log's note signatures (witnesses' cosignatures
/// are checked by `cosignature::CosignatureVerifier`).
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<hex id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(vkey.trim())?;
        let Some((&ED25519, public)) = key.split_first() else {
            return Err(NoteError::Key("not an Ed25519 key (type 0x01)"));
        };
        let public: [u8; 32] = public.try_into().map_err(|_| NoteError::Key("an Ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::Key("not an Ed25519 public key"))?;
        if key_id(name, ED25519, &public) != id {
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

    /// Whether `signature` (without the key id) signs `text`.
    fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else { return false };
        self.key.verify_strict(text, &signature).is_ok()
    }
}

/// The verifier key string.
impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&key_text(&self.name, self.id, ED25519, self.key.as_bytes()))
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

/// A key that signs notes. Its `Debug` shows only the public half.
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl NoteSigner {
    /// A key named `name` from 32 random bytes (the caller's: the engine
    /// has no source of randomness of its own).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        let (id, key) = signing_key(name, ED25519, seed)?;
        Ok(Self { name: name.to_owned(), id, key })
    }

    /// Parses a signer key `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_signer_key(skey)?;
        let Some((&ED25519, seed)) = key.split_first() else {
            return Err(NoteError::Key("not an Ed25519 key (type 0x01)"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| NoteError::Key("an Ed25519 private key is 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.id != id {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer key string: secret, for the key file only.
    pub fn to_skey(&self) -> String {
        format!("PRIVATE+KEY+{}", key_text(&self.name, self.id, ED25519, self.key.as_bytes()))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The signature line (with its newline) of `text`, a note's text.
    fn signature_line(&self, text: &str) -> String {
        let mut signature = self.id.to_be_bytes().to_vec();
        signature.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(signature))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({})", self.verifier())
    }
}

/// One signature line: who claims to have signed, and the bytes after the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: u32,
    pub signature: Vec<u8>,
    /// The line as written, without its newline.
    pub line: String,
}

/// A signed note: its text and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// Whether `text` may be a note's text: ends in a newline, no control
/// characters but newlines.
pub(super) fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text must end in a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control characters other than newline"));
    }
    Ok(())
}

impl Note {
    /// A note of `text`, signed by each of `signers`.
    pub fn sign(text: &str, signers: &[&NoteSigner]) -> Result<Self, NoteError> {
        check_text(text)?;
        let mut note = Self { text: text.to_owned(), signatures: Vec::new() };
        for signer in signers {
            let line = signer.signature_line(text);
            note.signatures.push(parse_signature(line.trim_end_matches('\n'))?);
        }
        Ok(note)
    }

    /// Parses a note (its signatures unchecked: see [`Note::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("larger than 1 MiB"));
        }
        let all = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        let split = all.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, block) = (all.get(..=split).unwrap_or_default(), all.get(split + 2..).unwrap_or_default());
        check_text(text)?;
        if block.is_empty() || !block.ends_with('\n') {
            return Err(NoteError::Malformed("the signatures must end in a newline"));
        }
        let lines: Vec<&str> = block.trim_end_matches('\n').split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("more than 100 signatures"));
        }
        let signatures = lines.into_iter().map(parse_signature).collect::<Result<_, _>>()?;
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// The signed text, final newline included.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Appends signature lines (each ending in a newline), such as the body
    /// of a witness's `add-checkpoint` reply, so that the note carries the
    /// witnesses' cosignatures. The lines are parsed as strictly as
    /// [`Note::parse`] does, but not verified: that is
    /// `cosignature::witnessed`'s job. A line whose (name, key id) is already
    /// on the note is skipped, so adding the same reply twice changes
    /// nothing. On error the note is unchanged.
    pub fn add_signature_lines(&mut self, lines: &str) -> Result<(), NoteError> {
        let lines = lines.strip_suffix('\n').ok_or(NoteError::Malformed("the signatures must end in a newline"))?;
        let mut signatures = self.signatures.clone();
        let mut size = self.to_string().len();
        for line in lines.split('\n') {
            let signature = parse_signature(line)?;
            if signatures.iter().any(|s| s.name == signature.name && s.id == signature.id) {
                continue;
            }
            size += line.len() + 1;
            signatures.push(signature);
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("more than 100 signatures"));
        }
        if size > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("larger than 1 MiB"));
        }
        self.signatures = signatures;
        Ok(())
    }

    /// The verifiers in `known` whose signature is on the note and verifies.
    /// Signatures by unknown keys (another name or id) are ignored; a known
    /// key's signature that fails is an error, as is a note no known key signed.
    pub fn verify<'k>(&self, known: &'k [NoteVerifier]) -> Result<Vec<&'k NoteVerifier>, NoteError> {
        let mut verified: Vec<&NoteVerifier> = Vec::new();
        for s in &self.signatures {
            let Some(key) = known.iter().find(|k| k.name == s.name && k.id == s.id) else { continue };
            if !key.verifies(self.text.as_bytes(), &s.signature) {
                return Err(NoteError::BadSignature(s.name.clone()));
            }
            if !verified.iter().any(|v| std::ptr::eq(*v, key)) {
                verified.push(key);
            }
        }
        if verified.is_empty() {
            return Err(NoteError::Unverified);
        }
        Ok(verified)
    }
}

/// The note as served: text, blank line, signature lines.
impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            writeln!(f, "{}", s.line)?;
        }
        Ok(())
    }
}

/// Parses one signature line, without its newline.
pub(super) fn parse_signature(line: &str) -> Result<NoteSignature, NoteError> {
    let rest =
        line.strip_prefix(SIGNATURE_PREFIX).ok_or(NoteError::Malformed("a signature line must start with `— `"))?;
    let (name, encoded) =
        rest.split_once(' ').ok_or(NoteError::Malformed("a signature line is `— <name> <base64>`"))?;
    if !is_key_name(name) {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    let bytes = BASE64.decode(encoded).map_err(|_| NoteError::Malformed("a signature is not base64"))?;
    if bytes.len() < 5 {
        return Err(NoteError::Malformed("a signature is shorter than 5 bytes"));
    }
    let (id, signature) = bytes.split_at(4);
    let id = u32::from_be_bytes(id.try_into().map_err(|_| NoteError::Malformed("a signature has no key id"))?);
    Ok(NoteSignature { name: name.to_owned(), id, signature: signature.to_vec(), line: line.to_owned() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    // Go's `golang.org/x/mod/sumdb/note` documentation vector.
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIGNED: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_vectors_sign_and_verify() {
        let signer = NoteSigner::parse(SKEY).unwrap();
        assert_eq!(signer.to_skey(), SKEY);
        assert_eq!(signer.verifier().to_string(), VKEY);
        let verifier = NoteVerifier::parse(VKEY).unwrap();
        assert_eq!(verifier, signer.verifier());
        // Ed25519 signatures are deterministic: ours is Go's, byte for byte.
        assert_eq!(Note::sign(TEXT, &[&signer]).unwrap().to_string(), SIGNED);
        let note = Note::parse(SIGNED.as_bytes()).unwrap();
        assert_eq!(note.text(), TEXT);
        assert_eq!(note.verify(std::slice::from_ref(&verifier)).unwrap().len(), 1);
    }

    #[test]
    fn the_spec_example_verifies() {
        // c2sp.org/signed-note, §Verifier keys.
        let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
        let verifier = NoteVerifier::parse(vkey).unwrap();
        assert_eq!(verifier.to_string(), vkey);
        assert_eq!(verifier.id(), 0x530d_903a);
    }

    #[test]
    fn unknown_keys_are_ignored_and_known_bad_signatures_refused() {
        let signer = NoteSigner::parse(SKEY).unwrap();
        let other = NoteSigner::from_seed("example.com/other", [7; 32]).unwrap();
        let note = Note::sign(TEXT, &[&other, &signer]).unwrap();
        let known = [signer.verifier()];
        assert_eq!(note.verify(&known).unwrap()[0].name(), "PeterNeumann");
        assert_eq!(Note::sign(TEXT, &[&other]).unwrap().verify(&known), Err(NoteError::Unverified));
        // The known key's line over other text.
        let forged = SIGNED.replace("answer", "ANSWER");
        assert_eq!(
            Note::parse(forged.as_bytes()).unwrap().verify(&known),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
    }

    #[test]
    fn signature_lines_are_added_strictly_and_once() {
        // c2sp.org/tlog-witness's example add-checkpoint reply.
        let reply = "\u{2014} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n\u{2014} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n\u{2014} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n";
        let mut note = Note::parse(SIGNED.as_bytes()).unwrap();
        note.add_signature_lines(reply).unwrap();
        assert_eq!(note.signatures().len(), 4, "one name, two key ids: two keys");
        assert_eq!(note.to_string(), format!("{SIGNED}{reply}"));
        assert_eq!(Note::parse(note.to_string().as_bytes()).unwrap(), note);
        // The same reply again, or the log's own line, adds nothing.
        note.add_signature_lines(reply).unwrap();
        note.add_signature_lines(&format!("{}\n", Note::parse(SIGNED.as_bytes()).unwrap().signatures()[0].line))
            .unwrap();
        assert_eq!(note.signatures().len(), 4);
        // Added lines are not trusted: the log's signature still verifies alone.
        assert_eq!(note.verify(&[NoteVerifier::parse(VKEY).unwrap()]).unwrap().len(), 1);
        let before = note.clone();
        for bad in [
            "",
            "\n",
            "\u{2014} a AAAAAAA=",
            "\u{2014} a AAAAAAA=\n\n",
            "\u{2014} b AAAAAAA=\nnot a line\n",
            "\u{2014} a AAAA\n",
        ] {
            assert!(note.add_signature_lines(bad).is_err(), "{bad:?}");
            assert_eq!(note, before, "unchanged on error");
        }
        let many: String = (0..97).map(|i| format!("\u{2014} k{i} AAAAAAA=\n")).collect();
        assert!(note.add_signature_lines(&many).is_err(), "more than 100 signatures");
        assert_eq!(note, before);
    }

    #[test]
    fn malformed_notes_and_keys_are_refused() {
        let bad: &[&[u8]] = &[
            b"no blank line\n\xe2\x80\x94 a AAAAAAA=\n",
            b"text\n\n",
            b"text\n\n\xe2\x80\x94 a AAAAAAA=",
            b"text\n\nsignature without the dash\n",
            b"text\n\n\xe2\x80\x94 a+b AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 a not*base64\n",
            b"text\n\n\xe2\x80\x94 a AAAA\n",
            b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAA=\n",
            b"\xff\n\n\xe2\x80\x94 a AAAAAAA=\n",
        ];
        for note in bad {
            assert!(Note::parse(note).is_err(), "{:?}", String::from_utf8_lossy(note));
        }
        let many = format!("t\n\n{}", "\u{2014} a AAAAAAA=\n".repeat(101));
        assert!(Note::parse(many.as_bytes()).is_err());
        for vkey in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2Q",
            "PeterNeumann",
        ] {
            assert!(NoteVerifier::parse(vkey).is_err(), "{vkey}");
        }
        assert!(NoteSigner::parse(&SKEY.replace("c74f20a3", "c74f20a4")).is_err());
        assert!(NoteSigner::from_seed("", [0; 32]).is_err());
        assert!(format!("{:?}", NoteSigner::parse(SKEY).unwrap()).contains(VKEY), "Debug shows the public key only");
    }
}
