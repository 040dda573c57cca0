//! The witness side of `add-checkpoint` (`c2sp.org/tlog-witness@v1.0.0`),
//! as pure functions: a log submits its new checkpoint with a consistency
//! proof from the last one this witness cosigned, and the witness cosigns it
//! only if the log's history only grew. Clients that require witnesses'
//! cosignatures (`cosignature.rs`) are then safe from a log that shows
//! different histories to different people.
//!
//! The request body is
//!
//! ```text
//! old <size of the latest checkpoint the witness cosigned, decimal>
//! <base64 hash>          (0 to 63 lines: the RFC 6962 consistency proof)
//!
//! <the checkpoint note, with the log's signature>
//! ```
//!
//! and the reply is either signature lines (200) or a [`Refusal`], whose
//! status is the spec's. One departure from v1.0.0: an old size equal to the
//! new one with another root is refused with 422, as the spec's current
//! text says, not 409 as v1.0.0 said. It is proof of a forked log, not a
//! stale client, and 409 would invite the client to retry.
//!
//! The caller keeps the witness's state, one [`LogCheckpoint`] per followed
//! log, and must make [`check`] and storing its result one atomic step (the
//! spec shows how two interleaved requests otherwise roll a log back), and
//! store before replying.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::cosignature::{CosignatureError, CosignerKey};
use super::log_checkpoint::LogCheckpoint;
use super::merkle::{self, Hash, ProofError};
use super::note::{self, Note, NoteError, NoteVerifier};

/// The content type of a 409 reply, whose body is [`size_body`].
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// A consistency proof has at most this many hashes (trees below 2^63 leaves).
pub const MAX_PROOF: usize = 63;
/// Requests larger than this are refused: the largest note, plus the old
/// size line and the longest proof (64 lines of 45 bytes, rounded up).
pub const MAX_REQUEST_BYTES: usize = note::MAX_NOTE_BYTES + 4096;

/// Why a witness does not cosign a checkpoint. [`Refusal::status`] is the
/// HTTP status the spec gives each case; `Display` is a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the body is not an `add-checkpoint` request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 404: the witness follows no log of this origin.
    #[error("unknown log origin `{0}`")]
    UnknownOrigin(String),
    /// 403: no trusted key of the log signed, or a trusted key's signature
    /// fails.
    #[error("the checkpoint is not signed by the log: {0}")]
    Unsigned(NoteError),
    /// 400: the old size is past the checkpoint.
    #[error("old size {old} is larger than the checkpoint's size {new}")]
    OldSizeTooLarge { old: u64, new: u64 },
    /// 409: the old size is not the latest this witness cosigned, `latest`
    /// (0 if none); the client retries from there.
    #[error("old size {old} is not {latest}, the size of the latest checkpoint cosigned for this log")]
    Conflict { old: u64, latest: u64 },
    /// 422: a size-0 checkpoint whose root is not `SHA-256("")`.
    #[error("a checkpoint of size 0 must have the empty tree's root")]
    EmptyTreeRoot,
    /// 422: a proof from size 0, which needs none.
    #[error("old size 0 needs no consistency proof, but one was sent")]
    ProofFromEmpty,
    /// 422: the checkpoint has the size of the latest cosigned but another
    /// root: the log forked.
    #[error("the checkpoint has the size of the latest cosigned one but another root")]
    RootChanged,
    /// 422: the proof does not show the latest cosigned tree is a prefix of
    /// the new one.
    #[error("the consistency proof does not verify: {0}")]
    Inconsistent(ProofError),
}

impl Refusal {
    /// The HTTP status of the reply.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::OldSizeTooLarge { .. } => 400,
            Self::Unsigned(_) => 403,
            Self::UnknownOrigin(_) => 404,
            Self::Conflict { .. } => 409,
            Self::EmptyTreeRoot | Self::ProofFromEmpty | Self::RootChanged | Self::Inconsistent(_) => 422,
        }
    }

    /// For a 409, the size to reply with (as [`size_body`], content type
    /// [`SIZE_CONTENT_TYPE`]).
    pub fn latest_size(&self) -> Option<u64> {
        match self {
            Self::Conflict { latest, .. } => Some(*latest),
            _ => None,
        }
    }
}

/// A log the witness follows: its origin and the keys it trusts for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedLog {
    pub origin: String,
    pub verifiers: Vec<NoteVerifier>,
}

impl FollowedLog {
    /// The log of `origin` among `logs`, or the 404 refusal.
    pub fn find<'a>(logs: &'a [Self], origin: &str) -> Result<&'a Self, Refusal> {
        logs.iter().find(|l| l.origin == origin).ok_or_else(|| Refusal::UnknownOrigin(origin.to_owned()))
    }
}

/// An `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the latest checkpoint the client believes the witness
    /// cosigned (0 the first time, or to learn the size from a 409).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    pub checkpoint: Note,
}

impl AddCheckpoint {
    /// Parses a request body strictly: every line ends in a newline, the
    /// size has no leading zeros, each proof line is one base64 hash.
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        let malformed = |m: &str| Refusal::Malformed(m.to_owned());
        if body.len() > MAX_REQUEST_BYTES {
            return Err(malformed("larger than a checkpoint and a proof can be"));
        }
        let body = std::str::from_utf8(body).map_err(|_| malformed("not UTF-8"))?;
        let (first, mut rest) = body.split_once('\n').ok_or_else(|| malformed("no `old <size>` line"))?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or_else(|| malformed("the first line must be `old <size>`, the size in decimal"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) =
                rest.split_once('\n').ok_or_else(|| malformed("no empty line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF {
                return Err(malformed("more than 63 proof lines"));
            }
            let hash = BASE64.decode(line).ok().and_then(|h| Hash::try_from(h).ok());
            proof.push(hash.ok_or_else(|| malformed("a proof line is not a base64 SHA-256 hash"))?);
        }
        let checkpoint =
            Note::parse(rest.as_bytes()).map_err(|e| Refusal::Malformed(format!("the checkpoint: {e}")))?;
        Ok(Self { old_size, proof, checkpoint })
    }

    /// The request body (the client's side).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_string());
        out.into_bytes()
    }

    /// The tree head the checkpoint states, whose origin names the log to
    /// look up with [`FollowedLog::find`].
    pub fn head(&self) -> Result<LogCheckpoint, Refusal> {
        LogCheckpoint::parse(self.checkpoint.text()).map_err(|e| Refusal::Malformed(e.to_string()))
    }
}

/// The witness's decision on `request` for `log`, given `latest`, the last
/// checkpoint it cosigned for that log (`None` if it never did). On success
/// the result is the new latest, to store (atomically with this check, and
/// before replying) and then [`cosign`]. The checks run in the spec's order,
/// so a request with several faults gets the status the spec names first.
pub fn check(
    request: &AddCheckpoint,
    log: &FollowedLog,
    latest: Option<&LogCheckpoint>,
) -> Result<LogCheckpoint, Refusal> {
    let head = request.head()?;
    if head.origin != log.origin {
        return Err(Refusal::UnknownOrigin(head.origin));
    }
    request.checkpoint.verify(&log.verifiers).map_err(Refusal::Unsigned)?;
    let (old, new) = (request.old_size, head.tree_size);
    if old > new {
        return Err(Refusal::OldSizeTooLarge { old, new });
    }
    let latest_size = latest.map_or(0, |l| l.tree_size);
    if old != latest_size {
        return Err(Refusal::Conflict { old, latest: latest_size });
    }
    if new == 0 && head.root != merkle::empty_root() {
        return Err(Refusal::EmptyTreeRoot);
    }
    // INVARIANT: `old` is `latest_size`, so the proof starts at `latest`,
    // and `latest` is `None` only if `old` is 0.
    match latest {
        Some(l) if old > 0 => {
            if old == new && l.root != head.root {
                return Err(Refusal::RootChanged);
            }
            merkle::verify_consistency(old, new, &l.root, &head.root, &request.proof).map_err(Refusal::Inconsistent)?;
        }
        // Every tree extends the empty one: there is nothing to prove.
        _ if !request.proof.is_empty() => return Err(Refusal::ProofFromEmpty),
        _ => {}
    }
    Ok(head)
}

/// The 200 reply: the witness's cosignature line of the checkpoint whose
/// note text is `text`, at `timestamp` (POSIX seconds, which a witness must
/// not leave 0).
pub fn cosign(key: &CosignerKey, text: &str, timestamp: u64) -> Result<String, CosignatureError> {
    if timestamp == 0 {
        return Err(CosignatureError::ZeroTimestamp);
    }
    Ok(format!("{}\n", key.cosign(text, timestamp)?.line))
}

/// The body of a 409 reply: the latest cosigned size and a newline.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Why a witness's 409 body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed tlog size: expected a decimal size and a newline")]
pub struct MalformedSize;

/// Reads a witness's 409 body (the client's side): `<size>\n`, the size in
/// decimal without leading zeros, nothing else.
pub fn parse_size_body(body: &[u8]) -> Result<u64, MalformedSize> {
    let text = std::str::from_utf8(body).map_err(|_| MalformedSize)?;
    text.strip_suffix('\n').and_then(parse_decimal).ok_or(MalformedSize)
}

/// A `u64` in decimal with no sign and no leading zeros (`0` itself aside).
fn parse_decimal(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let canonical = digits && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;
    use crate::audit::cosignature::{Cosigned, witnessed};
    use crate::audit::note::NoteSigner;

    const ORIGIN: &str = "example.com/log";

    struct Log {
        signer: NoteSigner,
        leaves: Vec<Hash>,
    }

    impl Log {
        fn new() -> Self {
            let leaves = (0..20u8).map(|i| merkle::leaf_hash(&[i])).collect();
            Self { signer: NoteSigner::from_seed(ORIGIN, [1; 32]).unwrap(), leaves }
        }

        fn followed(&self) -> FollowedLog {
            FollowedLog { origin: ORIGIN.into(), verifiers: vec![self.signer.verifier()] }
        }

        fn head(&self, size: u64) -> LogCheckpoint {
            LogCheckpoint { origin: ORIGIN.into(), tree_size: size, root: merkle::root_at(&self.leaves, size).unwrap() }
        }

        fn signed(&self, head: &LogCheckpoint) -> Note {
            Note::sign(&head.text(), &[&self.signer]).unwrap()
        }

        /// The request a log makes to grow from `old` to `new`.
        fn request(&self, old: u64, new: u64) -> AddCheckpoint {
            let proof = merkle::consistency_proof(&self.leaves, old, new).unwrap();
            AddCheckpoint { old_size: old, proof, checkpoint: self.signed(&self.head(new)) }
        }
    }

    /// `check` on the request's bytes, as a server would.
    fn submit(log: &Log, request: &AddCheckpoint, latest: Option<&LogCheckpoint>) -> Result<LogCheckpoint, Refusal> {
        let parsed = AddCheckpoint::parse(&request.to_bytes())?;
        assert_eq!(&parsed, request);
        check(&parsed, &log.followed(), latest)
    }

    #[test]
    fn a_growing_log_is_cosigned() {
        let log = Log::new();
        let witness = CosignerKey::from_seed("witness.example/w1", [2; 32]).unwrap();
        let first = submit(&log, &log.request(0, 5), None).unwrap();
        assert_eq!(first, log.head(5));
        let second = submit(&log, &log.request(5, 13), Some(&first)).unwrap();
        assert_eq!(second, log.head(13));
        // The same checkpoint again is fine (and cosigned again).
        assert_eq!(submit(&log, &log.request(13, 13), Some(&second)).unwrap(), second);
        // A witness that cosigned the empty tree.
        let empty = submit(&log, &log.request(0, 0), None).unwrap();
        assert_eq!(submit(&log, &log.request(0, 3), Some(&empty)).unwrap(), log.head(3));

        // The log appends the reply's line to its checkpoint; a client checks it.
        let mut note = log.signed(&second);
        let reply = cosign(&witness, note.text(), 1_700_000_000).unwrap();
        assert!(reply.starts_with("\u{2014} witness.example/w1 ") && reply.ends_with('\n'), "{reply}");
        note.add_signature_lines(&reply).unwrap();
        assert_eq!(
            witnessed(&note, &[witness.verifier()], 1).unwrap(),
            [Cosigned { name: "witness.example/w1".into(), timestamp: 1_700_000_000 }]
        );
        assert_eq!(cosign(&witness, note.text(), 0), Err(CosignatureError::ZeroTimestamp));
    }

    #[test]
    fn every_refusal_has_its_status() {
        let log = Log::new();
        let latest = log.head(8);
        let status = |request: &AddCheckpoint, latest: Option<&LogCheckpoint>| {
            check(request, &log.followed(), latest).map(|_| ()).map_err(|r| (r.status(), r))
        };

        // 404: another origin.
        let stranger = LogCheckpoint { origin: "example.com/other".into(), ..latest.clone() };
        let request = AddCheckpoint { old_size: 8, proof: vec![], checkpoint: log.signed(&stranger) };
        assert_eq!(status(&request, Some(&latest)), Err((404, Refusal::UnknownOrigin("example.com/other".into()))));
        assert_eq!(FollowedLog::find(&[log.followed()], "example.com/other").unwrap_err().status(), 404);
        assert!(FollowedLog::find(&[log.followed()], ORIGIN).is_ok());

        // 403: signed by another key; a trusted key's signature that fails.
        let impostor = NoteSigner::from_seed(ORIGIN, [3; 32]).unwrap();
        let mut request = log.request(8, 12);
        request.checkpoint = Note::sign(request.checkpoint.text(), &[&impostor]).unwrap();
        assert_eq!(status(&request, Some(&latest)), Err((403, Refusal::Unsigned(NoteError::Unverified))));
        let request = log.request(8, 12);
        let forged = request.checkpoint.to_string().replacen("\n12\n", "\n13\n", 1);
        let request = AddCheckpoint { checkpoint: Note::parse(forged.as_bytes()).unwrap(), ..request };
        assert_eq!(status(&request, Some(&latest)).unwrap_err().0, 403);

        // 400: old size past the checkpoint (even when it is the latest).
        let request = AddCheckpoint { old_size: 8, proof: vec![], checkpoint: log.signed(&log.head(5)) };
        assert_eq!(status(&request, Some(&latest)), Err((400, Refusal::OldSizeTooLarge { old: 8, new: 5 })));

        // 409: a stale or a new client; the body tells it where to start.
        let conflict = status(&log.request(5, 12), Some(&latest)).unwrap_err();
        assert_eq!(conflict, (409, Refusal::Conflict { old: 5, latest: 8 }));
        assert_eq!(conflict.1.latest_size().map(size_body).as_deref(), Some("8\n"));
        assert_eq!(status(&log.request(5, 12), None), Err((409, Refusal::Conflict { old: 5, latest: 0 })));
        assert_eq!(status(&log.request(0, 12), Some(&latest)), Err((409, Refusal::Conflict { old: 0, latest: 8 })));

        // 422: a size-0 checkpoint with another root.
        let bad_empty = LogCheckpoint { tree_size: 0, ..latest.clone() };
        let request = AddCheckpoint { old_size: 0, proof: vec![], checkpoint: log.signed(&bad_empty) };
        assert_eq!(status(&request, None), Err((422, Refusal::EmptyTreeRoot)));
        // 422: a proof from size 0.
        let mut request = log.request(0, 12);
        request.proof.push(log.leaves[0]);
        assert_eq!(status(&request, None), Err((422, Refusal::ProofFromEmpty)));
        // 422: same size, another root (409 in tlog-witness v1.0.0).
        let forked = LogCheckpoint { root: log.leaves[0], ..latest.clone() };
        let request = AddCheckpoint { old_size: 8, proof: vec![], checkpoint: log.signed(&forked) };
        assert_eq!(status(&request, Some(&latest)), Err((422, Refusal::RootChanged)));
        // 422: a tampered proof, and a proof from another history.
        let mut request = log.request(8, 12);
        request.proof[0][0] ^= 1;
        assert_eq!(status(&request, Some(&latest)).unwrap_err().0, 422);
        let other: Vec<Hash> = (100..120u8).map(|i| merkle::leaf_hash(&[i])).collect();
        let rewritten = LogCheckpoint { root: merkle::root_at(&other, 12).unwrap(), ..log.head(12) };
        let proof = merkle::consistency_proof(&other, 8, 12).unwrap();
        let request = AddCheckpoint { old_size: 8, proof, checkpoint: log.signed(&rewritten) };
        assert!(matches!(status(&request, Some(&latest)), Err((422, Refusal::Inconsistent(_)))));
        // A proof where none is needed does not verify either.
        let mut request = log.request(8, 8);
        request.proof.push(log.leaves[0]);
        assert!(matches!(status(&request, Some(&latest)), Err((422, Refusal::Inconsistent(_)))));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let log = Log::new();
        let good = String::from_utf8(log.request(5, 13).to_bytes()).unwrap();
        assert!(good.starts_with("old 5\n") && good.contains("=\n\nexample.com/log\n13\n"), "{good}");
        let hash = BASE64.encode(log.leaves[0]);
        let note = log.signed(&log.head(13)).to_string();
        let too_long = format!("old 5\n{}\n{note}", format!("{hash}\n").repeat(64));
        assert!(AddCheckpoint::parse(format!("old 5\n{}\n{note}", format!("{hash}\n").repeat(63)).as_bytes()).is_ok());
        for body in [
            good.replacen("old 5", "old 05", 1),
            good.replacen("old 5", "old +5", 1),
            good.replacen("old 5", "old  5", 1),
            good.replacen("old 5", "old", 1),
            good.replacen("old 5", "new 5", 1),
            good.replacen("old 5\n", "old 5\nnot-a-hash\n", 1),
            good.replacen("old 5\n", &format!("old 5\n{}\n", &hash[..40]), 1),
            too_long,
            format!("old 5\n{hash}\n{note}"),
            format!("old 5\n{hash}\n\nnot a note\n"),
            format!("old 5\n\n{}", note.replacen("\n13\n", "\n013\n", 1)),
            "old 5".to_owned(),
            String::new(),
        ] {
            let request = AddCheckpoint::parse(body.as_bytes());
            let refusal = request.and_then(|r| check(&r, &log.followed(), Some(&log.head(5)))).unwrap_err();
            assert_eq!(refusal.status(), 400, "{body:?}: {refusal}");
        }
        assert!(AddCheckpoint::parse(b"old 0\n\n\xff\n\n").is_err());
        assert!(AddCheckpoint::parse(&vec![b'a'; MAX_REQUEST_BYTES + 1]).is_err());
    }

    #[test]
    fn size_bodies_are_read_strictly() {
        assert_eq!(parse_size_body(size_body(0).as_bytes()), Ok(0));
        assert_eq!(parse_size_body(size_body(20_852_014).as_bytes()), Ok(20_852_014));
        assert_eq!(parse_size_body(size_body(u64::MAX).as_bytes()), Ok(u64::MAX));
        for body in ["", "\n", "5", "05\n", "+5\n", "5\n\n", " 5\n", "5 \n", "18446744073709551616\n", "5\r\n"] {
            assert_eq!(parse_size_body(body.as_bytes()), Err(MalformedSize), "{body:?}");
        }
    }

    #[test]
    fn refusal_messages_read_well() {
        assert_eq!(
            Refusal::Conflict { old: 5, latest: 8 }.to_string(),
            "old size 5 is not 8, the size of the latest checkpoint cosigned for this log"
        );
        assert_eq!(Refusal::UnknownOrigin("o".into()).to_string(), "unknown log origin `o`");
        assert_eq!(Refusal::Conflict { old: 5, latest: 8 }.latest_size(), Some(8));
        assert_eq!(Refusal::RootChanged.latest_size(), None);
    }
}
