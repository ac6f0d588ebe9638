//! `AnyStore`: the backend chosen at start-up from the database URL (`sqlite://…` or
//! `postgres://…`), so the binary and the web layer are built once, over one store type.
//! Its methods (`stores.rs`) forward to the backend and record how long each took (`/metrics`'
//! store latency histograms, one per operation); on PostgreSQL they run an operation again
//! after a transient failure where that is safe (`retry.rs`). Nothing here has rules of its own.

use std::sync::Arc;

use latchkey_service::metrics::StoreLatency;

use crate::{PgStore, SqliteStore, sqlite::OpenError};

/// One of the backends, and the latency of its operations.
#[derive(Debug, Clone)]
pub struct AnyStore {
    pub(crate) backend: Backend,
    pub(crate) latency: Arc<StoreLatency>,
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(Box<SqliteStore>),
    Postgres(PgStore),
}

impl AnyStore {
    /// Open the database a URL names: `postgres://` or `postgresql://` selects PostgreSQL,
    /// anything else is read as `sqlite://PATH` (or a bare path).
    pub async fn open(url: &str, pg_connections: u32) -> Result<Self, OpenError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(PgStore::open(url, pg_connections).await?)
        } else {
            Backend::Sqlite(Box::new(SqliteStore::open(url).await?))
        };
        Ok(Self {
            backend,
            latency: Arc::default(),
        })
    }

    /// Whether this is the embedded SQLite database (a file beside the process).
    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }
}
