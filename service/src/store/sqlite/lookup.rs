//! Finding SQLite audit records by kind, actor, token, connection or
//! project without indexing them on the acknowledgement path.
//!
//! A B-tree index on a column whose values arrive in random order (token
//! digests, actors) costs a page write per record: with them, a group
//! commit of 64 records wrote ~150 random pages and durable appends topped
//! out near 14k/s. So the log itself carries only its primary key and the
//! (append-ordered) `ts` index, and lookups go through **postings** built
//! behind the log, one closed partition at a time:
//!
//! - records are cut into partitions of [`PART`] consecutive `seq`s;
//! - once a partition is complete, [`index`] reads its records, derives a
//!   64-bit key per looked-up field value ([`key`]), and writes the sorted
//!   `(key, seq)` pairs as one row per key bucket (the key's top byte):
//!   256 small rows per 4,096 records, written once, never updated;
//! - [`query`] reads, for the key it looks up, one row per partition (a
//!   range of the `(bucket, part)` index), fetches the candidate records
//!   and applies the whole filter to them, then scans the partitions not
//!   indexed yet the ordinary way.
//!
//! Postings only ever narrow the search: every answer is a stored record
//! that passed the complete filter, so a key collision costs a wasted read,
//! never a wrong answer. They are derived data: the migration that
//! introduces them starts at 0 and the indexer catches up from the log.

use rusqlite::Connection;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use sqlx::sqlite::SqlitePool;
use warrant_engine::audit::Record;

use super::upkeep::Upkeep;
use crate::store::error::StoreError;
use crate::store::records::{AuditFilter, Candidates, record_of, select};

/// Records per partition (fixed: stored postings are cut this way).
pub const PART: u64 = 4096;
/// Partitions whose postings one query reads per round trip.
const PARTS_PER_READ: i64 = 64;
/// Above this many candidates in a partition, read the partition's range
/// with the filter instead of binding every candidate `seq`.
const MAX_LISTED: usize = 256;

/// The record fields postings cover, most selective first (the order
/// [`query`] picks the one to look up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Token = 3,
    Actor = 2,
    Project = 5,
    Connection = 4,
    Kind = 1,
}

/// The posting key of `value` in `field`: the first 8 bytes of
/// SHA-256(field tag ‖ value), big-endian. Stable across versions (stored).
fn key(field: Field, value: &str) -> u64 {
    let digest = Sha256::new().chain_update([field as u8]).chain_update(value.as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

fn bucket(key: u64) -> i64 {
    i64::from((key >> 56) as u8)
}

use crate::store::error::i64_of as as_i64;

/// Reads what [`select`] asks for.
async fn fetch(
    pool: &SqlitePool,
    f: &AuditFilter,
    after: u64,
    candidates: Candidates<'_>,
) -> Result<Vec<Record>, StoreError> {
    let rows = select(f, after, candidates).build().fetch_all(pool).await?;
    rows.iter().map(record_of).collect()
}

/// The field and value a filter is looked up by, if it names one.
fn lookup_of(f: &AuditFilter) -> Option<(Field, &str)> {
    [
        (Field::Token, &f.token_id),
        (Field::Actor, &f.actor),
        (Field::Project, &f.project),
        (Field::Connection, &f.connection),
        (Field::Kind, &f.kind),
    ]
    .into_iter()
    .find_map(|(field, value)| value.as_deref().map(|v| (field, v)))
}

/// Records with `seq <= indexed_upto()` are covered by postings.
pub async fn indexed_upto(pool: &SqlitePool) -> Result<u64, StoreError> {
    let upto: Option<i64> =
        sqlx::query_scalar("SELECT MAX(indexed_upto) FROM audit_lookup_state").fetch_one(pool).await?;
    Ok(upto.and_then(|u| u64::try_from(u).ok()).unwrap_or(0))
}

/// Builds the postings of every complete partition not indexed yet; returns
/// the new `indexed_upto`. Safe to run from several processes at
/// once: a partition is claimed by moving `indexed_upto` in the same
/// transaction that writes it. With `upkeep`, a partition is read and
/// hashed on the upkeep thread (`upkeep.rs`), at the lowest CPU priority.
pub async fn index(reader: &SqlitePool, writer: &SqlitePool, upkeep: Option<&Upkeep>) -> Result<u64, StoreError> {
    loop {
        let upto = indexed_upto(reader).await?;
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_records").fetch_one(reader).await?;
        let head = head.and_then(|h| u64::try_from(h).ok()).unwrap_or(0);
        if head < upto + PART {
            return Ok(upto);
        }
        let rows = match upkeep {
            Some(upkeep) => upkeep.run(move |connection| postings_from(partition_rows(connection, upto)?)).await?,
            None => postings_from(partition_rows_through(reader, upto).await?)?,
        };
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let claimed = sqlx::query("UPDATE audit_lookup_state SET indexed_upto = ? WHERE indexed_upto = ?")
            .bind(as_i64(upto + PART))
            .bind(as_i64(upto))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if claimed != 1 {
            // Another indexer got there first.
            return indexed_upto(reader).await;
        }
        let part = as_i64(upto / PART);
        for chunk in rows.chunks(200) {
            let mut insert = sqlx::QueryBuilder::new("INSERT INTO audit_postings (bucket, part, postings) ");
            insert.push_values(chunk, |mut row, (bucket, blob)| {
                row.push_bind(*bucket).push_bind(part).push_bind(blob.clone());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
}

/// A record's looked-up values: `seq`, kind, actor, token, connection, project.
type Looked = (i64, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

/// The looked-up values of the partition after `upto`, read on the calling
/// thread (the upkeep thread's connection).
fn partition_rows(connection: &Connection, upto: u64) -> Result<Vec<Looked>, StoreError> {
    let read = || -> rusqlite::Result<Vec<Looked>> {
        let mut statement = connection.prepare_cached(
            "SELECT seq, kind, actor, token_id, connection, project FROM audit_records WHERE seq > ?1 AND seq <= ?2",
        )?;
        let rows = statement.query_map([as_i64(upto), as_i64(upto + PART)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
        rows.collect()
    };
    read().map_err(|e| StoreError::Database(sqlx::Error::Protocol(format!("reading a lookup partition: {e}"))))
}

/// The same through sqlx, for a database no other connection can open (in
/// memory). The partition's 4,096 records come back as one JSON row built
/// by SQLite: sqlx hands each result row from SQLite's thread to the
/// caller's on its own, and on a busy core those 4,096 hand-offs cost more
/// than the text (measured: about a tenth of the audited decision path's CPU).
async fn partition_rows_through(pool: &SqlitePool, upto: u64) -> Result<Vec<Looked>, StoreError> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(json_array(seq, kind, actor, token_id, connection, project)) \
         FROM audit_records WHERE seq > ? AND seq <= ?",
    )
    .bind(as_i64(upto))
    .bind(as_i64(upto + PART))
    .fetch_one(pool)
    .await?;
    serde_json::from_str(text.as_deref().unwrap_or("[]"))
        .map_err(|e| StoreError::Corrupt(format!("the records of a lookup partition: {e}")))
}

/// The postings rows of a partition's records: per bucket, its
/// `(key, seq)` pairs sorted, 16 bytes each (both big-endian).
fn postings_from(rows: Vec<Looked>) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut pairs: Vec<(u64, u64)> = Vec::with_capacity(rows.len() * 4);
    for (seq, kind, actor, token, connection, project) in rows {
        let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative `seq`".into()))?;
        let looked = [
            (kind, Field::Kind),
            (actor, Field::Actor),
            (token, Field::Token),
            (connection, Field::Connection),
            (project, Field::Project),
        ];
        for (value, field) in looked {
            if let Some(v) = value {
                pairs.push((key(field, &v), seq));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    for (k, seq) in pairs {
        let b = bucket(k);
        if out.last().is_none_or(|(last, _)| *last != b) {
            out.push((b, Vec::new()));
        }
        if let Some((_, blob)) = out.last_mut() {
            blob.extend_from_slice(&k.to_be_bytes());
            blob.extend_from_slice(&seq.to_be_bytes());
        }
    }
    Ok(out)
}

/// The `seq`s a postings blob lists for `key`, in order.
fn seqs_in(blob: &[u8], key: u64) -> Vec<u64> {
    let pairs: Vec<(u64, u64)> = blob
        .chunks_exact(16)
        .map(|p| {
            let (k, s) = p.split_at(8);
            let k = k.try_into().map_or(0, u64::from_be_bytes);
            let s = s.try_into().map_or(0, u64::from_be_bytes);
            (k, s)
        })
        .collect();
    let start = pairs.partition_point(|(k, _)| *k < key);
    pairs.get(start..).unwrap_or_default().iter().take_while(|(k, _)| *k == key).map(|(_, s)| *s).collect()
}

/// Records matching `f` after `f.after_seq`, in `seq` order, at most
/// `f.limit`: through the postings where they cover the log, by scan after.
pub async fn query(pool: &SqlitePool, f: &AuditFilter) -> Result<Vec<Record>, StoreError> {
    let limit = usize::try_from(f.limit).unwrap_or(usize::MAX);
    let Some((field, value)) = lookup_of(f) else {
        return fetch(pool, f, f.after_seq, Candidates::All).await;
    };
    let upto = indexed_upto(pool).await?;
    let mut found = Vec::new();
    if f.after_seq < upto {
        let key = key(field, value);
        let mut part = as_i64(f.after_seq / PART);
        let parts_end = as_i64(upto / PART);
        while part < parts_end {
            let rows = sqlx::query(
                "SELECT part, postings FROM audit_postings WHERE bucket = ? AND part >= ? AND part < ? ORDER BY part",
            )
            .bind(bucket(key))
            .bind(part)
            .bind(part.saturating_add(PARTS_PER_READ).min(parts_end))
            .fetch_all(pool)
            .await?;
            part = part.saturating_add(PARTS_PER_READ);
            for row in rows {
                let blob: &[u8] = row.try_get(1)?;
                let mut seqs = seqs_in(blob, key);
                seqs.retain(|s| *s > f.after_seq);
                let candidates = match seqs.as_slice() {
                    [] => continue,
                    [first, .., last] if seqs.len() > MAX_LISTED => Candidates::Range(*first, *last),
                    listed => Candidates::Listed(listed),
                };
                let want = AuditFilter { limit: u32::try_from(limit - found.len()).unwrap_or(u32::MAX), ..f.clone() };
                found.extend(fetch(pool, &want, f.after_seq, candidates).await?);
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
    }
    let rest = AuditFilter { limit: u32::try_from(limit - found.len()).unwrap_or(u32::MAX), ..f.clone() };
    found.extend(fetch(pool, &rest, f.after_seq.max(upto), Candidates::All).await?);
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    #[test]
    fn keys_are_stable_and_field_scoped() {
        // Stored data: a change here would orphan every posting written.
        assert_eq!(key(Field::Actor, "alice"), key(Field::Actor, "alice"));
        assert_ne!(key(Field::Actor, "alice"), key(Field::Token, "alice"));
        let d = Sha256::digest([2u8, b'a', b'l', b'i', b'c', b'e']);
        assert_eq!(key(Field::Actor, "alice").to_be_bytes().as_slice(), &d[..8]);
    }

    #[test]
    fn seqs_are_found_by_binary_search() {
        let mut blob = Vec::new();
        for (k, s) in [(1u64, 5u64), (7, 1), (7, 9), (7, 12), (9, 2)] {
            blob.extend_from_slice(&k.to_be_bytes());
            blob.extend_from_slice(&s.to_be_bytes());
        }
        assert_eq!(seqs_in(&blob, 7), vec![1, 9, 12]);
        assert_eq!(seqs_in(&blob, 1), vec![5]);
        assert!(seqs_in(&blob, 8).is_empty());
        assert!(seqs_in(&blob, 10).is_empty());
    }
}
