//! [`Store`]: the backend a database URL names, opened and migrated. Each
//! operation is an `impl Store` block in the file named after what it stores.

use super::error::StoreError;
use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// The service's store.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, true).await
    }

    /// Opens an existing database (offline tools must not create one).
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, false).await
    }

    async fn connect(url: &str, create: bool) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::open(url, create).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, b => {
            sqlx::query("SELECT 1").execute(b.reader()).await?;
        });
        Ok(())
    }
}
