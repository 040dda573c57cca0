//! The log's tree, stored as C2SP hash tiles (`audit_tiles`: one row per
//! tile, its hashes concatenated; a partial tile's row grows until it is
//! full). Tiles are written by the transaction that stores the records that
//! complete or grow them (`tree.rs`), so the tree and the log never
//! disagree, and proofs, roots and served tiles read O(log n) rows instead
//! of every leaf.
//!
//! On SQLite, level 0's partial tile is the one not stored: it is the
//! leaves of the records after the last full tile (at most 255), which
//! readers take from the writer's edge or recompute from those records. So
//! a group commit that completes no tile writes its records alone, as
//! before tiles existed (one statement), and one in 256 records or so also
//! writes tiles. On PostgreSQL it is stored too (`tree::is_stored`): there
//! every commit is a transaction anyway, and instances taking turns read
//! it rather than rehash each other's records.
//!
//! A writer keeps only the tree's right edge in memory ([`TreeCache`], at
//! most 255 hashes a level); when another writer appended meanwhile, it
//! rebuilds the edge from the stored rightmost tiles and the records after
//! them. Records stored before tiles existed (an upgrade) are caught up
//! from the records under the chain's lock ([`Store::audit_tiles_catch_up`]).

use std::collections::HashMap;

use warrant_engine::audit::tiles::{Layered, TILE_WIDTH, plan};
use warrant_engine::audit::{Hash, TileEdge, TileId, TileReader, TileSource};

use super::error::{StoreError, u64_of};
use super::open::Store;
use super::tree::{CATCH_UP_PAGE, TILES_PER_SELECT, TREE_SIZE, TreeCache, edge_at, select, size_of, tiles_of, upsert};

impl Store {
    /// The tiles `ids` as stored (a partial tile: the hashes it has so far);
    /// a tile not stored is absent from the answer.
    pub async fn audit_tiles(&self, ids: &[TileId]) -> Result<HashMap<TileId, Vec<Hash>>, StoreError> {
        let mut tiles = on_backend!(self, b => b.tree().upper(ids));
        let missing: Vec<TileId> = ids.iter().filter(|id| !tiles.contains_key(id)).copied().collect();
        for chunk in missing.chunks(TILES_PER_SELECT) {
            on_backend!(self, b => {
                let rows: Vec<_> = select(chunk).build().fetch_all(b.reader()).await?;
                let read = tiles_of(&rows)?;
                b.tree().keep_upper(&read);
                tiles.extend(read);
            });
        }
        Ok(tiles)
    }

    /// Answers `question` about the tree of `size` leaves (at most the
    /// log's) from the tiles it needs, read in one query (O(log size) of
    /// them), never every leaf. Level 0's partial tile, which is not stored,
    /// comes from `edge` (a writer's) when it holds it, else from the records
    /// (at most 255).
    pub async fn audit_tree<R>(
        &self,
        size: u64,
        edge: Option<&TileEdge>,
        question: impl Fn(&TileReader<'_, dyn TileSource + '_>) -> R,
    ) -> Result<R, StoreError> {
        let ids = plan(size, &question);
        // The edge's tiles are the newest: only the others are read.
        let stored: Vec<TileId> = ids.iter().filter(|id| edge.and_then(|e| e.tile(**id)).is_none()).copied().collect();
        let mut tiles = self.audit_tiles(&stored).await?;
        for id in ids.iter().filter(|id| id.level == 0) {
            let want = size.saturating_sub(id.index * TILE_WIDTH).min(TILE_WIDTH);
            let held = |t: Option<&[Hash]>| t.map_or(0, <[Hash]>::len) as u64;
            if held(tiles.get(id).map(Vec::as_slice)) >= want || held(edge.and_then(|e| e.tile(*id))) >= want {
                continue;
            }
            let limit = u32::try_from(want).unwrap_or(u32::MAX);
            let leaves = self.audit_leaves_after(id.index * TILE_WIDTH, limit).await?;
            tiles.insert(*id, leaves);
        }
        let empty = TileEdge::default();
        let layered = Layered(&tiles, edge.unwrap_or(&empty));
        Ok(question(&TileReader::new(&layered as &dyn TileSource, size)))
    }

    /// How many records the stored tiles cover.
    pub async fn audit_tree_size(&self) -> Result<u64, StoreError> {
        let row: Option<(i64, i64)> =
            on_backend!(self, b => sqlx::query_as(TREE_SIZE).fetch_optional(b.reader()).await?);
        size_of(row)
    }

    /// The tree's right edge as this handle last committed it, if it has.
    pub fn audit_edge(&self) -> Option<TileEdge> {
        on_backend!(self, b => b.tree().last())
    }

    /// Stores the tiles of the records the tiles do not cover yet, a page
    /// of records per transaction (each under the chain's lock, so appends
    /// interleave): after an upgrade, before the writer starts. Returns the
    /// tree's size and edge.
    pub async fn audit_tiles_catch_up(&self) -> Result<TileEdge, StoreError> {
        loop {
            let edge = on_backend!(self, b => {
                let mut tx = b.begin_write().await?;
                b.lock_chain(&mut tx).await?;
                let head: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(seq) FROM audit_records").fetch_one(&mut *tx).await?;
                let head = head.map_or(Ok(0), |h| u64_of(h, "seq"))?;
                let row: Option<(i64, i64)> = sqlx::query_as(TREE_SIZE).fetch_optional(&mut *tx).await?;
                let size = size_of(row)?;
                let target = head.min(size + u64::from(CATCH_UP_PAGE));
                let caught_up = if size > head {
                    Err(format!("the tiles cover {size} records, the log holds {head}: records were removed"))
                } else {
                    match edge_at(&mut *tx, &TreeCache::default(), target).await {
                        Ok(caught_up) => Ok(caught_up),
                        Err(StoreError::Corrupt(why)) => Err(why),
                        Err(e) => return Err(e),
                    }
                };
                let (edge, changed) = match caught_up {
                    Ok(caught_up) => caught_up,
                    Err(why) => {
                        // The log is damaged. Keep the tree as stored (appends
                        // fail on it, closed) and let verification name the
                        // first bad record.
                        tracing::error!(tree_size = size, log_size = head, error = %why,
                            "the audit log is damaged; run `warrant audit verify`");
                        let ids: Vec<TileId> = TileEdge::tiles_at(size).into_iter().map(|(id, _)| id).collect();
                        let rows: Vec<_> = if ids.is_empty() {
                            Vec::new()
                        } else {
                            select(&ids).build().fetch_all(&mut *tx).await?
                        };
                        return TileEdge::from_tiles(size, &tiles_of(&rows)?).map_err(StoreError::corrupt);
                    }
                };
                let wrote = match upsert(&changed, b.stores_partial_leaves()) {
                    Some(mut q) => {
                        q.build().execute(&mut *tx).await?;
                        true
                    }
                    None => false,
                };
                tx.commit().await?;
                if wrote {
                    tracing::info!(tree_size = edge.size(), log_size = head, "audit tiles caught up");
                }
                if edge.size() == head {
                    b.tree().set(edge.clone());
                    return Ok(edge);
                }
                edge
            });
            drop(edge);
        }
    }
}
