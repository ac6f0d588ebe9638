//! `AuthStore` for PostgreSQL: each method one transaction over the modules beside it.

use latchkey_core::{model::EnvSlug, model::LockoutSettings, token::TokenHash};
use latchkey_service::{
    AuditRecord, StoreError,
    store::{
        AuthStore, Claim, Confirmation, CounterKey, Failure, FailureOutcome, LoginSubject,
        LoginTxnView, LoginWrite, NewLoginTxn, NewRecoveryCode, Proof, SessionRecord, SessionView,
        SetupTokenView, StoreResult,
    },
};

use super::{PgStore, audit, exec::Pg, logins, sessions};
use crate::{map_err, sql};

impl AuthStore for PgStore {
    async fn login_subject(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> StoreResult<Option<LoginSubject>> {
        logins::subject(&self.readers, env, email_normalized).await
    }

    async fn login_txn(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<LoginTxnView>> {
        logins::txn(&self.readers, token_hash.as_str(), now).await
    }

    async fn set_pending_secret(&self, txn_id: &str, sealed: &[u8], now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        logins::set_pending_secret(&mut tx, txn_id, sealed, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn write_login(&self, write: &LoginWrite) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        logins::write(&mut tx, write).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn setup_token(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<SetupTokenView>> {
        logins::setup_token(&self.readers, token_hash.as_str(), now).await
    }

    async fn begin_setup_login(&self, txn: &NewLoginTxn, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        logins::begin_setup(&mut tx, txn, now).await?;
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
        sql::throttle::count_ip(&mut Pg(&mut tx), env, ip, now).await?;
        if let Some(r) = record {
            audit::insert(&mut tx, r).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn session_by_token(&self, token_hash: &TokenHash) -> StoreResult<Option<SessionView>> {
        sessions::by_token(&self.readers, token_hash.as_str()).await
    }

    async fn touch_session(&self, id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn end_session(
        &self,
        user_id: &str,
        id: &str,
        record: Option<&AuditRecord>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if ended == 0 {
            return Ok(false);
        }
        if let Some(r) = record {
            audit::insert(&mut tx, r).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
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
        super::lock_user(&mut tx, user_id).await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $2, password_change_required = FALSE, updated_at = $3 \
             WHERE id = $1 AND state = 'active'",
        )
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::NotFound);
        }
        let ended = sessions::end_all(&mut tx, user_id, keep_session).await?;
        logins::end_all(&mut tx, user_id).await?;
        audit::insert(&mut tx, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ended)
    }

    async fn confirm_authenticator(&self, c: &Confirmation<'_>) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        super::lock_user(&mut tx, c.user_id).await?;
        sql::credentials::confirm(
            &mut Pg(&mut tx),
            c.user_id,
            c.authenticator_id,
            c.label,
            c.step,
            c.now,
        )
        .await?;
        if let Some(codes) = c.recovery_codes {
            sql::credentials::replace_recovery_codes(&mut Pg(&mut tx), c.user_id, codes, c.now)
                .await?;
        }
        for record in c.audit {
            audit::insert(&mut tx, record).await?;
        }
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
        super::lock_user(&mut tx, user_id).await?;
        sql::credentials::consume_proof(&mut Pg(&mut tx), user_id, proof, now).await?;
        sql::credentials::remove(&mut Pg(&mut tx), user_id, id, keep_one).await?;
        audit::insert(&mut tx, record).await?;
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
        super::lock_user(&mut tx, user_id).await?;
        sql::credentials::consume_proof(&mut Pg(&mut tx), user_id, proof, now).await?;
        sql::credentials::replace_recovery_codes(&mut Pg(&mut tx), user_id, codes, now).await?;
        audit::insert(&mut tx, record).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn consume_proof(&self, user_id: &str, proof: &Proof, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        super::lock_user(&mut tx, user_id).await?;
        sql::credentials::consume_proof(&mut Pg(&mut tx), user_id, proof, now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let mut gone = 0;
        for sql in [
            // Kept an hour past expiry, so a step on one still answers login_expired.
            "DELETE FROM login_transactions WHERE expires_at < $1 - 3600",
            "DELETE FROM sessions WHERE authenticated_at + \
             (SELECT session_max_age FROM environments e WHERE e.slug = sessions.env) <= $1",
            "DELETE FROM setup_tokens WHERE expires_at < $1 - 30 * 86400 OR used_at < $1 - 30 * 86400",
            "DELETE FROM authenticators WHERE confirmed_at IS NULL AND created_at < $1 - 86400",
            // Counters untouched for a day and not locked: a day-old failure is forgotten.
            "DELETE FROM failure_counters WHERE (locked_until IS NULL OR locked_until < $1) \
             AND updated_at < $1 - 86400",
        ] {
            gone += sqlx::query(sql)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(gone)
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> StoreResult<u32> {
        sql::credentials::remaining(&mut Pg(&mut *self.read().await?), user_id).await
    }

    async fn has_recovery_code(&self, user_id: &str, hash: &TokenHash) -> StoreResult<bool> {
        sql::credentials::has_code(&mut Pg(&mut *self.read().await?), user_id, hash.as_str()).await
    }
}
