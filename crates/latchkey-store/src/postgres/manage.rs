//! `ManageStore` for PostgreSQL: administration as single transactions and set operations.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        ApiTokenRecord, EnforceCounts, EnvStats, ManageStore, NewApiToken, NewSetupToken,
        StoreResult, UserUpdate,
    },
};

use super::{PgStore, exec::Pg};
use crate::{map_err, sql};

impl ManageStore for PgStore {
    async fn update_user(
        &self,
        env: &EnvSlug,
        id: &str,
        u: &UserUpdate,
        now: i64,
        records: &[AuditRecord],
    ) -> StoreResult<Option<(latchkey_core::model::User, u64)>> {
        let mut tx = self.begin().await?;
        let done = sql::manage::update_user(&mut Pg(&mut tx), env, id, u, now, records).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn reset_password(
        &self,
        env: &EnvSlug,
        user_id: &str,
        setup: &NewSetupToken,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let done =
            sql::manage::reset_password(&mut Pg(&mut tx), env, user_id, setup, now, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn reset_mfa(
        &self,
        env: &EnvSlug,
        user_id: &str,
        record: &AuditRecord,
    ) -> StoreResult<(u64, u64)> {
        let mut tx = self.begin().await?;
        let done = sql::manage::reset_mfa(&mut Pg(&mut tx), env, user_id, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn sign_out(
        &self,
        env: &EnvSlug,
        user_id: &str,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let done = sql::manage::sign_out(&mut Pg(&mut tx), env, user_id, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn enforce_mfa(
        &self,
        env: &EnvSlug,
        all: bool,
        record: &AuditRecord,
    ) -> StoreResult<EnforceCounts> {
        let mut tx = self.begin().await?;
        let counts = sql::manage::enforce_mfa(&mut Pg(&mut tx), env, all, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(counts)
    }

    async fn clear_lockout(
        &self,
        env: &EnvSlug,
        user_id: &str,
        email_normalized: &str,
        record: &AuditRecord,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done =
            sql::manage::clear_lockout(&mut Pg(&mut tx), env, user_id, email_normalized, record)
                .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn enforce_preview(&self, env: &EnvSlug, all: bool) -> StoreResult<EnforceCounts> {
        sql::manage::enforce_preview(&mut Pg(&mut *self.read().await?), env, all).await
    }

    async fn stats(&self, env: &EnvSlug, now: i64) -> StoreResult<EnvStats> {
        sql::manage::stats(&mut Pg(&mut *self.read().await?), env, now).await
    }

    async fn create_api_token(&self, t: &NewApiToken, record: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::api_tokens::create(&mut Pg(&mut tx), t, record).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_api_tokens(&self, env: Option<&EnvSlug>) -> StoreResult<Vec<ApiTokenRecord>> {
        sql::api_tokens::list(&mut Pg(&mut *self.read().await?), env).await
    }

    async fn revoke_api_token(
        &self,
        env: Option<&EnvSlug>,
        id: &str,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let revoked = sql::api_tokens::revoke(&mut Pg(&mut tx), env, id, now, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn use_api_token(
        &self,
        hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<ApiTokenRecord>> {
        let found =
            sql::api_tokens::find(&mut Pg(&mut *self.read().await?), hash.as_str(), now).await?;
        let Some((record, stale)) = found else {
            return Ok(None);
        };
        if stale {
            let mut tx = self.begin().await?;
            sql::api_tokens::mark_used(&mut Pg(&mut tx), &record.id, now).await?;
            tx.commit().await.map_err(map_err)?;
        }
        Ok(Some(record))
    }
}
