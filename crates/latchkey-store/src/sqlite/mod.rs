//! The SQLite store (`SqliteStore`): the embedded default for one node (`docs/ARCHITECTURE.md`,
//! Conventions 9).
//!
//! WAL journal, every commit flushed before it is answered — the commits that wait together
//! share one flush (but a login attempt's claim is flushed by the synced write that settles it:
//! `writer::Durability`), foreign keys on, a busy timeout, one writer
//! connection whose transactions open with `BEGIN IMMEDIATE` (so read-then-write never fails on
//! a stale snapshot) on a thread of its own (`writer.rs`), point reads inline on read-only
//! connections and scans (lists, counts) on the blocking pool (`readers.rs`; the session check
//! through `cache.rs`). Opening creates the file readable by its owner only and applies the
//! migrations. Other processes (the CLI beside a running server) share the file through
//! SQLite's own locking.

mod cache;
pub(crate) mod exec;
mod logins;
#[cfg(test)]
mod query_plans;
pub(crate) mod readers;
pub(crate) mod special;

pub(crate) mod writer;

use std::{path::Path, str::FromStr, time::Duration};

use exec::lite_err;
use latchkey_service::store::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write (`writer.rs`).
    pub(crate) writer: std::sync::Arc<writer::Writer>,
    /// The database file.
    path: std::sync::Arc<Path>,
    /// Every read (`readers.rs`): point reads inline, scans on the blocking pool.
    pub(crate) fast: std::sync::Arc<readers::FastReads>,
}

impl SqliteStore {
    /// Open (creating the file if missing) the database at `url` (`sqlite://path` or a path)
    /// and apply pending migrations.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_path(&Self::path_of(url)?).await
    }

    /// The file a `sqlite://PATH` URL (or a bare path) names.
    pub fn path_of(url: &str) -> Result<std::path::PathBuf, OpenError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty()
            || path.contains('?')
            || (path.contains("://") && !url.starts_with("sqlite:"))
        {
            return Err(OpenError::BadUrl(url.to_owned()));
        }
        Ok(std::path::PathBuf::from(path))
    }

    pub async fn open_path(path: &Path) -> Result<Self, OpenError> {
        let unreachable =
            |e: &dyn std::fmt::Display| OpenError::Unreachable(format!("{}: {e}", path.display()));
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(OpenError::Unreachable(format!(
                "the directory {} does not exist",
                dir.display()
            )));
        }
        match create_private(path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(unreachable(&e)),
            _ => {}
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| OpenError::Unreachable(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // sqlx applies the migrations (and puts the file in WAL mode, which is a property of
        // the file); then the writer thread takes over.
        let migrator = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options.clone())
            .await
            .map_err(|e| unreachable(&e))?;
        let migrated = MIGRATOR.run(&migrator).await;
        migrator.close().await;
        migrated.map_err(|e| OpenError::Migration(e.to_string()))?;
        let writer = writer::Writer::open(path).map_err(|e| unreachable(&e))?;
        Ok(Self {
            writer: std::sync::Arc::new(writer),
            path: std::sync::Arc::from(path),
            fast: std::sync::Arc::new(readers::FastReads::new(path)),
        })
    }

    /// Run `PRAGMA integrity_check`; `Ok` when SQLite answers `ok`.
    pub async fn integrity_check(&self) -> StoreResult<String> {
        self.fast
            .scan(|c| {
                c.query_row("PRAGMA integrity_check", [], |row| row.get(0))
                    .map_err(lite_err)
            })
            .await
    }

    /// Close the pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.fast.close();
        let writer = std::sync::Arc::clone(&self.writer);
        // Joins the writer thread once its queued writes are done.
        let _ = tokio::task::spawn_blocking(move || writer.close()).await;
    }
}

/// Create a new, empty file readable by its owner only (the database holds password hashes
/// and sealed secrets; SQLite gives its `-wal` and `-shm` files the same mode). An existing
/// file is never changed: the error says it exists (`ErrorKind::AlreadyExists`).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

/// Why the database could not be opened. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "`{0}` is not a database URL this version understands: it stores data in SQLite; use sqlite://PATH (for example sqlite://latchkey.db)"
    )]
    BadUrl(String),
    #[error("cannot open the database: {0}")]
    Unreachable(String),
    #[error("cannot apply the database migrations: {0}")]
    Migration(String),
}

#[cfg(test)]
mod tests {
    use latchkey_core::model::{EnvSlug, LockoutSettings};
    use latchkey_service::store::{Claim, CounterKey, CounterKind, Failure, LoginStore};

    use super::{SqliteStore, writer::Durability};

    /// A claim commits without waiting for the disk; every write that settles it (the verdict,
    /// a reset) commits synced, and so flushes the claim with it before anything is answered.
    #[tokio::test]
    async fn a_claim_is_flushed_by_the_synced_write_that_settles_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("latchkey.db");
        let store = SqliteStore::open_path(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rusqlite::Connection::open(&path)
            .and_then(|c| {
                c.execute_batch(
                    "INSERT INTO environments (slug, name, mfa_policy, session_max_age, created_at, updated_at)
                         VALUES ('shop', 'Shop', 'optional', 86400, 1, 1)",
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let key = CounterKey {
            env: EnvSlug::parse("shop").unwrap_or_else(|e| panic!("{e}")),
            kind: CounterKind::Password,
            subject: "dan@example.com".into(),
        };
        let settings = LockoutSettings::default();
        let claim = store
            .claim_attempt(&key, &settings, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(claim, Claim::Allowed { attempt: 1, .. }));
        assert_eq!(store.writer.last_commit(), Some(Durability::WithNextSync));
        store
            .record_failure(&Failure::new(
                &key,
                claim,
                &settings,
                None,
                Some("192.0.2.1"),
                100,
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.writer.last_commit(), Some(Durability::Synced));
        store
            .claim_attempt(&key, &settings, 101)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .reset_counter(&key)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.writer.last_commit(), Some(Durability::Synced));
        store.close().await;
    }
}
