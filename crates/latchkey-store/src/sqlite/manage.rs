//! `ManageStore` for SQLite: administration as single transactions and set operations.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        ApiTokenRecord, EnforceCounts, EnvStats, ManageStore, NewApiToken, NewSetupToken,
        StoreResult, UserUpdate,
    },
};
use rusqlite::params;

use super::{SqliteStore, audit, exec::Lite, lite, lite_err};
use crate::sql::{self, run_now};

impl ManageStore for SqliteStore {
    async fn update_user(
        &self,
        env: &EnvSlug,
        id: &str,
        u: &UserUpdate,
        now: i64,
        records: &[AuditRecord],
    ) -> StoreResult<Option<(latchkey_core::model::User, u64)>> {
        let (env, id, u, records) = (env.clone(), id.to_owned(), u.clone(), records.to_vec());
        self.writer
            .run(move |tx| {
                run_now(sql::manage::update_user(
                    &mut Lite(tx),
                    &env,
                    &id,
                    &u,
                    now,
                    &records,
                ))
            })
            .await
    }

    async fn reset_password(
        &self,
        env: &EnvSlug,
        user_id: &str,
        setup: &NewSetupToken,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let (env, user_id, setup, record) = (
            env.clone(),
            user_id.to_owned(),
            setup.clone(),
            record.clone(),
        );
        self.writer
            .run(move |tx| {
                run_now(sql::manage::reset_password(
                    &mut Lite(tx),
                    &env,
                    &user_id,
                    &setup,
                    now,
                    &record,
                ))
            })
            .await
    }

    async fn reset_mfa(
        &self,
        env: &EnvSlug,
        user_id: &str,
        record: &AuditRecord,
    ) -> StoreResult<(u64, u64)> {
        let (env, user_id, record) = (env.clone(), user_id.to_owned(), record.clone());
        self.writer
            .run(move |tx| {
                run_now(sql::manage::reset_mfa(
                    &mut Lite(tx),
                    &env,
                    &user_id,
                    &record,
                ))
            })
            .await
    }

    async fn sign_out(
        &self,
        env: &EnvSlug,
        user_id: &str,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let (env, user_id, record) = (env.clone(), user_id.to_owned(), record.clone());
        self.writer
            .run(move |tx| {
                run_now(sql::manage::sign_out(
                    &mut Lite(tx),
                    &env,
                    &user_id,
                    &record,
                ))
            })
            .await
    }

    async fn enforce_mfa(
        &self,
        env: &EnvSlug,
        all: bool,
        record: &AuditRecord,
    ) -> StoreResult<EnforceCounts> {
        let (env, record) = (env.clone(), record.clone());
        self.writer
            .run(move |tx| {
                // Who is concerned: users without a confirmed authenticator (everyone with `all`).
                for sql in [
                    "CREATE TEMP TABLE IF NOT EXISTS enforce_targets (id TEXT PRIMARY KEY) WITHOUT ROWID",
                    "DELETE FROM enforce_targets",
                ] {
                    tx.execute(sql, []).map_err(lite_err)?;
                }
                lite::exec(
                    tx,
                    "INSERT INTO enforce_targets (id) SELECT u.id FROM users u WHERE u.env = ?1 AND (?2 OR NOT EXISTS \
                     (SELECT 1 FROM authenticators a WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL))",
                    params![env.as_str(), all],
                )?;
                let users_marked = lite::exec(
                    tx,
                    "UPDATE users SET mfa_enforced = 1 WHERE env = ?1 AND mfa_enforced = 0 AND NOT EXISTS \
                     (SELECT 1 FROM authenticators a WHERE a.user_id = users.id AND a.confirmed_at IS NOT NULL)",
                    [env.as_str()],
                )?;
                let signed_out = lite::one(
                    tx,
                    "SELECT count(DISTINCT s.user_id) FROM sessions s JOIN enforce_targets t ON t.id = s.user_id WHERE s.env = ?1",
                    [env.as_str()],
                    lite::first::<i64>,
                )?
                .unwrap_or(0);
                let sessions_ended = lite::exec(
                    tx,
                    "DELETE FROM sessions WHERE env = ?1 AND user_id IN (SELECT id FROM enforce_targets)",
                    [env.as_str()],
                )?;
                lite::exec(
                    tx,
                    "DELETE FROM login_transactions WHERE env = ?1 AND user_id IN (SELECT id FROM enforce_targets)",
                    [env.as_str()],
                )?;
                tx.execute("DELETE FROM enforce_targets", [])
                    .map_err(lite_err)?;
                let counts = EnforceCounts {
                    users_marked,
                    users_signed_out: u64::try_from(signed_out).unwrap_or(0),
                    sessions_ended,
                };
                let mut record = record;
                record.detail = Some(format!(
                    "{{\"all\":{all},\"users_marked\":{},\"users_signed_out\":{},\"sessions_ended\":{}}}",
                    counts.users_marked, counts.users_signed_out, counts.sessions_ended
                ));
                audit::insert(tx, &record)?;
                Ok(counts)
            })
            .await
    }

    async fn clear_lockout(
        &self,
        env: &EnvSlug,
        user_id: &str,
        email_normalized: &str,
        record: &AuditRecord,
    ) -> StoreResult<bool> {
        let (env, user_id, email, record) = (
            env.clone(),
            user_id.to_owned(),
            email_normalized.to_owned(),
            record.clone(),
        );
        self.writer
            .run(move |tx| {
                run_now(sql::manage::clear_lockout(
                    &mut Lite(tx),
                    &env,
                    &user_id,
                    &email,
                    &record,
                ))
            })
            .await
    }

    async fn enforce_preview(&self, env: &EnvSlug, all: bool) -> StoreResult<EnforceCounts> {
        let env = env.clone();
        self.fast
            .scan(move |c| run_now(sql::manage::enforce_preview(&mut Lite(c), &env, all)))
            .await
    }

    async fn stats(&self, env: &EnvSlug, now: i64) -> StoreResult<EnvStats> {
        let env = env.clone();
        self.fast
            .scan(move |c| run_now(sql::manage::stats(&mut Lite(c), &env, now)))
            .await
    }

    async fn create_api_token(&self, t: &NewApiToken, record: &AuditRecord) -> StoreResult<()> {
        let (t, record) = (t.clone(), record.clone());
        self.writer
            .run(move |tx| run_now(sql::api_tokens::create(&mut Lite(tx), &t, &record)))
            .await
    }

    async fn list_api_tokens(&self, env: Option<&EnvSlug>) -> StoreResult<Vec<ApiTokenRecord>> {
        self.fast
            .read(|c| run_now(sql::api_tokens::list(&mut Lite(c), env)))
    }

    async fn revoke_api_token(
        &self,
        env: Option<&EnvSlug>,
        id: &str,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<bool> {
        let (env, id, record) = (env.cloned(), id.to_owned(), record.clone());
        self.writer
            .run(move |tx| {
                run_now(sql::api_tokens::revoke(
                    &mut Lite(tx),
                    env.as_ref(),
                    &id,
                    now,
                    &record,
                ))
            })
            .await
    }

    async fn use_api_token(
        &self,
        hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<ApiTokenRecord>> {
        let found = self
            .fast
            .read(|c| run_now(sql::api_tokens::find(&mut Lite(c), hash.as_str(), now)))?;
        let Some((record, stale)) = found else {
            return Ok(None);
        };
        if stale {
            let id = record.id.clone();
            self.writer
                .run(move |tx| run_now(sql::api_tokens::mark_used(&mut Lite(tx), &id, now)))
                .await?;
        }
        Ok(Some(record))
    }
}
