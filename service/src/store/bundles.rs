//! Policy bundle activations, newest last, and the store versions several
//! instances compare to pick up each other's changes.

use std::collections::BTreeMap;

use warrant_engine::Timestamp;

use super::error::{StoreError, timestamp_of};
use super::open::Store;

/// A bundle that was activated, as recorded.
#[derive(Debug, Clone)]
pub struct StoredBundle {
    /// Row id: increases with every activation (0 before recording).
    pub id: i64,
    pub digest: String,
    pub files: BTreeMap<String, String>,
    pub origin: BundleOrigin,
    pub activated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleOrigin {
    /// Read from the policies directory (start or SIGHUP).
    Disk,
    /// Uploaded with `PUT /v1/policies`.
    Api,
}

impl BundleOrigin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Disk => "disk",
            Self::Api => "api",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        match stored {
            "disk" => Ok(Self::Disk),
            "api" => Ok(Self::Api),
            other => Err(StoreError::Corrupt(format!("bundle origin `{other}`"))),
        }
    }
}

/// What changed in the store since a process last looked: the newest
/// bundle activation and the entity-set version. Several processes sharing
/// a database compare these to pick up each other's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreVersions {
    pub bundle: i64,
    pub entities: i64,
}

impl Store {
    /// The most recently activated bundle, if any.
    pub async fn active_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        let row: Option<(i64, String, String, String, String)> = on_backend!(self, b => {
            sqlx::query_as("SELECT id, digest, files, origin, activated_at FROM policy_bundles ORDER BY id DESC LIMIT 1")
                .fetch_optional(b.reader())
                .await?
        });
        let Some((id, digest, files, origin, activated_at)) = row else { return Ok(None) };
        Ok(Some(StoredBundle {
            id,
            digest,
            files: serde_json::from_str(&files).map_err(|e| StoreError::Corrupt(format!("bundle files: {e}")))?,
            origin: BundleOrigin::parse(&origin)?,
            activated_at: timestamp_of(&activated_at, "activated_at")?,
        }))
    }

    /// The current store versions (see [`StoreVersions`]).
    pub async fn versions(&self) -> Result<StoreVersions, StoreError> {
        let (bundle, entities): (Option<i64>, i64) = on_backend!(self, b => {
            sqlx::query_as(
                "SELECT (SELECT MAX(id) FROM policy_bundles), \
                 (SELECT version FROM store_versions WHERE name = 'entities')",
            )
            .fetch_one(b.reader())
            .await?
        });
        Ok(StoreVersions { bundle: bundle.unwrap_or(0), entities })
    }

    /// Records that `bundle` became active; returns its row id.
    pub async fn record_bundle(&self, bundle: &StoredBundle) -> Result<i64, StoreError> {
        let files = serde_json::to_string(&bundle.files).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id: i64 = on_backend!(self, b => {
            sqlx::query_scalar(
                "INSERT INTO policy_bundles (digest, files, origin, activated_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(&bundle.digest)
            .bind(&files)
            .bind(bundle.origin.as_str())
            .bind(bundle.activated_at.to_string())
            .fetch_one(b.writer())
            .await?
        });
        Ok(id)
    }
}
