//! Witnesses' cosignatures of the log's published checkpoints (`witnessing.rs`
//! submits the checkpoints and keeps what comes back): one verified signature
//! line per witness and checkpoint, append-only like the checkpoints.

use super::error::{StoreError, i64_of, u64_of};
use super::open::Store;

impl Store {
    /// Keeps `witness`'s cosignature `line` of the checkpoint of `tree_size`
    /// (one the witness already gave for that size stays).
    pub async fn save_cosignature(&self, tree_size: u64, witness: &str, line: &str) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query(
                "INSERT INTO audit_log_cosignatures (tree_size, witness, line) VALUES ($1, $2, $3) \
                 ON CONFLICT (tree_size, witness) DO NOTHING",
            )
            .bind(i64_of(tree_size))
            .bind(witness)
            .bind(line)
            .execute(b.writer())
            .await?;
        });
        Ok(())
    }

    /// The cosignature lines kept for the checkpoint of `tree_size`, by witness.
    pub async fn cosignatures(&self, tree_size: u64) -> Result<Vec<String>, StoreError> {
        let lines: Vec<String> = on_backend!(self, b => {
            sqlx::query_scalar("SELECT line FROM audit_log_cosignatures WHERE tree_size = $1 ORDER BY witness")
                .bind(i64_of(tree_size))
                .fetch_all(b.reader())
                .await?
        });
        Ok(lines)
    }

    /// The largest checkpoint size `witness` cosigned, if any: where a
    /// submission to it starts.
    pub async fn last_cosigned(&self, witness: &str) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = on_backend!(self, b => {
            sqlx::query_scalar("SELECT MAX(tree_size) FROM audit_log_cosignatures WHERE witness = $1")
                .bind(witness)
                .fetch_one(b.reader())
                .await?
        });
        size.map(|s| u64_of(s, "audit_log_cosignatures.tree_size")).transpose()
    }

    /// The published checkpoint of `tree_size`, if there is one.
    pub async fn log_checkpoint(&self, tree_size: u64) -> Result<Option<String>, StoreError> {
        let note: Option<String> = on_backend!(self, b => {
            sqlx::query_scalar("SELECT note FROM audit_log_checkpoints WHERE tree_size = $1")
                .bind(i64_of(tree_size))
                .fetch_optional(b.reader())
                .await?
        });
        Ok(note)
    }

    /// The newest published checkpoint with at least `cosigned` witnesses'
    /// cosignatures kept (0: the newest): its size and note.
    pub async fn witnessed_log_checkpoint(&self, cosigned: usize) -> Result<Option<(u64, String)>, StoreError> {
        let row: Option<(i64, String)> = on_backend!(self, b => {
            sqlx::query_as(
                "SELECT c.tree_size, c.note FROM audit_log_checkpoints c WHERE (SELECT COUNT(*) FROM \
                 audit_log_cosignatures s WHERE s.tree_size = c.tree_size) >= $1 ORDER BY c.tree_size DESC LIMIT 1",
            )
            .bind(i64::try_from(cosigned).unwrap_or(i64::MAX))
            .fetch_optional(b.reader())
            .await?
        });
        row.map(|(size, note)| Ok((u64_of(size, "tree_size")?, note))).transpose()
    }
}
