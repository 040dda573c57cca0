//! The tree's stored tiles inside a write transaction (`write.rs`, and
//! SQLite's append after a remembered head): the right edge a writer keeps
//! ([`TreeCache`]), rebuilding it from the stored tiles when another writer
//! appended, catching up on records the tiles do not cover, and writing the
//! tiles an append changed. The reads outside a transaction are `tiles.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};
use warrant_engine::audit::{Hash, Mac, TileEdge, TileId};

use super::error::{StoreError, i64_of, u64_of};
use super::records::stored_of;
use super::sealing::leaf_of;

/// What a write reads once it holds the chain's lock (each backend's
/// `take_turn`, called by `write.rs`): the head its records seal after,
/// the tree's right edge at that head, and the tiles a catch-up changed on
/// the way (written with the records, by the backend's `store_sealed`).
pub(super) struct Turn {
    pub head: (u64, Mac),
    pub edge: TileEdge,
    pub changed: BTreeMap<TileId, Vec<Hash>>,
}

/// Records whose leaves one catch-up transaction adds, at most (it holds
/// the chain's lock: appends wait for it).
pub(super) const CATCH_UP_PAGE: u32 = 16_384;

/// Tiles per read statement (two bound parameters each).
pub(super) const TILES_PER_SELECT: usize = 256;

/// The right edge of the tree as this handle last committed it, so the next
/// append need not read it back (`None`: read it from the tiles).
#[derive(Debug, Default)]
pub struct TreeCache {
    edge: Mutex<Option<TileEdge>>,
    /// The edge after the last commit, for readers (cloned out).
    last: Mutex<Option<TileEdge>>,
    /// Full tiles above level 0, as read: they never change, every proof
    /// reads a few of them, and there are few (one per 65,536 records).
    upper: Mutex<HashMap<TileId, Vec<Hash>>>,
}

/// Full upper tiles kept at most (8 MiB; a log of 256M records has 1,024).
const UPPER_TILES: usize = 1024;

impl TreeCache {
    /// Takes the edge if it is at `size` (the head an append seals after).
    pub(super) fn take_at(&self, size: u64) -> Option<TileEdge> {
        let mut edge = self.edge.lock().ok()?;
        edge.take_if(|e| e.size() == size)
    }

    /// After a commit: the edge as stored now.
    pub(super) fn set(&self, edge: TileEdge) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(edge.clone());
        }
        if let Ok(mut e) = self.edge.lock() {
            *e = Some(edge);
        }
    }

    pub(super) fn last(&self) -> Option<TileEdge> {
        self.last.lock().ok()?.clone()
    }

    /// The full upper tiles of `ids` kept here.
    pub(super) fn upper(&self, ids: &[TileId]) -> HashMap<TileId, Vec<Hash>> {
        let Ok(upper) = self.upper.lock() else { return HashMap::new() };
        ids.iter().filter_map(|id| Some((*id, upper.get(id)?.clone()))).collect()
    }

    /// Keeps the full upper tiles of `tiles` (until the cache is full).
    pub(super) fn keep_upper(&self, tiles: &HashMap<TileId, Vec<Hash>>) {
        let Ok(mut upper) = self.upper.lock() else { return };
        for (id, hashes) in tiles {
            if id.level > 0 && hashes.len() == 256 && upper.len() < UPPER_TILES {
                upper.insert(*id, hashes.clone());
            }
        }
    }
}

/// A stored tile's hashes: 1 to 256 whole hashes, or the row is damaged.
pub(super) fn hashes_of(id: TileId, bytes: &[u8]) -> Result<Vec<Hash>, StoreError> {
    let (hashes, rest) = bytes.as_chunks::<32>();
    if !rest.is_empty() || hashes.is_empty() || hashes.len() > 256 {
        return Err(StoreError::corrupt(format!("tile {}/{} holds {} bytes", id.level, id.index, bytes.len())));
    }
    Ok(hashes.to_vec())
}

pub(super) fn id_of(level: i64, index: i64) -> Result<TileId, StoreError> {
    let level = u8::try_from(level).map_err(|_| StoreError::corrupt(format!("tile level {level}")))?;
    Ok(TileId { level, index: u64_of(index, "audit_tiles.idx")? })
}

/// `SELECT level, idx, hashes` of `ids` (at most [`TILES_PER_SELECT`]).
pub(super) fn select<DB>(ids: &[TileId]) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("SELECT level, idx, hashes FROM audit_tiles WHERE ");
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            q.push(" OR ");
        }
        q.push("(level = ").push_bind(i64::from(id.level)).push(" AND idx = ").push_bind(i64_of(id.index)).push(")");
    }
    q
}

/// The rows `select` read, by id.
pub(super) fn tiles_of<R>(rows: &[R]) -> Result<HashMap<TileId, Vec<Hash>>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut tiles = HashMap::with_capacity(rows.len());
    for row in rows {
        let id = id_of(row.try_get(0)?, row.try_get(1)?)?;
        let bytes: Vec<u8> = row.try_get(2)?;
        tiles.insert(id, hashes_of(id, &bytes)?);
    }
    Ok(tiles)
}

/// Whether a changed tile is stored. On SQLite, level 0's partial tile is
/// not: it is the leaves of the last records after a full tile (at most
/// 255), which a reader recomputes from the records or a writer's edge, so
/// an append that completes no tile writes only its records (one
/// statement). With `partial_leaves` (PostgreSQL) it is: instances sharing
/// a database take turns appending, and each turn would otherwise rebuild
/// the edge by reading and rehashing up to 255 of the other's records
/// under the chain's lock.
pub(super) fn is_stored(id: &TileId, hashes: &[Hash], partial_leaves: bool) -> bool {
    id.level > 0 || hashes.len() == 256 || partial_leaves
}

/// Writes the stored ones of `changed` (see [`is_stored`]) over what is
/// stored under each id (a grown partial tile replaces its shorter self);
/// `None` if there are none.
pub(super) fn upsert<DB>(changed: &BTreeMap<TileId, Vec<Hash>>, partial_leaves: bool) -> Option<QueryBuilder<DB>>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("");
    push_upsert(&mut q, changed, partial_leaves).then_some(q)
}

/// Appends the statement [`upsert`] builds to `q`; `false` (and nothing
/// appended) if no changed tile is stored.
pub(super) fn push_upsert<DB>(
    q: &mut QueryBuilder<DB>,
    changed: &BTreeMap<TileId, Vec<Hash>>,
    partial_leaves: bool,
) -> bool
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    let stored: Vec<(&TileId, &Vec<Hash>)> =
        changed.iter().filter(|(id, h)| is_stored(id, h, partial_leaves)).collect();
    if stored.is_empty() {
        return false;
    }
    q.push("INSERT INTO audit_tiles (level, idx, hashes) ");
    q.push_values(stored, |mut row, (id, hashes)| {
        row.push_bind(i64::from(id.level)).push_bind(i64_of(id.index)).push_bind(hashes.concat());
    });
    q.push(" ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes");
    true
}

/// How many leaves the stored tiles cover: level 0's last tile says it.
pub(super) const TREE_SIZE: &str =
    "SELECT idx, CAST(length(hashes) AS BIGINT) FROM audit_tiles WHERE level = 0 ORDER BY idx DESC LIMIT 1";

pub(super) fn size_of(row: Option<(i64, i64)>) -> Result<u64, StoreError> {
    let Some((index, bytes)) = row else { return Ok(0) };
    Ok(u64_of(index, "audit_tiles.idx")? * 256 + u64_of(bytes, "audit_tiles.hashes")? / 32)
}

/// Inside a write transaction holding the chain's lock: the right edge of
/// the tree over the `head` records stored, from the cache when it is at
/// `head`, else from the stored tiles, catching up on records the tiles do
/// not cover yet (their tiles land with this transaction's).
pub(super) async fn edge_at<DB, C>(
    conn: &mut C,
    cache: &TreeCache,
    head: u64,
) -> Result<(TileEdge, BTreeMap<TileId, Vec<Hash>>), StoreError>
where
    DB: Database,
    C: Send,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> DB::Arguments: IntoArguments<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Decode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Decode<'t, DB>,
    (i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    if let Some(edge) = cache.take_at(head) {
        return Ok((edge, BTreeMap::new()));
    }
    let row: Option<(i64, i64)> = sqlx::query_as(TREE_SIZE).fetch_optional(&mut *conn).await?;
    let size = size_of(row)?;
    if size > head {
        return Err(StoreError::corrupt(format!("the tiles cover {size} records, the log has {head}")));
    }
    let ids: Vec<TileId> = TileEdge::tiles_at(size).into_iter().map(|(id, _)| id).collect();
    let rows = if ids.is_empty() { Vec::new() } else { select::<DB>(&ids).build().fetch_all(&mut *conn).await? };
    let mut edge = TileEdge::from_tiles(size, &tiles_of(&rows)?).map_err(StoreError::corrupt)?;
    let changed = catch_up(conn, &mut edge, head).await?;
    Ok((edge, changed))
}

/// Inside a write transaction holding the chain's lock: grows `edge` (built
/// from the stored tiles) to the `head` records stored, from the records
/// the tiles do not cover yet; returns the tiles that changed, for the
/// transaction to write with its own.
pub(super) async fn catch_up<DB, C>(
    conn: &mut C,
    edge: &mut TileEdge,
    head: u64,
) -> Result<BTreeMap<TileId, Vec<Hash>>, StoreError>
where
    DB: Database,
    C: Send,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> DB::Arguments: IntoArguments<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Decode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    if edge.size() > head {
        return Err(StoreError::corrupt(format!("the tiles cover {} records, the log has {head}", edge.size())));
    }
    let mut changed = BTreeMap::new();
    while edge.size() < head {
        let rows = sqlx::query(super::records::RANGE)
            .bind(i64_of(edge.size() + 1))
            .bind(i64_of(head))
            .bind(i64::from(CATCH_UP_PAGE))
            .fetch_all(&mut *conn)
            .await?;
        let canonical_since = canonical_since(&mut *conn).await?;
        let mut leaves = Vec::with_capacity(rows.len());
        for (row, want) in rows.iter().zip(edge.size() + 1..) {
            let stored = stored_of(row)?;
            if stored.seq != want {
                return Err(StoreError::corrupt(format!("expected record {want}, read {}", stored.seq)));
            }
            leaves.push(leaf_of(&stored, canonical_since));
        }
        if leaves.is_empty() {
            return Err(StoreError::corrupt(format!("record {} is missing", edge.size() + 1)));
        }
        changed.extend(edge.append(leaves));
    }
    Ok(changed)
}

async fn canonical_since<DB, C>(conn: &mut C) -> Result<u64, StoreError>
where
    DB: Database,
    C: Send,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> DB::Arguments: IntoArguments<DB>,
    for<'t> i64: Decode<'t, DB> + Type<DB>,
    (Option<i64>,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let (seq,): (Option<i64>,) =
        sqlx::query_as("SELECT MIN(seq) FROM audit_canonical_since").fetch_one(&mut *conn).await?;
    seq.map_or(Ok(0), |s| u64_of(s, "audit_canonical_since.seq"))
}
