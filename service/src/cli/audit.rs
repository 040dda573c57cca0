//! `warrant audit verify` and `warrant audit export`: offline, from the
//! database and the key file — no running service needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::Digest as _;
use warrant_engine::audit::cosignature::cosignatures;
use warrant_engine::audit::{
    Checkpoint, CosignatureVerifier, LogCheckpoint, Note, NoteError, NoteVerifier, ProofError, ProofFile,
    ProofFileError, SealError, merkle,
};

use crate::audit::verify::{self, VerifyError};
use crate::config::{AuditCommand, AuditLogArgs};
use crate::keys::{AuditKeys, KeyError};
use crate::log_keys::{LogKeyError, LogKeys};
use crate::store::{Store, StoreError};
use crate::witnessing::Witness;

/// Records per read while exporting.
const CHUNK: u32 = 10_000;

/// Why `warrant audit …` could not run (a log that fails verification is
/// an answer, exit code 1, not an error).
#[derive(Debug, thiserror::Error)]
pub enum AuditCommandError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    LogKeys(#[from] LogKeyError),
    #[error("`--log-key {key}`: {error}")]
    LogKey { key: String, error: NoteError },
    #[error("`--witness-key {key}`: {error}")]
    WitnessKey { key: String, error: NoteError },
    #[error(transparent)]
    Witness(#[from] crate::witnessing::WitnessArgError),
    #[error("witness `{witness}`: {reason}")]
    WitnessCheckpoint { witness: String, reason: String },
    #[error("signed checkpoint `{}`: {reason}", path.display())]
    SignedCheckpoint { path: PathBuf, reason: String },
    #[error("no record with seq {0}")]
    NoRecord(u64),
    #[error("no published checkpoint covers seq {0} yet: start the service, which publishes one")]
    NoCheckpoint(u64),
    #[error(
        "the checkpoint of size {0} does not match the log's records: they changed or were cut after it was signed"
    )]
    CheckpointMismatch(u64),
    #[error("cannot read `{}`: {error}", path.display())]
    ReadProof { path: PathBuf, error: std::io::Error },
    #[error("`{}`: {error}", path.display())]
    ProofFile { path: PathBuf, error: ProofFileError },
    #[error("cannot canonicalize the record: {0}")]
    Entry(#[from] SealError),
    #[error("cannot open `{url}`: {error}")]
    Open { url: String, error: StoreError },
    #[error("checkpoint `{}`: {error}", path.display())]
    ReadCheckpoint { path: PathBuf, error: std::io::Error },
    #[error("checkpoint `{}`: {error}", path.display())]
    ParseCheckpoint { path: PathBuf, error: serde_json::Error },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write `{}`: {error}", path.display())]
    CreateExport { path: PathBuf, error: std::io::Error },
    #[error("cannot write the export: {0}")]
    WriteExport(std::io::Error),
}

pub fn run(command: AuditCommand) -> Result<ExitCode, AuditCommandError> {
    // Two workers: verification joins runs of records in order while its
    // scan threads (blocking, one per core) read and check the next ones.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AuditCommandError::Runtime)?;
    match command {
        AuditCommand::Verify { log, from, to, checkpoint, signed_checkpoint, log_key, witnesses } => {
            let signed = Signed { files: signed_checkpoint, keys: log_key, witnesses };
            runtime.block_on(run_verify(log, from, to, checkpoint, signed))
        }
        AuditCommand::Export { log, from, to, out } => runtime.block_on(run_export(log, from, to, out)),
        AuditCommand::Prove { database_url, seq, out, min_cosignatures, checkpoint } => {
            runtime.block_on(run_prove(&database_url, seq, out, min_cosignatures, checkpoint.as_deref()))
        }
        AuditCommand::VerifyProof { file, log_key, witness_key, quorum } => {
            run_verify_proof(&file, &log_key, &witness_key, quorum)
        }
        AuditCommand::PublicKey { log_key_file } => {
            let keys = LogKeys::open(log_key_file.as_deref())?;
            for v in keys.verifiers() {
                println!("{v}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(log: &AuditLogArgs) -> Result<(Store, AuditKeys), AuditCommandError> {
    let keys = AuditKeys::load(log.audit_key_file.as_deref())?;
    let store = Store::open_existing(&log.database_url)
        .await
        .map_err(|error| AuditCommandError::Open { url: log.database_url.clone(), error })?;
    Ok((store, keys))
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint, AuditCommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| AuditCommandError::ReadCheckpoint { path: path.to_owned(), error })?;
    serde_json::from_str(&text).map_err(|error| AuditCommandError::ParseCheckpoint { path: path.to_owned(), error })
}

/// Signed checkpoints to hold the log to, and the keys they verify with.
struct Signed {
    files: Vec<PathBuf>,
    keys: Vec<String>,
    /// `URL=VKEY` of witnesses to ask for the newest checkpoint they cosigned.
    witnesses: Vec<String>,
}

impl Signed {
    /// The kept notes, each verified with the keys, then the ones the log
    /// published (only when keys are given). `Err` for a kept note that is
    /// not this log's (the auditor's mistake, exit 2); a published note
    /// that does not verify is a finding (`Ok(Err(reason))`).
    async fn heads(&self, store: &Store) -> Result<Result<Vec<LogCheckpoint>, String>, AuditCommandError> {
        if self.keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let verifiers = self
            .keys
            .iter()
            .map(|k| NoteVerifier::parse(k).map_err(|error| AuditCommandError::LogKey { key: k.clone(), error }))
            .collect::<Result<Vec<_>, _>>()?;
        let mut heads = Vec::new();
        for path in &self.files {
            let bytes =
                std::fs::read(path).map_err(|error| AuditCommandError::ReadCheckpoint { path: path.clone(), error })?;
            let bad = |reason: String| AuditCommandError::SignedCheckpoint { path: path.clone(), reason };
            heads.push(open_note(&bytes, &verifiers).map_err(bad)?);
        }
        for (size, note) in store.log_checkpoints().await? {
            match open_note(note.as_bytes(), &verifiers) {
                Ok(head) => heads.push(head),
                Err(reason) => return Ok(Err(format!("the published checkpoint of size {size}: {reason}"))),
            }
        }
        for value in &self.witnesses {
            let witness = Witness::parse(value)?;
            if let Some(head) = witnessed_head(&witness, &verifiers).await? {
                eprintln!("witness {} cosigned the log at size {}", witness.key.name(), head.tree_size);
                heads.push(head);
            }
        }
        Ok(Ok(heads))
    }
}

/// The newest checkpoint `witness` cosigned for the log of `verifiers`, from
/// its monitoring endpoint (`<url>/<hex SHA-256(origin)>/checkpoint`),
/// checked with the log's keys and the witness's; `None` if it has cosigned
/// none. A witness that cannot be asked, or answers with a note that does not
/// verify, fails the verification: it was named to vouch.
async fn witnessed_head(
    witness: &Witness,
    verifiers: &[NoteVerifier],
) -> Result<Option<LogCheckpoint>, AuditCommandError> {
    let name = witness.key.name().to_owned();
    let failed = |reason: String| AuditCommandError::WitnessCheckpoint { witness: name.clone(), reason };
    let origin = verifiers.first().map(|v| v.name().to_owned()).unwrap_or_default();
    let digest = hex::encode(sha2::Sha256::digest(origin.as_bytes()));
    let url = witness.url.join(&format!("{digest}/checkpoint")).map_err(|e| failed(e.to_string()))?;
    crate::tls::provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let response = client.get(url).send().await.map_err(|e| failed(e.to_string()))?;
    match response.status().as_u16() {
        404 => return Ok(None),
        200 => {}
        status => return Err(failed(format!("it answered {status}"))),
    }
    let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    let head = open_note(&bytes, verifiers).map_err(&failed)?;
    let note = Note::parse(&bytes).map_err(|e| failed(e.to_string()))?;
    let cosigned = cosignatures(&note, std::slice::from_ref(&witness.key)).map_err(|e| failed(e.to_string()))?;
    if cosigned.is_empty() {
        return Err(failed("its checkpoint does not carry its cosignature".into()));
    }
    Ok(Some(head))
}

/// A checkpoint note verified with `verifiers`, its origin their name.
fn open_note(bytes: &[u8], verifiers: &[NoteVerifier]) -> Result<LogCheckpoint, String> {
    let note = Note::parse(bytes).map_err(|e| e.to_string())?;
    let signed_by = note.verify(verifiers).map_err(|e| e.to_string())?;
    let head = LogCheckpoint::parse(note.text()).map_err(|e| e.to_string())?;
    if signed_by.iter().all(|v| v.name() != head.origin) {
        return Err(format!("its origin `{}` is not its signer's name", head.origin));
    }
    Ok(head)
}

async fn run_verify(
    log: AuditLogArgs,
    from: u64,
    to: Option<u64>,
    files: Vec<PathBuf>,
    signed: Signed,
) -> Result<ExitCode, AuditCommandError> {
    let (store, keys) = open(&log).await?;
    let kept = files.iter().map(|path| read_checkpoint(path)).collect::<Result<Vec<_>, _>>()?;
    let heads = match signed.heads(&store).await? {
        Ok(heads) => heads,
        Err(reason) => {
            println!("FAILED: {reason}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let total = store.audit_count().await.unwrap_or(0);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} verifying {pos}/{len} records [{bar:30}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = verify::verify(&store, &keys, from, to, &kept, &heads, |n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let r = report?;
    if r.ok {
        println!(
            "ok: records {}..={} ({}) verify; {} checkpoint(s) hold",
            r.from, r.to, r.records, r.checkpoints_checked
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED at seq {}: {}", r.first_bad_seq.unwrap_or_default(), r.reason.as_deref().unwrap_or("unknown"));
        Ok(ExitCode::FAILURE)
    }
}

async fn run_prove(
    database_url: &str,
    seq: u64,
    out: Option<PathBuf>,
    min_cosignatures: usize,
    kept: Option<&Path>,
) -> Result<ExitCode, AuditCommandError> {
    let store = Store::open_existing(database_url)
        .await
        .map_err(|error| AuditCommandError::Open { url: database_url.to_owned(), error })?;
    let record = store.audit_range(seq, seq, 1).await?.pop().ok_or(AuditCommandError::NoRecord(seq))?;
    let checkpoint = match kept {
        // A kept note, with whatever signatures it carries.
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|error| AuditCommandError::ReadCheckpoint { path: path.to_owned(), error })?;
            let bad = |reason: String| AuditCommandError::SignedCheckpoint { path: path.to_owned(), reason };
            let note = Note::parse(&bytes).map_err(|e| bad(e.to_string()))?;
            let head = LogCheckpoint::parse(note.text()).map_err(|e| bad(e.to_string()))?;
            if head.tree_size < seq {
                return Err(bad(format!("it covers {} records, not record {seq}", head.tree_size)));
            }
            note
        }
        None => {
            let (size, text) = store
                .witnessed_log_checkpoint(min_cosignatures)
                .await?
                .filter(|(size, _)| *size >= seq)
                .ok_or(AuditCommandError::NoCheckpoint(seq))?;
            let mut note = Note::parse(text.as_bytes()).map_err(|_| AuditCommandError::CheckpointMismatch(size))?;
            // The witnesses' cosignatures travel with the checkpoint.
            for line in store.cosignatures(size).await? {
                note.add_signature_lines(&line).map_err(|_| AuditCommandError::CheckpointMismatch(size))?;
            }
            note
        }
    };
    let head = LogCheckpoint::parse(checkpoint.text()).map_err(|_| AuditCommandError::NoCheckpoint(seq))?;
    let size = head.tree_size;
    let answer = store
        .audit_tree(store.audit_head().await?.map_or(0, |(head, _)| head), None, |tree| {
            Ok::<_, ProofError>((tree.inclusion_proof(seq - 1, size)?, tree.root_at(size)?, tree.leaf(seq - 1)?))
        })
        .await?;
    let (proof, root, leaf) = answer.map_err(|_| AuditCommandError::CheckpointMismatch(size))?;
    // Refuse to hand out a proof the file's own checkpoint would not carry.
    let entry = record.entry_bytes()?;
    if root != head.root || leaf != merkle::leaf_hash(&entry) {
        return Err(AuditCommandError::CheckpointMismatch(size));
    }
    let file = ProofFile { entry, index: seq - 1, proof, checkpoint };
    let text = file.to_text();
    match out {
        Some(path) => std::fs::write(&path, text).map_err(|error| AuditCommandError::CreateExport { path, error })?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_verify_proof(
    path: &Path,
    keys: &[String],
    witness_keys: &[String],
    quorum: Option<usize>,
) -> Result<ExitCode, AuditCommandError> {
    let verifiers = keys
        .iter()
        .map(|k| NoteVerifier::parse(k).map_err(|error| AuditCommandError::LogKey { key: k.clone(), error }))
        .collect::<Result<Vec<_>, _>>()?;
    let witnesses = witness_keys
        .iter()
        .map(|k| CosignatureVerifier::parse(k).map_err(|error| AuditCommandError::WitnessKey { key: k.clone(), error }))
        .collect::<Result<Vec<_>, _>>()?;
    let quorum = quorum.unwrap_or(witnesses.len());
    let text =
        std::fs::read_to_string(path).map_err(|error| AuditCommandError::ReadProof { path: path.to_owned(), error })?;
    let file =
        ProofFile::parse(&text).map_err(|error| AuditCommandError::ProofFile { path: path.to_owned(), error })?;
    match file.verify_witnessed(&verifiers, &witnesses, quorum) {
        Ok((head, cosigned)) => {
            println!("ok: record seq {} is in {} at tree size {}", file.index + 1, head.origin, head.tree_size);
            for c in &cosigned {
                println!("cosigned by {} at {}", c.name, c.timestamp);
            }
            println!("{}", String::from_utf8_lossy(&file.entry));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn run_export(
    log: AuditLogArgs,
    from: u64,
    to: Option<u64>,
    out: Option<PathBuf>,
) -> Result<ExitCode, AuditCommandError> {
    let (store, _keys) = open(&log).await?;
    let mut sink: Box<dyn std::io::Write> = match &out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|error| AuditCommandError::CreateExport { path: path.clone(), error })?;
            Box::new(std::io::BufWriter::new(file))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let to = to.unwrap_or(u64::MAX >> 11);
    let mut next = from.max(1);
    let mut written = 0u64;
    while next <= to {
        let chunk = store.audit_range(next, to, CHUNK).await?;
        let Some(last) = chunk.last().map(|r| r.seq) else { break };
        for record in &chunk {
            let line = serde_json::to_string(record).unwrap_or_default();
            writeln!(sink, "{line}").map_err(AuditCommandError::WriteExport)?;
            written += 1;
        }
        next = last + 1;
    }
    sink.flush().map_err(AuditCommandError::WriteExport)?;
    if out.is_some() {
        eprintln!("exported {written} records");
    }
    Ok(ExitCode::SUCCESS)
}
