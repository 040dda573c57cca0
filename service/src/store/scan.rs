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
//! the verifier sees the stored bytes unchanged. Several runs are read at
//! once (on the scan connections) and checked (each on a blocking thread),
//! and joined into the chain in order.

use std::collections::VecDeque;
use std::sync::Arc;

use sqlx::Row as _;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use warrant_engine::audit::{
    ChainBreak, ChainStart, ChainVerifier, Hash, Keyring, Mac, StoredRecord, VerifiedSummary, merkle,
};

use super::StoreError;

/// Records per packed value (~0.5 KiB each).
const RUN: u32 = 1024;

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

/// Runs in flight: each is read on one of the scan pool's connections,
/// then checked on a blocking thread; they are joined in order.
const AHEAD: usize = 16;

/// A run read and checked apart from the chain: its first record is left
/// for the caller's verifier (which knows the MAC before it); the rest were
/// checked from that first record's MAC on.
struct CheckedRun {
    /// One column: the packed text (borrowed from the row, not copied).
    packed: SqliteRow,
    checked: Checked,
}

/// Reads the records with `from <= seq <= to` packed (on SQLite's worker
/// thread) and checks all but the first on a blocking thread.
fn start(
    pool: &SqlitePool,
    (from, to): (u64, u64),
    keyring: &Arc<Keyring>,
    (strict_from, leaves): (u64, bool),
) -> tokio::task::JoinHandle<Result<CheckedRun, StoreError>> {
    let pool = pool.clone();
    let keyring = Arc::clone(keyring);
    tokio::spawn(async move {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let to = i64::try_from(to).unwrap_or(i64::MAX);
        let packed = sqlx::query(PACKED).bind(from).bind(to).fetch_one(&pool).await?;
        tokio::task::spawn_blocking(move || check_rest(packed, &keyring, strict_from, leaves))
            .await
            .map_err(|e| corrupt(&e.to_string()))?
    })
}

/// Checks all records of a packed run but the first; with their leaves if
/// `leaves`.
fn check_rest(packed: SqliteRow, keyring: &Keyring, strict_from: u64, leaves: bool) -> Result<CheckedRun, StoreError> {
    let text = text_of(&packed)?;
    // SQLite concatenates in the order it scans, `seq` (the rowid) order
    // (an aggregate ORDER BY would sort again in a temp b-tree, a third of
    // the cost), but does not promise it: records are checked as they come,
    // and only if one comes out of order are they sorted and checked again,
    // so a reordering of the query never reads as a reordered log.
    let checked = match check_in_order(in_text_order(text), keyring, strict_from, leaves)? {
        Some(checked) => checked,
        None => {
            let sorted = records_of(text)?.into_iter().map(Ok);
            check_in_order(sorted, keyring, strict_from, leaves)?.ok_or_else(|| corrupt("records out of order"))?
        }
    };
    Ok(CheckedRun { packed, checked })
}

/// What [`check_in_order`] found.
struct Checked {
    /// Where the first record (lowest `seq`) starts in the packed text;
    /// `None` if the run holds no record.
    first_at: Option<usize>,
    /// Where the rest starts: after the first record.
    rest_start: ChainStart,
    rest: Result<VerifiedSummary, ChainBreak>,
    rest_leaves: Vec<Hash>,
}

/// Checks `records` but the first, from the first one's MAC on; `None` if a
/// record comes with a lower `seq` than one before it.
fn check_in_order<'a>(
    mut records: impl Iterator<Item = Result<(usize, StoredRecord<'a>), StoreError>>,
    keyring: &Keyring,
    strict_from: u64,
    leaves: bool,
) -> Result<Option<Checked>, StoreError> {
    let Some((first_at, first)) = records.next().transpose()? else {
        let nothing = ChainVerifier::new(keyring, &ChainStart::genesis()).finish();
        let rest_start = ChainStart::genesis();
        return Ok(Some(Checked { first_at: None, rest_start, rest: Ok(nothing), rest_leaves: Vec::new() }));
    };
    // If the first record's MAC is not genuine, the caller's verifier
    // reports it before anything checked from it counts.
    let rest_start = ChainStart::new(first.seq.saturating_add(1), Mac::from_hex(first.mac).unwrap_or(Mac::ZERO));
    let mut verifier = ChainVerifier::new(keyring, &rest_start).strict_from(strict_from);
    let mut rest_leaves = Vec::with_capacity(if leaves { RUN as usize } else { 0 });
    let mut broken = None;
    let mut last = first.seq;
    for record in records {
        let (_, record) = record?;
        if record.seq < last {
            return Ok(None);
        }
        last = record.seq;
        // After a break, read on only to be sure of the order.
        if broken.is_some() {
            continue;
        }
        match verifier.push(&record) {
            Ok(mac) if leaves => rest_leaves.push(merkle::leaf_hash(mac.as_bytes())),
            Ok(_) => {}
            Err(b) => broken = Some(b),
        }
    }
    let rest = match broken {
        Some(b) => Err(b),
        None => Ok(verifier.finish()),
    };
    Ok(Some(Checked { first_at: Some(first_at), rest_start, rest, rest_leaves }))
}

/// The records of a packed run as they come, each with where it starts.
fn in_text_order(packed: &str) -> impl Iterator<Item = Result<(usize, StoredRecord<'_>), StoreError>> {
    let mut rest = packed;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let at = packed.len() - rest.len();
        Some(split(rest).map(|(record, after)| {
            rest = after;
            (at, record)
        }))
    })
    .scan(false, |failed, item| {
        // Stop after the first error.
        if *failed {
            return None;
        }
        *failed = item.is_err();
        Some(item)
    })
}

/// A packed run's text (empty when the range holds no records).
fn text_of(row: &SqliteRow) -> Result<&str, StoreError> {
    Ok(row.try_get::<Option<&str>, _>(0)?.unwrap_or_default())
}

/// The records of a packed run, each with where it starts in the text,
/// sorted by `seq` (equal ones keep their order).
fn records_of(packed: &str) -> Result<Vec<(usize, StoredRecord<'_>)>, StoreError> {
    let mut rest = packed;
    let mut records = Vec::with_capacity(RUN as usize);
    while !rest.is_empty() {
        let at = packed.len() - rest.len();
        let (record, after) = split(rest)?;
        rest = after;
        records.push((at, record));
    }
    records.sort_by_key(|(_, r)| r.seq);
    Ok(records)
}

/// Verifies records `from..=to` (at most `limit`) like
/// [`super::rows::verify_rows`], reading them packed.
///
/// Runs of [`RUN`] records are read and checked in parallel, each from its
/// own first record's MAC on; they are joined in order by `verifier`, which
/// checks each run's first record against the chain so far (`seq`,
/// `prev_mac`, MAC) before taking over the rest. So every link is checked
/// and the first bad `seq` reported is the one a record-by-record pass
/// would report.
pub async fn verify_range(
    pool: &SqlitePool,
    (from, to, limit): (u64, u64, u32),
    verifier: &mut ChainVerifier<'_>,
    mut leaves: Option<&mut Vec<Hash>>,
) -> Result<Result<u64, ChainBreak>, StoreError> {
    // Runs are `seq` ranges: a gap inside one is the verifier's to report.
    let end = to.min(from.saturating_add(u64::from(limit)).saturating_sub(1));
    let run_end = |first: u64| end.min(first.saturating_add(u64::from(RUN) - 1));
    let keyring = Arc::new(verifier.keyring().clone());
    let strict_from = verifier.strict_seq();
    let mut pending = VecDeque::with_capacity(AHEAD);
    let mut next = from;
    let mut read = 0u64;
    loop {
        while pending.len() < AHEAD && next <= end {
            pending.push_back(start(pool, (next, run_end(next)), &keyring, (strict_from, leaves.is_some())));
            next = run_end(next).saturating_add(1);
        }
        let Some(run) = pending.pop_front() else { break };
        let run = run.await.map_err(|e| corrupt(&e.to_string()))??;
        let joined = join(verifier, &run, leaves.as_deref_mut())?;
        match joined {
            Ok(records) => read += records,
            Err(broken) => {
                for p in pending {
                    p.abort();
                }
                return Ok(Err(broken));
            }
        }
    }
    Ok(Ok(read))
}

/// Checks a run's first record against the chain, then takes over the rest.
fn join(
    verifier: &mut ChainVerifier<'_>,
    run: &CheckedRun,
    leaves: Option<&mut Vec<Hash>>,
) -> Result<Result<u64, ChainBreak>, StoreError> {
    let Some(first_at) = run.checked.first_at else { return Ok(Ok(0)) };
    let text = text_of(&run.packed)?.get(first_at..).ok_or_else(|| corrupt("first record offset"))?;
    let (first, _) = split(text)?;
    let checked = verifier.push(&first).and_then(|first_mac| {
        let rest = run.checked.rest.clone()?;
        let count = rest.count;
        verifier.continue_with(&run.checked.rest_start, rest)?;
        if let Some(l) = leaves {
            l.push(merkle::leaf_hash(first_mac.as_bytes()));
            l.extend_from_slice(&run.checked.rest_leaves);
        }
        Ok(count + 1)
    });
    Ok(checked)
}

fn required(value: Option<&str>) -> Result<&str, StoreError> {
    value.ok_or_else(|| corrupt("NULL in a NOT NULL column"))
}

/// The first packed record of `text`, and the rest.
fn split(text: &str) -> Result<(StoredRecord<'_>, &str), StoreError> {
    // The header: `seq` then 14 lengths (-1 for NULL), comma-separated,
    // ended by `;`. Parsed by hand: it is per record, on the hot path.
    let bytes = text.as_bytes();
    let mut at = 0;
    // A number and the byte after it.
    let mut number = || -> Result<(i64, u8), StoreError> {
        let negative = bytes.get(at) == Some(&b'-');
        at += usize::from(negative);
        let digits = at;
        let mut n: i64 = 0;
        while let Some(d) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(i64::from(d - b'0')))
                .ok_or_else(|| corrupt("bad number"))?;
            at += 1;
        }
        let end = bytes.get(at).copied().filter(|_| at > digits).ok_or_else(|| corrupt("bad header"))?;
        at += 1;
        Ok((if negative { -n } else { n }, end))
    };
    let header = |(n, end): (i64, u8), want: u8| if end == want { Ok(n) } else { Err(corrupt("bad header")) };
    let seq = header(number()?, b',')?;
    let mut lengths = [0i64; 14];
    for (i, len) in lengths.iter_mut().enumerate() {
        *len = header(number()?, if i == 13 { b';' } else { b',' })?;
    }
    let mut data = text.get(at..).ok_or_else(|| corrupt("bad header"))?;
    let mut lengths = lengths.into_iter();
    let mut column = || -> Result<Option<&str>, StoreError> {
        let Ok(len) = usize::try_from(lengths.next().unwrap_or(-1)) else { return Ok(None) };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    /// A record packed as `PACKED` packs it, every optional column present
    /// but `decision` (NULL).
    fn packed(seq: u64, actor: &str) -> String {
        let columns = ["2026-11-23T00:00:00Z", "decision", actor, "t", "o", "c", "p", "", "[]", "d", "{}", "k1"];
        let macs = ["0".repeat(64), "1".repeat(64)];
        let mut lengths: Vec<String> = columns.iter().map(|c| c.len().to_string()).collect();
        lengths[7] = "-1".into();
        lengths.extend(macs.iter().map(|m| m.len().to_string()));
        let data: String = columns.iter().copied().chain(macs.iter().map(String::as_str)).collect();
        format!("{seq},{};{data}", lengths.join(","))
    }

    #[test]
    fn records_come_back_in_seq_order_with_their_offsets() {
        let text = format!("{}{}{}", packed(3, "c"), packed(1, "a;b,1"), packed(2, "\u{0}é"));
        let records = records_of(&text).unwrap();
        assert_eq!(records.iter().map(|(_, r)| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(records[0].1.actor, "a;b,1");
        assert_eq!(records[0].1.decision, None);
        assert_eq!(records[1].1.actor, "\u{0}é");
        for (at, record) in &records {
            assert_eq!(split(&text[*at..]).unwrap().0.seq, record.seq, "offset of {}", record.seq);
        }
    }

    #[test]
    fn records_out_of_order_are_sorted_before_they_are_checked() {
        let keyring = Keyring::new("k1", &[7u8; 32]).unwrap();
        let check = |text: &str| check_in_order(in_text_order(text), &keyring, 0, false).unwrap();
        let unordered = format!("{}{}{}", packed(1, "a"), packed(3, "c"), packed(2, "b"));
        assert!(check(&unordered).is_none(), "a lower seq after a higher one sends the run to sorting");
        // In order, the (fake) MACs fail at the second record, as they would
        // after sorting the unordered run.
        let ordered = format!("{}{}{}", packed(1, "a"), packed(2, "b"), packed(3, "c"));
        let found = check(&ordered).unwrap();
        assert_eq!(found.first_at, Some(0));
        assert_eq!(found.rest.unwrap_err().seq, 2);
        let sorted = records_of(&unordered).unwrap().into_iter().map(Ok);
        let found = check_in_order(sorted, &keyring, 0, false).unwrap().unwrap();
        assert_eq!(split(&unordered[found.first_at.unwrap()..]).unwrap().0.seq, 1);
        assert_eq!(found.rest.unwrap_err().seq, 2);
        assert!(check("").unwrap().first_at.is_none());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = packed(1, "a");
        assert!(split(&good).is_ok());
        for bad in [good.replacen(',', ";", 1), good.replacen(';', ",", 1), good.replacen("1,", "x,", 1), String::new()]
        {
            assert!(split(&bad).is_err(), "{bad:?}");
        }
    }
}
