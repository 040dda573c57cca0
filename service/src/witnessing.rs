//! The log's side of witnessing (`c2sp.org/tlog-witness@v1.0.0`): each
//! checkpoint the log publishes (`checkpoints.rs`) is submitted to every
//! witness named by `--witness URL=VKEY`, with a consistency proof from the
//! last size that witness cosigned; the cosignature it returns is verified
//! with its key and kept (`audit_log_cosignatures`), so `GET /log/checkpoint`
//! and proof files carry it. A checkpoint is *witnessed* once
//! `--witness-quorum` witnesses cosigned it.
//!
//! A witness that refuses is the point of having witnesses: 409 with a size
//! larger than any checkpoint the log has, or 422, means the log showed it a
//! history that does not extend what it cosigned before (records were cut
//! or rewritten). Those are logged as errors and counted
//! (`warrant_refusals{kind="witness"}`), and submission goes on.
//!
//! A worker per witness polls the newest published checkpoint, so every
//! instance sharing a database submits the same checkpoints; the second
//! submission of a size is answered 409 with that size and costs nothing.

use std::time::Duration;

use base64::Engine as _;
use warrant_engine::audit::cosignature::cosignatures;
use warrant_engine::audit::witness::{AddCheckpoint, parse_size_body};
use warrant_engine::audit::{CosignatureVerifier, Note};

use crate::audit::AuditLog;
use crate::store::Store;

/// How long one submission may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A witness the log submits its checkpoints to.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The witness's submission prefix; `add-checkpoint` is under it.
    pub url: reqwest::Url,
    pub key: CosignatureVerifier,
}

/// Why a `--witness` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum WitnessArgError {
    #[error("`--witness {0}`: expected `URL=VKEY` (the witness's submission URL and its cosigner key)")]
    Form(String),
    #[error("`--witness {value}`: `{url}` is not an http(s) URL")]
    Url { value: String, url: String },
    #[error("`--witness {value}`: {error}")]
    Key { value: String, error: warrant_engine::audit::NoteError },
    #[error("`--witness-quorum {quorum}` but only {witnesses} witness(es) are configured")]
    Quorum { quorum: usize, witnesses: usize },
}

impl Witness {
    /// Parses `URL=VKEY` (the URL may hold `=`: the key is after the last).
    pub fn parse(value: &str) -> Result<Self, WitnessArgError> {
        let (url, key) = value.rsplit_once('=').ok_or_else(|| WitnessArgError::Form(value.to_owned()))?;
        let bad_url = || WitnessArgError::Url { value: value.to_owned(), url: url.to_owned() };
        let mut url = reqwest::Url::parse(url).map_err(|_| bad_url())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad_url());
        }
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let key =
            CosignatureVerifier::parse(key).map_err(|error| WitnessArgError::Key { value: value.to_owned(), error })?;
        Ok(Self { url, key })
    }
}

/// The witnesses and the quorum that makes a checkpoint witnessed
/// (default: one, if any witness is configured).
pub fn configure(values: &[String], quorum: Option<usize>) -> Result<(Vec<Witness>, usize), WitnessArgError> {
    let witnesses = values.iter().map(|v| Witness::parse(v)).collect::<Result<Vec<_>, _>>()?;
    let quorum = quorum.unwrap_or(usize::from(!witnesses.is_empty()));
    if quorum > witnesses.len() {
        return Err(WitnessArgError::Quorum { quorum, witnesses: witnesses.len() });
    }
    Ok((witnesses, quorum))
}

/// Starts a submission worker per witness.
pub fn start(witnesses: Vec<Witness>, store: &Store, audit: &AuditLog, interval: Duration) {
    crate::tls::provider();
    for witness in witnesses {
        let client = reqwest::Client::builder()
            .tls_version_min(reqwest::tls::Version::TLS_1_2)
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build();
        match client {
            Ok(client) => {
                tracing::info!(witness = witness.key.name(), url = %witness.url, "submitting checkpoints to a witness");
                let worker = Worker { store: store.clone(), audit: audit.clone(), witness, client, interval };
                tokio::spawn(worker.run());
            }
            Err(e) => tracing::error!(witness = witness.key.name(), error = %e, "cannot build the witness client"),
        }
    }
}

struct Worker {
    store: Store,
    audit: AuditLog,
    witness: Witness,
    client: reqwest::Client,
    interval: Duration,
}

/// What one submission came to.
enum Outcome {
    /// The witness cosigned this size (or had already).
    Cosigned(u64),
    /// The witness has cosigned this size: resubmit from it.
    Behind(u64),
    /// Try again later.
    Failed,
}

impl Worker {
    async fn run(self) {
        let name = self.witness.key.name().to_owned();
        // Where the witness stands, as far as this log knows.
        let mut cosigned = self.store.last_cosigned(&name).await.ok().flatten();
        let mut backoff = self.interval;
        loop {
            tokio::time::sleep(backoff).await;
            let latest = match self.store.latest_log_checkpoint().await {
                Ok(Some(latest)) => latest,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(witness = %name, error = %e, "cannot read the newest checkpoint");
                    continue;
                }
            };
            if cosigned.is_some_and(|c| latest.0 <= c) {
                backoff = self.interval;
                continue;
            }
            // At most two tries: a 409 tells where the witness stands.
            let mut outcome = self.submit(cosigned.unwrap_or(0), &latest).await;
            if let Outcome::Behind(size) = outcome {
                cosigned = Some(size);
                outcome = self.submit(size, &latest).await;
            }
            match outcome {
                Outcome::Cosigned(size) => {
                    cosigned = Some(size);
                    backoff = self.interval;
                }
                Outcome::Behind(size) => cosigned = Some(size),
                Outcome::Failed => backoff = (backoff * 2).clamp(self.interval, MAX_BACKOFF),
            }
        }
    }

    /// Submits the checkpoint `(size, note)` with a proof from `old`.
    async fn submit(&self, old: u64, (size, note): &(u64, String)) -> Outcome {
        let name = self.witness.key.name();
        let size = *size;
        if old > size && self.published(old).await {
            // Another instance already had the witness cosign a newer one.
            return Outcome::Cosigned(old);
        }
        if old > size {
            // The witness cosigned a larger tree than any checkpoint this
            // log has: records it saw are gone.
            tracing::error!(
                witness = name,
                witnessed = old,
                published = size,
                "a witness cosigned a larger tree than this log's newest checkpoint: records were lost or cut"
            );
            crate::metrics::refused("witness", format!("{name}: ahead of the log"));
            return Outcome::Failed;
        }
        let Ok(checkpoint) = Note::parse(note.as_bytes()) else {
            tracing::error!(tree_size = size, "a published checkpoint does not parse");
            return Outcome::Failed;
        };
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            match self.audit.read_tree(|tree| tree.consistency_proof(old, size)).await {
                Ok(Ok(proof)) => proof,
                Ok(Err(e)) => {
                    tracing::error!(witness = name, old, size, error = %e, "cannot prove consistency for a witness");
                    return Outcome::Failed;
                }
                Err(e) => {
                    tracing::warn!(witness = name, error = %e, "cannot read the tree for a witness");
                    return Outcome::Failed;
                }
            }
        };
        let body = AddCheckpoint { old_size: old, proof, checkpoint: checkpoint.clone() }.to_bytes();
        let url = match self.witness.url.join("add-checkpoint") {
            Ok(url) => url,
            Err(_) => return Outcome::Failed,
        };
        let response =
            self.client.post(url).header("content-type", "text/plain; charset=utf-8").body(body).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(witness = name, error = %e, "a witness is unreachable; retrying");
                return Outcome::Failed;
            }
        };
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        match status {
            200 => self.keep(size, checkpoint, &body).await,
            409 => match parse_size_body(&body) {
                Ok(theirs) if theirs == size => Outcome::Cosigned(size),
                Ok(theirs) if theirs < size && theirs != old => Outcome::Behind(theirs),
                // Another instance sharing the database may have submitted a
                // newer checkpoint than the one read here: fine if the log
                // has published that size.
                Ok(theirs) if theirs > size && self.published(theirs).await => Outcome::Cosigned(theirs),
                Ok(theirs) => {
                    tracing::error!(
                        witness = name,
                        witnessed = theirs,
                        published = size,
                        "a witness cosigned a tree this log's checkpoints do not extend: records were lost or rewritten"
                    );
                    crate::metrics::refused("witness", format!("{name}: 409"));
                    Outcome::Failed
                }
                Err(_) => {
                    tracing::warn!(witness = name, "a witness answered 409 without its size");
                    Outcome::Failed
                }
            },
            _ => {
                let reason = String::from_utf8_lossy(body.get(..512).unwrap_or(&body)).trim().to_owned();
                tracing::error!(
                    witness = name,
                    status,
                    old,
                    tree_size = size,
                    reason,
                    "a witness refused the log's checkpoint"
                );
                crate::metrics::refused("witness", format!("{name}: {status}"));
                Outcome::Failed
            }
        }
    }

    /// Whether the log has published a checkpoint of `size`.
    async fn published(&self, size: u64) -> bool {
        self.store.log_checkpoint(size).await.ok().flatten().is_some()
    }

    /// Verifies the witness's answer and keeps its cosignature.
    async fn keep(&self, size: u64, mut checkpoint: Note, body: &[u8]) -> Outcome {
        let name = self.witness.key.name();
        let lines = String::from_utf8_lossy(body);
        let verified = checkpoint
            .add_signature_lines(&lines)
            .ok()
            .and_then(|()| cosignatures(&checkpoint, std::slice::from_ref(&self.witness.key)).ok())
            .is_some_and(|c| !c.is_empty());
        let line = lines.lines().find(|l| is_line_of(l, &self.witness.key));
        let (true, Some(line)) = (verified, line) else {
            tracing::error!(witness = name, "a witness's answer holds no valid cosignature by its key");
            crate::metrics::refused("witness", format!("{name}: bad cosignature"));
            return Outcome::Failed;
        };
        if let Err(e) = self.store.save_cosignature(size, name, &format!("{line}\n")).await {
            tracing::warn!(witness = name, error = %e, "cannot keep a cosignature; submitting again");
            return Outcome::Failed;
        }
        tracing::debug!(witness = name, tree_size = size, "checkpoint cosigned");
        Outcome::Cosigned(size)
    }
}

/// Whether `line` is a cosignature line by `key`: its name, and its key id
/// (the signature's first four bytes).
fn is_line_of(line: &str, key: &CosignatureVerifier) -> bool {
    let Some(rest) = line.strip_prefix("\u{2014} ") else { return false };
    let Some((who, signature)) = rest.split_once(' ') else { return false };
    let signature = base64::engine::general_purpose::STANDARD.decode(signature).unwrap_or_default();
    who == key.name() && signature.len() == 76 && signature.get(..4) == Some(&key.id().to_be_bytes()[..])
}
