//! The log's tree, stored as C2SP hash tiles (`audit_tiles`: one row per
//! tile, its hashes concatenated; a partial tile's row grows until it is
//! full). Tiles are written by the transaction that stores the records they
//! cover (`write.rs`, and SQLite's append after a remembered head), so the
//! tree and the log never disagree, and proofs, roots and served tiles read
//! O(log n) rows instead of every leaf.
//!
//! A writer keeps only the tree's right edge in memory ([`TreeCache`], at
//! most 255 hashes a level); when another writer appended meanwhile, it
//! rebuilds the edge from the stored rightmost tiles. Records stored before
//! tiles existed (an upgrade), or by a writer that did not keep them, are
//! caught up from the records under the chain's lock ([`Store::audit_tiles_catch_up`]).

use std::collections::HashMap;

use warrant_engine::audit::tiles::plan;
use warrant_engine::audit::{Hash, TileEdge, TileId, TileReader, TileSource};

use super::error::{StoreError, u64_of};
use super::open::Store;
use super::tree::{CATCH_UP_PAGE, TILES_PER_SELECT, TREE_SIZE, TreeCache, edge_at, select, size_of, tiles_of, upsert};

impl Store {
    /// The tiles `ids` as stored (a partial tile: the hashes it has so far);
    /// a tile not stored is absent from the answer.
    pub async fn audit_tiles(&self, ids: &[TileId]) -> Result<HashMap<TileId, Vec<Hash>>, StoreError> {
        let mut tiles = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(TILES_PER_SELECT) {
            on_backend!(self, b => {
                let rows: Vec<_> = select(chunk).build().fetch_all(b.reader()).await?;
                tiles.extend(tiles_of(&rows)?);
            });
        }
        Ok(tiles)
    }

    /// Answers `question` about the tree of `size` leaves (at most what the
    /// tiles cover) from the stored tiles: the tiles it needs, read in one
    /// query (O(log size) of them), never every leaf.
    pub async fn audit_tree<R>(
        &self,
        size: u64,
        question: impl Fn(&TileReader<'_, dyn TileSource + '_>) -> R,
    ) -> Result<R, StoreError> {
        let tiles = self.audit_tiles(&plan(size, &question)).await?;
        Ok(question(&TileReader::new(&tiles as &dyn TileSource, size)))
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
                if size > head {
                    // Records the tree covers are gone: the log was cut.
                    // Keep the tree as it was (appends fail on it, closed)
                    // and let verification name the first missing record.
                    tracing::error!(tree_size = size, log_size = head,
                        "the tree's tiles cover records the log no longer holds; run `warrant audit verify`");
                    let ids: Vec<TileId> = TileEdge::tiles_at(size).into_iter().map(|(id, _)| id).collect();
                    let rows: Vec<_> = select(&ids).build().fetch_all(&mut *tx).await?;
                    return TileEdge::from_tiles(size, &tiles_of(&rows)?).map_err(StoreError::corrupt);
                }
                let target = head.min(size + u64::from(CATCH_UP_PAGE));
                let (edge, changed) = edge_at(&mut *tx, &TreeCache::default(), target).await?;
                if let Some(mut q) = upsert(&changed) {
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                if !changed.is_empty() {
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
