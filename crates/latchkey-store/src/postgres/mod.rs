//! The PostgreSQL store (`PgStore`): any number of stateless nodes on one database
//! (`docs/ARCHITECTURE.md`, "Scaling out"). The same traits and the same meaning as the SQLite
//! store, proven by the same test suite. Every write method is one transaction (READ
//! COMMITTED); a write about a user first locks the user's row (`lock_user`), and what must
//! hold across concurrent requests and nodes is checked by the statement that changes the row
//! (conditional `UPDATE … WHERE`, `INSERT … ON CONFLICT`), whose row locks make a second writer
//! see the first one's result.

mod audit;
mod auth;
mod authenticators;
mod exec;
pub mod manage;

use std::{path::Path, time::Duration};

use latchkey_core::model::{EnvSlug, Environment, User};
use latchkey_service::{
    AuditRecord,
    store::{
        AdminStore, AuditQuery, AuthenticatorRecord, KeyCheck, NewAuthenticator, NewSetupToken,
        NewUser, StoreResult, UserQuery,
    },
};
use sqlx::{PgPool, Postgres, Transaction, postgres::PgPoolOptions};

use crate::{map_err, sql, sqlite::OpenError};
use exec::Pg;

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
    async fn read(&self) -> StoreResult<sqlx::pool::PoolConnection<Postgres>> {
        self.readers.acquire().await.map_err(map_err)
    }

    /// A write transaction.
    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
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

impl AdminStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn claim_key_fingerprint(&self, fingerprint: &str) -> StoreResult<KeyCheck> {
        let mut tx = self.begin().await?;
        let check = sql::meta::claim_key_fingerprint(&mut Pg(&mut tx), fingerprint).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(check)
    }

    async fn key_fingerprint(&self) -> StoreResult<Option<String>> {
        sql::meta::key_fingerprint(&mut Pg(&mut *self.read().await?)).await
    }

    async fn bootstrap(
        &self,
        system: &Environment,
        operator: &NewUser,
        setup: &NewSetupToken,
        audit: &[AuditRecord],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let created =
            sql::meta::bootstrap(&mut Pg(&mut tx), system, operator, setup, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(created)
    }

    async fn create_environment(&self, env: &Environment, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::environments::create(&mut Pg(&mut tx), env, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_environment(&self, slug: &EnvSlug) -> StoreResult<Option<Environment>> {
        sql::environments::get(&mut Pg(&mut *self.read().await?), slug).await
    }

    async fn list_environments(&self) -> StoreResult<Vec<Environment>> {
        sql::environments::list(&mut Pg(&mut *self.read().await?)).await
    }

    async fn update_environment(
        &self,
        env: &Environment,
        previous: &Environment,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::environments::change(&mut Pg(&mut tx), env, previous, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn create_user(
        &self,
        user: &NewUser,
        setup: &NewSetupToken,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::users::create(&mut Pg(&mut tx), user, setup, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_user(&self, env: &EnvSlug, id: &str) -> StoreResult<Option<User>> {
        sql::users::get(&mut Pg(&mut *self.read().await?), env, id).await
    }

    async fn find_user_by_email(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> StoreResult<Option<User>> {
        sql::users::find_by_email(&mut Pg(&mut *self.read().await?), env, email_normalized).await
    }

    async fn list_users(&self, env: &EnvSlug, query: &UserQuery) -> StoreResult<Vec<User>> {
        sql::users::list(&mut Pg(&mut *self.read().await?), env, query).await
    }

    async fn delete_user(&self, env: &EnvSlug, id: &str, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let deleted = sql::manage::delete_user(&mut Pg(&mut tx), env, id, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(deleted)
    }

    async fn insert_authenticator(&self, authenticator: &NewAuthenticator) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        authenticators::insert(&mut tx, authenticator).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_authenticators(&self, user_id: &str) -> StoreResult<Vec<AuthenticatorRecord>> {
        sql::authenticators::list(&mut Pg(&mut *self.read().await?), user_id).await
    }

    async fn advance_totp_step(
        &self,
        authenticator_id: &str,
        step: u64,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let changed = authenticators::advance_step(&mut tx, authenticator_id, step, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(changed)
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        audit::insert(&mut tx, record).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_audit(&self, env: &EnvSlug, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        sql::audit::list(&mut Pg(&mut *self.read().await?), env, query).await
    }

    async fn backup_to(&self, _path: &Path) -> StoreResult<()> {
        // A consistent copy of a PostgreSQL database is pg_dump's job (docs/OPERATIONS.md).
        Err(latchkey_service::StoreError::Unsupported(
            "backups of a PostgreSQL database are made with pg_dump (see docs/OPERATIONS.md)",
        ))
    }
}
