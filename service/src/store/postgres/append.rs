//! PostgreSQL's turn on the audit chain, in two round trips while it holds
//! the chain's lock (then COMMIT). Instances sharing a database take turns
//! on that lock, so every round trip made while holding it is time all
//! the others wait: the turn is the rate of the whole deployment.
//!
//! - [`take_turn`]: one call to `warrant_audit_turn` (migration
//!   0013) takes the lock and reads the head and the tree's stored right
//!   edge. Apart, the lock, the head, the tiles' size and the tiles were
//!   four round trips.
//! - [`store_sealed`]: the records and the tiles they change in
//!   one statement, each table's rows bound as arrays (`unnest`). One
//!   statement text for every batch size, so PostgreSQL parses it once
//!   per connection; a multi-row `VALUES` differs with each batch's size
//!   and was parsed (a round trip of its own) at every commit.

use std::collections::{BTreeMap, HashMap};

use sqlx::postgres::PgConnection;
use warrant_engine::audit::{Hash, TileEdge, TileId};

use crate::store::error::{StoreError, i64_of, u64_of};
use crate::store::records::head_of;
use crate::store::sealing::{NewRow, outcome_str};
use crate::store::tree::{self, TreeCache, Turn, catch_up};

/// The advisory-lock key of the audit chain (any constant unique to it).
pub(super) const CHAIN_LOCK: i64 = 0x7761_7272_616e_7401;

/// The head, the size level 0's stored tiles cover, and the partial tile of
/// each level at that size (levels, indexes and hashes, in step).
type TurnRow = (Option<i64>, Option<String>, i64, Vec<i64>, Vec<i64>, Vec<Vec<u8>>);

/// Records (`$1`, `$3`–`$12`, `$14`, `$15` arrays in step; `$2` the batch's
/// timestamp, `$13` its key id) and tiles (`$16`–`$18`), in seq order so
/// each record follows the head as the schema's trigger checks.
const STORE_SEALED: &str = "\
WITH records AS (
  INSERT INTO audit_records (seq, ts, kind, actor, token_id, token_owner, connection, project, decision,
                             reasons, policy_digest, details, key_id, prev_mac, mac)
  SELECT r.seq, $2, r.kind, r.actor, r.token_id, r.token_owner, r.connection, r.project, r.decision,
         r.reasons, r.policy_digest, r.details, $13, r.prev_mac, r.mac
  FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::text[], $10::text[], $11::text[], $12::text[], $14::text[], $15::text[])
       AS r(seq, kind, actor, token_id, token_owner, connection, project, decision, reasons,
            policy_digest, details, prev_mac, mac)
  ORDER BY r.seq
), tiles AS (
  INSERT INTO audit_tiles (level, idx, hashes)
  SELECT * FROM unnest($16::bigint[], $17::bigint[], $18::bytea[])
  ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes
)
SELECT 1";

/// Takes the chain's lock and reads the head and the tree's edge at it:
/// from `cache` (this instance's) when it appended last, else from the
/// stored tiles read in the same round trip (and the records they do
/// not cover yet, after an upgrade).
pub(super) async fn take_turn(tx: &mut PgConnection, cache: &TreeCache) -> Result<Turn, StoreError> {
    let (seq, mac, size, levels, indexes, hashes): TurnRow =
        sqlx::query_as("SELECT * FROM warrant_audit_turn($1)").bind(CHAIN_LOCK).fetch_one(&mut *tx).await?;
    let head = head_of(seq.zip(mac))?;
    if let Some(edge) = cache.take_at(head.0) {
        return Ok(Turn { head, edge, changed: BTreeMap::new() });
    }
    let mut tiles = HashMap::with_capacity(levels.len());
    for ((level, index), bytes) in levels.into_iter().zip(indexes).zip(&hashes) {
        let id = tree::id_of(level, index)?;
        tiles.insert(id, tree::hashes_of(id, bytes)?);
    }
    let size = u64_of(size, "audit_tiles.hashes")?;
    // (Tiles covering more than the log are refused by `catch_up`.)
    let mut edge = TileEdge::from_tiles(size, &tiles).map_err(StoreError::corrupt)?;
    let changed = catch_up(&mut *tx, &mut edge, head.0).await?;
    Ok(Turn { head, edge, changed })
}

/// Inserts sealed records and writes the tiles they changed (every one:
/// level 0's partial tile too, `tree::is_stored`), in one statement.
pub(super) async fn store_sealed(
    tx: &mut PgConnection,
    rows: Vec<NewRow<'_>>,
    changed: &BTreeMap<TileId, Vec<Hash>>,
) -> Result<(), StoreError> {
    // (No rows, when every record of a batch failed to seal: the tiles a
    // catch-up changed are written all the same.)
    let (ts, key_id) = rows.first().map(|r| (r.ts.clone(), r.key_id.clone())).unwrap_or_default();
    if rows.iter().any(|r| r.ts != ts || r.key_id != key_id) {
        // One sealing stamps one time and key on every row.
        return Err(StoreError::corrupt("a batch of records with several timestamps or keys"));
    }
    let mut tile_levels = Vec::with_capacity(changed.len());
    let mut tile_indexes = Vec::with_capacity(changed.len());
    let mut tile_hashes = Vec::with_capacity(changed.len());
    for (id, hashes) in changed {
        tile_levels.push(i64::from(id.level));
        tile_indexes.push(i64_of(id.index));
        tile_hashes.push(hashes.concat());
    }
    sqlx::query(STORE_SEALED)
        .bind(rows.iter().map(|r| i64_of(r.seq)).collect::<Vec<i64>>())
        .bind(&*ts)
        .bind(texts(&rows, |r| &r.columns.kind))
        .bind(texts(&rows, |r| &r.columns.actor))
        .bind(optional_texts(&rows, |r| r.columns.token_id.as_deref()))
        .bind(optional_texts(&rows, |r| r.columns.token_owner.as_deref()))
        .bind(optional_texts(&rows, |r| r.columns.connection.as_deref()))
        .bind(optional_texts(&rows, |r| r.columns.project.as_deref()))
        .bind(optional_texts(&rows, |r| r.columns.decision.map(outcome_str)))
        .bind(optional_texts(&rows, |r| r.columns.reasons.as_deref()))
        .bind(optional_texts(&rows, |r| r.columns.policy_digest.as_deref()))
        .bind(texts(&rows, |r| &r.columns.details))
        .bind(&*key_id)
        .bind(texts(&rows, |r| &r.prev_mac))
        .bind(texts(&rows, |r| &r.mac))
        .bind(tile_levels)
        .bind(tile_indexes)
        .bind(tile_hashes)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One text column of `rows`, as an array to bind.
fn texts<'r, 'x: 'r>(rows: &'r [NewRow<'x>], column: impl Fn(&'r NewRow<'x>) -> &'r str) -> Vec<&'r str> {
    rows.iter().map(column).collect()
}

/// One nullable text column of `rows`, as an array to bind.
fn optional_texts<'r, 'x: 'r>(
    rows: &'r [NewRow<'x>],
    column: impl Fn(&'r NewRow<'x>) -> Option<&'r str>,
) -> Vec<Option<&'r str>> {
    rows.iter().map(column).collect()
}
