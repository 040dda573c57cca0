//! The witness's judgement and memory together: the logs it follows
//! (`--log`), and one `add-checkpoint` submission checked by the engine
//! (`warrant_engine::audit::witness`) and stored atomically (`state.rs`)
//! before it is cosigned.

use sha2::{Digest as _, Sha256};
use warrant_engine::audit::witness::{self, AddCheckpoint, FollowedLog, Refusal};
use warrant_engine::audit::{CosignatureError, CosignerKey, Note, NoteError, NoteVerifier};

use super::state::{StateError, WitnessState, Witnessed};

/// The largest tree size the state can hold (SQLite integers are signed).
const MAX_TREE_SIZE: u64 = i64::MAX as u64;

/// Why a `--log` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("`--log {key}`: {error}")]
    Key { key: String, error: NoteError },
    #[error("no `--log`: a witness follows at least one log")]
    None,
}

/// The logs named by `--log` verifier keys: one per origin (the keys'
/// name), with every key given for it (a log's rotated keys).
pub fn followed_logs(keys: &[String]) -> Result<Vec<FollowedLog>, FollowError> {
    let mut logs: Vec<FollowedLog> = Vec::new();
    for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        let verifier = NoteVerifier::parse(key).map_err(|error| FollowError::Key { key: key.to_owned(), error })?;
        match logs.iter_mut().find(|l| l.origin == verifier.name()) {
            Some(log) if log.verifiers.contains(&verifier) => {}
            Some(log) => log.verifiers.push(verifier),
            None => logs.push(FollowedLog { origin: verifier.name().to_owned(), verifiers: vec![verifier] }),
        }
    }
    if logs.is_empty() {
        return Err(FollowError::None);
    }
    Ok(logs)
}

/// Why an `add-checkpoint` request got no cosignature.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The spec's refusals, each with its status.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("cannot cosign: {0}")]
    Cosign(#[from] CosignatureError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl AddError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Refused(refusal) => refusal.status(),
            Self::Cosign(_) | Self::State(_) => 500,
        }
    }
}

/// A parsed `add-checkpoint` request for a log this witness follows.
#[derive(Debug, Clone)]
pub struct Submission {
    pub request: AddCheckpoint,
    /// The followed log's origin, the checkpoint's first line.
    pub origin: String,
}

/// A checkpoint cosigned and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    pub tree_size: u64,
    /// The 200 body: the cosignature line, newline-terminated.
    pub lines: String,
}

/// The witness: its key, the logs it follows and what it cosigned.
#[derive(Debug)]
pub struct Witness {
    key: CosignerKey,
    logs: Vec<FollowedLog>,
    /// Each log's monitoring path segment, lowercase hex SHA-256 of its
    /// origin, in the order of `logs`.
    hashes: Vec<String>,
    state: WitnessState,
}

impl Witness {
    pub fn new(key: CosignerKey, logs: Vec<FollowedLog>, state: WitnessState) -> Self {
        let hashes = logs.iter().map(|l| hex::encode(Sha256::digest(l.origin.as_bytes()))).collect();
        Self { key, logs, hashes, state }
    }

    pub fn key(&self) -> &CosignerKey {
        &self.key
    }

    pub fn logs(&self) -> &[FollowedLog] {
        &self.logs
    }

    pub fn state(&self) -> &WitnessState {
        &self.state
    }

    /// Parses a request body and finds its log: the refusals that need no
    /// state (400 malformed, 404 unknown origin).
    pub fn submission(&self, body: &[u8]) -> Result<Submission, Refusal> {
        let request = AddCheckpoint::parse(body)?;
        let origin = FollowedLog::find(&self.logs, &request.head()?.origin)?.origin.clone();
        Ok(Submission { request, origin })
    }

    /// Judges `submission` against the latest checkpoint cosigned for its
    /// log and, if it extends it, stores and cosigns it: one atomic step,
    /// durable before this returns (so before the witness answers).
    pub async fn add(&self, submission: &Submission, now: u64) -> Result<Cosignature, AddError> {
        let log = FollowedLog::find(&self.logs, &submission.origin)?;
        let request = &submission.request;
        self.state
            .advance(&log.origin, |latest| {
                let head = witness::check(request, log, latest.as_ref())?;
                if head.tree_size > MAX_TREE_SIZE {
                    return Err(Refusal::Malformed("a tree size beyond 2^63 - 1".to_owned()).into());
                }
                let lines = witness::cosign(&self.key, request.checkpoint.text(), now)?;
                let note = witnessed_note(&request.checkpoint, log, &lines);
                let cosignature = Cosignature { tree_size: head.tree_size, lines };
                Ok((Witnessed { checkpoint: head, note, cosigned_at: now }, cosignature))
            })
            .await
    }

    /// The note of the latest checkpoint cosigned for the log whose origin
    /// hashes to `origin_hash` (lowercase hex SHA-256); `None` for a log
    /// not followed or not yet cosigned.
    pub async fn latest_note(&self, origin_hash: &str) -> Result<Option<String>, StateError> {
        let Some(index) = self.hashes.iter().position(|h| h == origin_hash) else { return Ok(None) };
        let Some(log) = self.logs.get(index) else { return Ok(None) };
        self.state.latest_note(&log.origin).await
    }
}

/// What the witness keeps and serves of a checkpoint it cosigned: the note
/// text, the signatures of `log`'s keys (all verified by the check: a known
/// key's line that fails is refused) and the cosignature `lines`. Other
/// lines the log sent, such as other witnesses' cosignatures or a forged
/// line in this witness's name, are not this witness's to vouch for.
fn witnessed_note(checkpoint: &Note, log: &FollowedLog, lines: &str) -> String {
    let mut note = format!("{}\n", checkpoint.text());
    for signature in checkpoint.signatures() {
        if log.verifiers.iter().any(|v| v.name() == signature.name && v.id() == signature.id) {
            note.push_str(&signature.line);
            note.push('\n');
        }
    }
    note.push_str(lines);
    note
}

/// The time to stamp cosignatures with, POSIX seconds (0 before 1970,
/// which the cosigner refuses).
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use warrant_engine::audit::cosignature::witnessed;
    use warrant_engine::audit::{Hash, LogCheckpoint, NoteSigner, merkle};

    use super::*;

    const ORIGIN: &str = "example.com/log";

    struct Log {
        signer: NoteSigner,
        leaves: Vec<Hash>,
    }

    impl Log {
        fn new(seed: u8) -> Self {
            let leaves = (0..20u8).map(|i| merkle::leaf_hash(&[i])).collect();
            Self { signer: NoteSigner::from_seed(ORIGIN, [seed; 32]).unwrap(), leaves }
        }

        fn body(&self, old: u64, new: u64) -> Vec<u8> {
            let head = LogCheckpoint {
                origin: ORIGIN.into(),
                tree_size: new,
                root: merkle::root_at(&self.leaves, new).unwrap(),
            };
            let proof = if old == 0 { vec![] } else { merkle::consistency_proof(&self.leaves, old, new).unwrap() };
            let checkpoint = Note::sign(&head.text(), &[&self.signer]).unwrap();
            AddCheckpoint { old_size: old, proof, checkpoint }.to_bytes()
        }
    }

    async fn witness(dir: &std::path::Path, log: &Log) -> Witness {
        let state = WitnessState::open(&dir.join("witness.db")).await.unwrap();
        let key = CosignerKey::from_seed("witness.example/w", [7; 32]).unwrap();
        let logs = followed_logs(&[log.signer.verifier().to_string()]).unwrap();
        Witness::new(key, logs, state)
    }

    async fn add(witness: &Witness, body: &[u8]) -> Result<Cosignature, AddError> {
        witness.add(&witness.submission(body)?, 1_700_000_000).await
    }

    #[tokio::test]
    async fn cosigns_a_growing_log_and_serves_the_note() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::new(1);
        let witness = witness(dir.path(), &log).await;
        assert_eq!(add(&witness, &log.body(0, 5)).await.unwrap().tree_size, 5);
        let reply = add(&witness, &log.body(5, 9)).await.unwrap();
        assert_eq!(reply.tree_size, 9);
        assert_eq!(add(&witness, &log.body(5, 12)).await.unwrap_err().status(), 409);

        let hash = hex::encode(Sha256::digest(ORIGIN.as_bytes()));
        let note = witness.latest_note(&hash).await.unwrap().unwrap();
        assert!(note.ends_with(&reply.lines), "{note}");
        let note = Note::parse(note.as_bytes()).unwrap();
        note.verify(&[log.signer.verifier()]).unwrap();
        assert_eq!(witnessed(&note, &[witness.key().verifier()], 1).unwrap()[0].timestamp, 1_700_000_000);
        assert_eq!(witness.latest_note(&hash.to_uppercase()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn rotated_keys_are_one_log_and_others_are_refused() {
        let (old, new) = (Log::new(1), Log::new(2));
        let logs = followed_logs(&[
            old.signer.verifier().to_string(),
            format!(" {} ", new.signer.verifier()),
            old.signer.verifier().to_string(),
        ])
        .unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].verifiers.len(), 2);
        assert!(matches!(followed_logs(&[]), Err(FollowError::None)));
        assert!(matches!(followed_logs(&["nope".into()]), Err(FollowError::Key { .. })));

        let dir = tempfile::tempdir().unwrap();
        let witness = witness(dir.path(), &old).await;
        let stranger = Log::new(3);
        assert_eq!(add(&witness, &stranger.body(0, 5)).await.unwrap_err().status(), 403);
        assert_eq!(add(&witness, b"old 0\n\n").await.unwrap_err().status(), 400);
        let elsewhere = String::from_utf8(old.body(0, 5)).unwrap().replace(ORIGIN, "example.com/else");
        assert_eq!(add(&witness, elsewhere.as_bytes()).await.unwrap_err().status(), 404);
    }

    /// Two logs' views raced at once from the same old size: exactly one
    /// is cosigned, the other learns the new size (the spec's rollback).
    #[tokio::test]
    async fn concurrent_submissions_from_one_size_cosign_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::new(1);
        let witness = Arc::new(witness(dir.path(), &log).await);
        add(&witness, &log.body(0, 4)).await.unwrap();
        let tasks: Vec<_> = [8, 12, 16, 19]
            .into_iter()
            .map(|new| {
                let (witness, body) = (Arc::clone(&witness), log.body(4, new));
                tokio::spawn(async move { add(&witness, &body).await.map_err(|e| e.status()) })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let cosigned: Vec<u64> = outcomes.iter().filter_map(|o| o.as_ref().ok().map(|c| c.tree_size)).collect();
        assert_eq!(cosigned.len(), 1, "{outcomes:?}");
        assert!(outcomes.iter().filter(|o| o.is_err()).all(|o| *o == Err(409)), "{outcomes:?}");
        let latest = witness.state().latest(ORIGIN).await.unwrap().unwrap();
        assert_eq!(Some(&latest.tree_size), cosigned.first());
    }
}
