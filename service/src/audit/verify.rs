//! Verifying a stored log: the keyed chain record by record, then every
//! checkpoint (stored ones and any the auditor kept: HMAC-sealed JSON, and
//! signed notes already checked against the log's public keys), and the
//! tree's stored tiles, against the records' Merkle root. Reports the first
//! bad `seq` and why.

use serde::Serialize;
use warrant_engine::audit::{ChainStart, ChainVerifier, Checkpoint, Hash, LogCheckpoint, Mac, merkle};

use crate::keys::AuditKeys;
use crate::store::{Store, StoreError};

/// Records streamed per query while verifying (progress is reported
/// between queries).
const CHUNK: u32 = 50_000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = VerifyReport)]
pub struct Report {
    pub ok: bool,
    /// First and last `seq` checked.
    pub from: u64,
    pub to: u64,
    pub records: u64,
    pub checkpoints_checked: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a verification could not be run (not a finding about the log).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The asked range does not fit the log: the caller's mistake.
    #[error("{0}")]
    Range(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies records `from..=to` (`to` defaults to the last) and, when the
/// range starts at 1, the checkpoints it reaches: those within it, and —
/// when it reaches the end of the log — every one, so a checkpoint larger
/// than the log shows records were cut off. `progress` is told how many
/// records have been checked so far.
pub async fn verify(
    store: &Store,
    keys: &AuditKeys,
    from: u64,
    to: Option<u64>,
    kept: &[Checkpoint],
    signed: &[LogCheckpoint],
    mut progress: impl FnMut(u64),
) -> Result<Report, VerifyError> {
    let from = from.max(1);
    let last = store.audit_head().await?.map_or(0, |(seq, _)| seq);
    if let Some(to) = to
        && to < from
    {
        return Err(VerifyError::Range(format!("`to` ({to}) is before `from` ({from})")));
    }
    if from > last.max(1) {
        return Err(VerifyError::Range(format!("`from` ({from}) is past the end of the log (seq {last})")));
    }
    let reaches_end = to.is_none_or(|t| t >= last);
    let to = to.unwrap_or(last).min(last);
    let mut report =
        Report { ok: true, from, to, records: 0, checkpoints_checked: 0, first_bad_seq: None, reason: None };
    let start = if from == 1 {
        ChainStart::genesis()
    } else {
        match store.audit_range(from - 1, from - 1, 1).await?.first() {
            Some(before) => ChainStart::new(from, Mac::from_hex(&before.mac).unwrap_or(Mac::ZERO)),
            None => return Ok(fail(report, from - 1, "the record before the range is missing".into())),
        }
    };
    let mut checkpoints = store.checkpoints().await?;
    checkpoints.extend_from_slice(kept);
    // A partial range can only vouch for the checkpoints inside it.
    checkpoints.retain(|c| reaches_end || c.tree_size <= to);
    let signed: Vec<&LogCheckpoint> = signed.iter().filter(|c| reaches_end || c.tree_size <= to).collect();
    // The Merkle leaves are needed to check checkpoints and tiles against.
    let want_leaves = from == 1;
    let mut leaves: Vec<Hash> = Vec::new();
    let mut verifier = ChainVerifier::new(keys.signing(), &start).strict_from(store.audit_canonical_since().await?);
    let mut next = from;
    while next <= to {
        let wanted = if want_leaves { Some(&mut leaves) } else { None };
        match store.audit_verify_range((next, to, CHUNK), &mut verifier, wanted).await? {
            Ok(0) => return Ok(fail(report, next, format!("record {next} is missing"))),
            Ok(read) => {
                report.records += read;
                next += read;
            }
            Err(broken) => {
                report.records = broken.seq.saturating_sub(from);
                return Ok(fail(report, broken.seq, broken.reason.to_string()));
            }
        }
        progress(report.records);
    }
    if from != 1 {
        return Ok(report);
    }
    // Checkpoints signed before leaves covered content hash MACs instead.
    let mac_leaves_until = store.audit_mac_leaves_until().await?;
    let mut mac_leaves: Option<Vec<Hash>> = None;
    for c in &checkpoints {
        report.checkpoints_checked += 1;
        if let Err(e) = c.verify(keys.signing()) {
            return Ok(fail(report, c.tree_size, format!("checkpoint at size {}: {e}", c.tree_size)));
        }
        let mut root = merkle::root_at(&leaves, c.tree_size).map(hex::encode).unwrap_or_default();
        if root != c.root && c.tree_size <= mac_leaves_until {
            if mac_leaves.is_none() {
                mac_leaves = Some(store.audit_mac_leaves(mac_leaves_until).await?);
            }
            let old = mac_leaves.as_deref().unwrap_or_default();
            root = merkle::root_at(old, c.tree_size).map(hex::encode).unwrap_or_default();
        }
        if let Some(reason) = holds(&leaves, c.tree_size, &root, &c.root) {
            return Ok(fail(report, c.tree_size.min(leaves.len() as u64 + 1), reason));
        }
    }
    // The tree's stored tiles are a checkpoint too, kept with the log: they
    // must hash as the records do, and cover no record the log lacks.
    let tiled = store.audit_tree_size().await?;
    if reaches_end || tiled <= to {
        let root = store.audit_tree(tiled, None, |tree| tree.root_at(tiled)).await?;
        let got = merkle::root_at(&leaves, tiled).map(hex::encode).unwrap_or_default();
        let reason = match root {
            Ok(root) => holds(&leaves, tiled, &got, &hex::encode(root)),
            Err(e) => Some(format!("the tree's stored tiles are damaged: {e}")),
        };
        if let Some(reason) = reason {
            let reason = format!("the tree's stored tiles: {reason}");
            return Ok(fail(report, tiled.min(leaves.len() as u64 + 1), reason));
        }
    }
    for c in signed {
        report.checkpoints_checked += 1;
        let root = merkle::root_at(&leaves, c.tree_size).map(hex::encode).unwrap_or_default();
        if let Some(reason) = holds(&leaves, c.tree_size, &root, &hex::encode(c.root)) {
            let reason = format!("signed checkpoint of {}: {reason}", c.origin);
            return Ok(fail(report, c.tree_size.min(leaves.len() as u64 + 1), reason));
        }
    }
    Ok(report)
}

/// Why a checkpoint of `tree_size` records with root `want` does not hold
/// for `leaves` whose root at that size is `got`, if it does not.
fn holds(leaves: &[Hash], tree_size: u64, got: &str, want: &str) -> Option<String> {
    let size = leaves.len() as u64;
    if tree_size > size {
        return Some(cut_off(size, tree_size));
    }
    (got != want).then(|| format!("the records 1..={tree_size} do not hash to the checkpoint's root"))
}

fn cut_off(size: u64, tree_size: u64) -> String {
    format!("the log ends at seq {size}, but a checkpoint covers {tree_size} records: records were cut off")
}

fn fail(mut report: Report, seq: u64, reason: String) -> Report {
    report.ok = false;
    report.first_bad_seq = Some(seq);
    report.reason = Some(reason);
    report
}
