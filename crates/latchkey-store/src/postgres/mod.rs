//! The PostgreSQL store (`PgStore`): any number of stateless nodes on one database
//! (`docs/ARCHITECTURE.md`, "Scaling out"). The same traits and the same meaning as the SQLite
//! store, proven by the same test suite. Every write method is one transaction (READ
//! COMMITTED); a write about a user first locks the user's row (`lock_user`), and what must
//! hold across concurrent requests and nodes is checked by the statement that changes the row
//! (conditional `UPDATE … WHERE`, `INSERT … ON CONFLICT`), whose row locks make a second writer
//! see the first one's result.

pub(crate) mod exec;
pub(crate) mod special;

use std::time::Duration;

use latchkey_service::store::StoreResult;
use sqlx::{PgPool, Postgres, Transaction, postgres::PgPoolOptions};

use crate::{map_err, sqlite::OpenError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL implementation of the storage traits.
#[derive(Debug, Clone)]
pub struct PgStore {
    writer: PgPool,
    /// The same pool as `writer`: PostgreSQL serves readers and writers alike.
    readers: PgPool,
}

impl PgStore {
    /// Connect to `postgres://…` and apply pending migrations (under PostgreSQL's advisory
    /// lock, so nodes starting together do not race).
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, OpenError> {
        // One direct connection first: its error says what is wrong (refused, unknown host,
        // authentication), where the pool would only say it timed out.
        let first = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .map_err(|e| OpenError::Unreachable(redact(url, &e.to_string())))?;
        let _ = sqlx::Connection::close(first).await;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            // A request waits at most this for a connection, then answers 503: when the database
            // is gone, clients hear so within 2 s instead of waiting on reconnects.
            .acquire_timeout(Duration::from_millis(1500))
            .connect(url)
            .await
            .map_err(|e| OpenError::Unreachable(redact(url, &e.to_string())))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| OpenError::Migration(e.to_string()))?;
        Ok(Self {
            writer: pool.clone(),
            readers: pool,
        })
    }

    /// A connection for reads.
    pub(crate) async fn read(&self) -> StoreResult<sqlx::pool::PoolConnection<Postgres>> {
        self.readers.acquire().await.map_err(map_err)
    }

    /// A write transaction.
    pub(crate) async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.writer.begin().await.map_err(map_err)
    }

    pub async fn close(&self) {
        self.writer.close().await;
    }
}

/// Keep a password in the URL out of error messages.
fn redact(url: &str, message: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(cred, _)| cred)
    {
        Some(cred) if cred.contains(':') => message.replace(cred, "[credentials]"),
        _ => message.to_owned(),
    }
}
