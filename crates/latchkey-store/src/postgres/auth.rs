//! `AuthStore` for PostgreSQL: each method one transaction over the modules beside it.

use latchkey_core::{model::EnvSlug, model::LockoutSettings, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        AuthStore, Claim, Confirmation, CounterKey, Failure, FailureOutcome, LoginSubject,
        LoginTxnView, LoginWrite, NewLoginTxn, NewRecoveryCode, Proof, SessionRecord, SessionView,
        SetupTokenView, StoreResult,
    },
};

use super::{PgStore, exec::Pg};
use crate::{map_err, sql};

impl AuthStore for PgStore {
    async fn login_subject(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> StoreResult<Option<LoginSubject>> {
        sql::logins::subject(&mut Pg(&mut *self.read().await?), env, email_normalized).await
    }

    async fn login_txn(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<LoginTxnView>> {
        let _ = now; // expired or not: the caller tells a lockout from an expiry
        sql::logins::txn(&mut Pg(&mut *self.read().await?), token_hash.as_str()).await
    }

    async fn set_pending_secret(&self, txn_id: &str, sealed: &[u8], now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::logins::set_pending_secret(&mut Pg(&mut tx), txn_id, sealed, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn write_login(&self, write: &LoginWrite) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::logins::write(&mut Pg(&mut tx), write).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn setup_token(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<SetupTokenView>> {
        sql::logins::setup_token(&mut Pg(&mut *self.read().await?), token_hash.as_str(), now).await
    }

    async fn begin_setup_login(&self, txn: &NewLoginTxn, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::logins::begin_setup(&mut Pg(&mut tx), txn, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn claim_attempt(
        &self,
        key: &CounterKey,
        settings: &LockoutSettings,
        now: i64,
    ) -> StoreResult<Claim> {
        let mut tx = self.begin().await?;
        let claim = sql::throttle::claim(&mut Pg(&mut tx), key, settings, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(claim)
    }

    async fn record_failure(&self, f: &Failure<'_>) -> StoreResult<FailureOutcome> {
        let mut tx = self.begin().await?;
        let outcome = sql::throttle::record_failure(&mut Pg(&mut tx), f).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn locked_until(&self, key: &CounterKey, now: i64) -> StoreResult<Option<i64>> {
        sql::throttle::locked_until(&mut Pg(&mut *self.read().await?), key, now).await
    }

    async fn reset_counter(&self, key: &CounterKey) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::throttle::reset(&mut Pg(&mut tx), key).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn ip_failures(&self, env: &EnvSlug, ip: &str, now: i64) -> StoreResult<(u32, i64)> {
        sql::throttle::ip_failures(&mut Pg(&mut *self.read().await?), env, ip, now).await
    }

    async fn record_ip_failure(
        &self,
        env: &EnvSlug,
        ip: &str,
        now: i64,
        record: Option<&AuditRecord>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::throttle::record_ip_failure(&mut Pg(&mut tx), env, ip, now, record).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn session_by_token(&self, token_hash: &TokenHash) -> StoreResult<Option<SessionView>> {
        sql::sessions::by_token(&mut Pg(&mut *self.read().await?), token_hash.as_str()).await
    }

    async fn touch_session(&self, id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::account::touch_session(&mut Pg(&mut tx), id, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn end_session(
        &self,
        user_id: &str,
        id: &str,
        record: Option<&AuditRecord>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sql::account::end_session(&mut Pg(&mut tx), user_id, id, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn list_sessions(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        sql::sessions::list(&mut super::exec::Pg(&mut *self.read().await?), user_id).await
    }

    async fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let done = sql::account::change_password(
            &mut Pg(&mut tx),
            user_id,
            hash,
            keep_session,
            now,
            record,
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn confirm_authenticator(&self, c: &Confirmation<'_>) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::account::confirm_authenticator(&mut Pg(&mut tx), c).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn remove_authenticator(
        &self,
        user_id: &str,
        id: &str,
        keep_one: bool,
        proof: &Proof,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::account::remove_authenticator(
            &mut Pg(&mut tx),
            user_id,
            id,
            keep_one,
            proof,
            now,
            record,
        )
        .await?;
        tx.commit().await.map_err(map_err)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[NewRecoveryCode],
        proof: &Proof,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::account::replace_recovery_codes(&mut Pg(&mut tx), user_id, codes, proof, now, record)
            .await?;
        tx.commit().await.map_err(map_err)
    }

    async fn consume_proof(&self, user_id: &str, proof: &Proof, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::account::consume_proof(&mut Pg(&mut tx), user_id, proof, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let done = sql::meta::purge_expired(&mut Pg(&mut tx), now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> StoreResult<u32> {
        sql::credentials::remaining(&mut Pg(&mut *self.read().await?), user_id).await
    }

    async fn has_recovery_code(&self, user_id: &str, hash: &TokenHash) -> StoreResult<bool> {
        sql::credentials::has_code(&mut Pg(&mut *self.read().await?), user_id, hash.as_str()).await
    }
}
