//! Reading SQLite audit rows for verification, many records per result row.
//!
//! Verification is a straight scan, and per row sqlx copies every column
//! into its own allocation on its worker thread and hands the row over a
//! channel: ~4–8 µs a row here, most of the cost of verifying. So SQLite
//! packs a run of records into one text value, each record a header of byte
//! lengths and then its columns' bytes, verbatim:
//!
//! ```text
//! <seq>,<len ts>,<len kind>,…,<len mac>;<ts><kind>…<mac>
//! ```
//!
//! A length of -1 is NULL. The lengths are computed by SQLite from the
//! stored values (`octet_length`), never stored, so the split is exact and
//! the verifier sees the stored bytes unchanged. While one run is being
//! verified, SQLite's worker thread already packs the next.

use sqlx::sqlite::SqlitePool;
use warrant_engine::audit::{ChainBreak, ChainVerifier, Hash, StoredRecord, merkle};

use super::StoreError;

/// Records per packed value (~0.5 KiB each).
const RUN: u32 = 4096;

const PACKED: &str = concat!(
    "SELECT group_concat(concat(concat_ws(',', seq, octet_length(ts), octet_length(kind), octet_length(actor), ",
    "ifnull(octet_length(token_id), -1), ifnull(octet_length(token_owner), -1), ",
    "ifnull(octet_length(connection), -1), ifnull(octet_length(project), -1), ",
    "ifnull(octet_length(decision), -1), ifnull(octet_length(reasons), -1), ",
    "ifnull(octet_length(policy_digest), -1), octet_length(details), octet_length(key_id), ",
    "octet_length(prev_mac), octet_length(mac)), ';', ts, kind, actor, token_id, token_owner, connection, ",
    "project, decision, reasons, policy_digest, details, key_id, prev_mac, mac), '') ",
    "FROM audit_records WHERE seq >= ? AND seq <= ?"
);

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("packed audit records: {what}"))
}

/// Starts packing the records with `from <= seq <= to` on SQLite's worker
/// thread.
fn start(pool: &SqlitePool, from: u64, to: u64) -> tokio::task::JoinHandle<Result<String, StoreError>> {
    let pool = pool.clone();
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let packed: Option<String> = sqlx::query_scalar(PACKED).bind(from).bind(to).fetch_one(&pool).await?;
        Ok(packed.unwrap_or_default())
    })
}

/// Verifies records `from..=to` (at most `limit`) like
/// [`super::rows::verify_rows`], reading them packed.
pub async fn verify_range(
    pool: &SqlitePool,
    (from, to, limit): (u64, u64, u32),
    verifier: &mut ChainVerifier<'_>,
    mut leaves: Option<&mut Vec<Hash>>,
) -> Result<Result<u64, ChainBreak>, StoreError> {
    // Runs are `seq` ranges: a gap inside one is the verifier's to report.
    let end = to.min(from.saturating_add(u64::from(limit)).saturating_sub(1));
    let run_end = |first: u64| end.min(first.saturating_add(u64::from(RUN) - 1));
    let mut read = 0u64;
    let mut next = from;
    let mut pending = (next <= end).then(|| start(pool, next, run_end(next)));
    while let Some(run) = pending.take() {
        let packed = run.await.map_err(|e| corrupt(&e.to_string()))??;
        let mut records = 0u64;
        let mut rest = packed.as_str();
        let mut batch = Vec::with_capacity(RUN as usize);
        while !rest.is_empty() {
            let (record, after) = split(rest)?;
            rest = after;
            batch.push(record);
        }
        // SQLite concatenates in the order it scans, `seq` (the rowid) order
        // (an aggregate ORDER BY would sort again in a temp b-tree, a third of
        // the cost), but does not promise it: restore the order if it ever differs,
        // so a reordering of the query never reads as a reordered log.
        if !batch.is_sorted_by_key(|r| r.seq) {
            batch.sort_unstable_by_key(|r| r.seq);
        }
        // Pack the next run while this one is verified.
        if run_end(next) < end {
            next = run_end(next) + 1;
            pending = Some(start(pool, next, run_end(next)));
            // On a multi-thread runtime another worker runs it now; on a
            // current-thread one, give it a turn to get its query going.
            tokio::task::yield_now().await;
        }
        for record in &batch {
            let mac = match verifier.push(record) {
                Ok(mac) => mac,
                Err(broken) => {
                    if let Some(p) = pending {
                        p.abort();
                    }
                    return Ok(Err(broken));
                }
            };
            if let Some(l) = leaves.as_deref_mut() {
                l.push(merkle::leaf_hash(mac.as_bytes()));
            }
            records += 1;
        }
        read += records;
    }
    Ok(Ok(read))
}

fn required(value: Option<&str>) -> Result<&str, StoreError> {
    value.ok_or_else(|| corrupt("NULL in a NOT NULL column"))
}

/// The first packed record of `text`, and the rest.
fn split(text: &str) -> Result<(StoredRecord<'_>, &str), StoreError> {
    let (header, mut data) = text.split_once(';').ok_or_else(|| corrupt("no header"))?;
    let mut numbers = header.split(',');
    let seq: i64 = numbers.next().and_then(|n| n.parse().ok()).ok_or_else(|| corrupt("bad seq"))?;
    let mut column = || -> Result<Option<&str>, StoreError> {
        let len: i64 = numbers.next().and_then(|n| n.parse().ok()).ok_or_else(|| corrupt("bad length"))?;
        let Ok(len) = usize::try_from(len) else { return Ok(None) };
        let value = data.get(..len).ok_or_else(|| corrupt("length past the end"))?;
        data = data.get(len..).unwrap_or_default();
        Ok(Some(value))
    };
    let record = StoredRecord {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative `seq`".into()))?,
        ts: required(column()?)?,
        kind: required(column()?)?,
        actor: required(column()?)?,
        token_id: column()?,
        token_owner: column()?,
        connection: column()?,
        project: column()?,
        decision: column()?,
        reasons: column()?,
        policy_digest: column()?,
        details: required(column()?)?,
        key_id: required(column()?)?,
        prev_mac: required(column()?)?,
        mac: required(column()?)?,
    };
    Ok((record, data))
}
