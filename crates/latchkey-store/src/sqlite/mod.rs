//! The SQLite store (`SqliteStore`): the embedded default for one node (`docs/ARCHITECTURE.md`,
//! Conventions 9).
//!
//! WAL journal, `synchronous=FULL` (but for a login attempt's claim, flushed by the synced
//! write that settles it: `writer::Durability`), foreign keys on, a busy timeout, one writer
//! connection whose transactions open with `BEGIN IMMEDIATE` (so read-then-write never fails on
//! a stale snapshot) on a thread of its own (`writer.rs`), point reads inline on read-only
//! connections (`readers.rs`; the session check through `cache.rs`), and sqlx's pool of readers
//! for lists and counts. Opening creates the file readable by its owner only and applies the
//! migrations. Other processes (the CLI beside a running server) share the file through
//! SQLite's own locking.

mod audit;
mod auth;
mod authenticators;
mod cache;
mod exec;
mod logins;
pub mod manage;
#[cfg(test)]
mod query_plans;
mod readers;
mod statements;
mod writer;

use std::{path::Path, str::FromStr, time::Duration};

use latchkey_core::model::{EnvSlug, Environment, User};
use latchkey_service::{
    AuditRecord,
    store::{
        AdminStore, AuditQuery, AuthenticatorRecord, KeyCheck, NewAuthenticator, NewSetupToken,
        NewUser, StoreResult, UserQuery,
    },
};
use sqlx::{
    Connection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use crate::{map_err, sql, sql::run_now};
use exec::Lite;
use statements::lite_err;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write (`writer.rs`).
    writer: std::sync::Arc<writer::Writer>,
    /// Reads that may scan (lists, counts), on sqlx's worker threads.
    readers: SqlitePool,
    /// Behind an `Arc`: the options hold a map of pragmas, and the service (with its store)
    /// is cloned for every request.
    options: std::sync::Arc<SqliteConnectOptions>,
    /// Point reads made inline: the session check and a login's reads (`readers.rs`).
    fast: std::sync::Arc<readers::FastReads>,
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
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(OpenError::Unreachable(format!(
                "the directory {} does not exist",
                dir.display()
            )));
        }
        create_private(path)?;
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
            .map_err(|e| OpenError::Unreachable(format!("{}: {e}", path.display())))?;
        let migrated = MIGRATOR.run(&migrator).await;
        migrator.close().await;
        migrated.map_err(|e| OpenError::Migration(e.to_string()))?;
        let writer = writer::Writer::open(path)
            .map_err(|e| OpenError::Unreachable(format!("{}: {e}", path.display())))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(|e| OpenError::Unreachable(format!("{}: {e}", path.display())))?;
        Ok(Self {
            writer: std::sync::Arc::new(writer),
            readers,
            options: std::sync::Arc::new(options),
            fast: std::sync::Arc::new(readers::FastReads::new(path)),
        })
    }

    /// Run `PRAGMA integrity_check`; `Ok` when SQLite answers `ok`.
    pub async fn integrity_check(&self) -> StoreResult<String> {
        let row: (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&self.readers)
            .await
            .map_err(map_err)?;
        Ok(row.0)
    }

    /// Close the pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.fast.close();
        self.readers.close().await;
        let writer = std::sync::Arc::clone(&self.writer);
        // Joins the writer thread once its queued writes are done.
        let _ = tokio::task::spawn_blocking(move || writer.close()).await;
    }
}

/// Create the database file readable by its owner only (it holds password hashes and sealed
/// secrets); SQLite gives its `-wal` and `-shm` files the same mode. An existing file is left
/// as it is.
fn create_private(path: &Path) -> Result<(), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(OpenError::Unreachable(format!("{}: {e}", path.display()))),
    }
}

/// Create a new, empty file with mode 0600; `Conflict` if anything is there already.
fn create_private_new(path: &Path) -> StoreResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(latchkey_service::StoreError::Conflict("file exists"))
        }
        Err(e) => Err(latchkey_service::StoreError::Unavailable(format!(
            "{}: {e}",
            path.display()
        ))),
    }
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

impl AdminStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn claim_key_fingerprint(&self, fingerprint: &str) -> StoreResult<KeyCheck> {
        let fingerprint = fingerprint.to_owned();
        self.writer
            .run(move |tx| {
                run_now(sql::meta::claim_key_fingerprint(
                    &mut Lite(tx),
                    &fingerprint,
                ))
            })
            .await
    }

    async fn key_fingerprint(&self) -> StoreResult<Option<String>> {
        self.fast
            .read(|c| run_now(sql::meta::key_fingerprint(&mut Lite(c))))
    }

    async fn bootstrap(
        &self,
        system: &Environment,
        operator: &NewUser,
        setup: &NewSetupToken,
        audit: &[AuditRecord],
    ) -> StoreResult<bool> {
        let (system, operator, setup, audit) = (
            system.clone(),
            operator.clone(),
            setup.clone(),
            audit.to_vec(),
        );
        self.writer
            .run(move |tx| {
                run_now(sql::meta::bootstrap(
                    &mut Lite(tx),
                    &system,
                    &operator,
                    &setup,
                    &audit,
                ))
            })
            .await
    }

    async fn create_environment(&self, env: &Environment, audit: &AuditRecord) -> StoreResult<()> {
        let (env, audit) = (env.clone(), audit.clone());
        self.writer
            .run(move |tx| run_now(sql::environments::create(&mut Lite(tx), &env, &audit)))
            .await
    }

    async fn get_environment(&self, slug: &EnvSlug) -> StoreResult<Option<Environment>> {
        self.fast
            .read(|c| run_now(sql::environments::get(&mut Lite(c), slug)))
    }

    async fn list_environments(&self) -> StoreResult<Vec<Environment>> {
        self.fast
            .read(|c| run_now(sql::environments::list(&mut Lite(c))))
    }

    async fn update_environment(
        &self,
        env: &Environment,
        previous: &Environment,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        let (env, previous, audit) = (env.clone(), previous.clone(), audit.clone());
        self.writer
            .run(move |tx| {
                run_now(sql::environments::change(
                    &mut Lite(tx),
                    &env,
                    &previous,
                    &audit,
                ))
            })
            .await
    }

    async fn create_user(
        &self,
        user: &NewUser,
        setup: &NewSetupToken,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        let (user, setup, audit) = (user.clone(), setup.clone(), audit.clone());
        self.writer
            .run(move |tx| run_now(sql::users::create(&mut Lite(tx), &user, &setup, &audit)))
            .await
    }

    async fn get_user(&self, env: &EnvSlug, id: &str) -> StoreResult<Option<User>> {
        self.fast
            .read(|c| run_now(sql::users::get(&mut Lite(c), env, id)))
    }

    async fn find_user_by_email(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> StoreResult<Option<User>> {
        self.fast.read(|c| {
            run_now(sql::users::find_by_email(
                &mut Lite(c),
                env,
                email_normalized,
            ))
        })
    }

    async fn list_users(&self, env: &EnvSlug, query: &UserQuery) -> StoreResult<Vec<User>> {
        let (env, query) = (env.clone(), query.clone());
        self.fast
            .scan(move |c| run_now(sql::users::list(&mut Lite(c), &env, &query)))
            .await
    }

    async fn delete_user(&self, env: &EnvSlug, id: &str, audit: &AuditRecord) -> StoreResult<bool> {
        let (env, id, audit) = (env.clone(), id.to_owned(), audit.clone());
        self.writer
            .run(move |tx| run_now(sql::manage::delete_user(&mut Lite(tx), &env, &id, &audit)))
            .await
    }

    async fn insert_authenticator(&self, authenticator: &NewAuthenticator) -> StoreResult<()> {
        let authenticator = authenticator.clone();
        self.writer
            .run(move |tx| authenticators::insert(tx, &authenticator))
            .await
    }

    async fn list_authenticators(&self, user_id: &str) -> StoreResult<Vec<AuthenticatorRecord>> {
        self.fast.read(|c| authenticators::list(c, user_id))
    }

    async fn advance_totp_step(
        &self,
        authenticator_id: &str,
        step: u64,
        now: i64,
    ) -> StoreResult<bool> {
        let id = authenticator_id.to_owned();
        self.writer
            .run(move |tx| authenticators::advance_step(tx, &id, step, now))
            .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let record = record.clone();
        self.writer.run(move |tx| audit::insert(tx, &record)).await
    }

    async fn list_audit(&self, env: &EnvSlug, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (env, query) = (env.clone(), query.clone());
        self.fast
            .scan(move |c| run_now(sql::audit::list(&mut Lite(c), &env, &query)))
            .await
    }

    async fn backup_to(&self, path: &Path) -> StoreResult<()> {
        let target = path
            .to_str()
            .ok_or_else(|| crate::corrupt("backup path", "not UTF-8"))?;
        // VACUUM INTO writes a consistent, compacted copy from one read transaction while
        // writers go on; it refuses to overwrite an existing file.
        // Created empty first, readable by its owner only (it holds what the database holds);
        // SQLite writes into an empty file. An existing file is never overwritten.
        create_private_new(path)?;
        // A connection of its own, so neither the writer nor a reader is held meanwhile.
        let result = async {
            let mut conn = sqlx::SqliteConnection::connect_with(&self.options)
                .await
                .map_err(map_err)?;
            sqlx::query("VACUUM INTO ?1")
                .bind(target)
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            conn.close().await.map_err(map_err)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }
}
