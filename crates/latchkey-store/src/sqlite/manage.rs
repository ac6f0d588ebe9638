//! `ManageStore` for SQLite: administration as single transactions and set operations.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        ApiTokenRecord, EnforceCounts, EnvStats, ManageStore, NewApiToken, NewSetupToken,
        StoreResult, UserUpdate,
    },
};

use super::{SqliteStore, exec::Lite};
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
            .run(move |tx| run_now(sql::manage::enforce_mfa(&mut Lite(tx), &env, all, &record)))
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
