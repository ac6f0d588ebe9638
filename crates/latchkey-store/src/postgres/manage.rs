//! `ManageStore` for PostgreSQL: administration as single transactions and set operations.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        ApiTokenRecord, EnforceCounts, EnvStats, ManageStore, NewApiToken, NewSetupToken,
        StoreResult, UserUpdate,
    },
};
use sqlx::{Postgres, Transaction};

use super::{PgStore, audit, exec::Pg, rows};
use crate::{map_err, sql};

/// The user must exist in `env` (nothing crosses environments).
async fn user_exists(
    tx: &mut Transaction<'static, Postgres>,
    env: &EnvSlug,
    id: &str,
) -> StoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1::bigint FROM users WHERE env = $1 AND id = $2")
            .bind(env.as_str())
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
    Ok(found.is_some())
}

/// `system` must keep an active admin (an operator): refuse a change that would remove the
/// last one, checked inside the writing transaction so two concurrent changes cannot both pass.
pub(super) async fn keep_an_operator(
    tx: &mut Transaction<'static, Postgres>,
    env: &EnvSlug,
    id: &str,
) -> StoreResult<()> {
    if !env.is_system() {
        return Ok(());
    }
    // Changes to operators queue up, so two concurrent demotions cannot each count the other.
    sqlx::query("SELECT pg_advisory_xact_lock(7270001)")
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let is_operator: Option<i64> = sqlx::query_scalar(
        "SELECT 1::bigint FROM users WHERE env = $1 AND id = $2 AND role = 'admin' AND state = 'active'",
    )
    .bind(env.as_str())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    if is_operator.is_none() {
        return Ok(());
    }
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE env = $1 AND role = 'admin' AND state = 'active' AND id <> $2",
    )
    .bind(env.as_str())
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    if others == 0 {
        return Err(latchkey_service::StoreError::Conflict(LAST_OPERATOR));
    }
    Ok(())
}

/// The conflict a change that would leave `system` without an operator gets.
pub const LAST_OPERATOR: &str = "last operator";

/// Tokens a user made stop working when the user can no longer administer (SECURITY S7).
pub(super) async fn revoke_tokens_of(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    now: i64,
) -> StoreResult<()> {
    sql::manage::revoke_tokens_of(&mut Pg(tx), user_id, now).await
}

/// End a user's sessions and pending logins; returns the sessions ended.
async fn end_everything(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
) -> StoreResult<u64> {
    sql::manage::end_everything(&mut Pg(tx), user_id).await
}

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
        super::lock_user(&mut tx, id).await?;
        if !user_exists(&mut tx, env, id).await? {
            return Ok(None);
        }
        let loses_admin =
            u.disabled == Some(true) || u.role == Some(latchkey_core::model::Role::User);
        if loses_admin {
            keep_an_operator(&mut tx, env, id).await?;
        }
        let state = u.disabled.map(|d| if d { "disabled" } else { "enabled" });
        sqlx::query(
            "UPDATE users SET name = coalesce($3, name), role = coalesce($4, role), \
             mfa_enforced = coalesce($5, mfa_enforced), \
             state = CASE WHEN $6 = 'disabled' THEN 'disabled' \
                          WHEN $6 = 'enabled' AND state = 'disabled' \
                          THEN CASE WHEN password_hash IS NULL THEN 'invited' ELSE 'active' END \
                          ELSE state END, \
             updated_at = $7 WHERE env = $1 AND id = $2",
        )
        .bind(env.as_str())
        .bind(id)
        .bind(u.name.as_deref())
        .bind(u.role.map(latchkey_core::model::Role::as_str))
        .bind(u.mfa_enforced)
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut ended = 0;
        if u.disabled == Some(true) {
            ended = end_everything(&mut tx, id).await?;
            // A disabled user's links must not work again when they are enabled.
            sqlx::query("DELETE FROM setup_tokens WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        if loses_admin {
            revoke_tokens_of(&mut tx, id, now).await?;
        }
        if u.mfa_enforced == Some(true) {
            // Marked like *enforce MFA* does for one user: without an authenticator, signed out.
            let has: Option<i64> = sqlx::query_scalar(
                "SELECT 1::bigint FROM authenticators WHERE user_id = $1 AND confirmed_at IS NOT NULL",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if has.is_none() {
                ended += end_everything(&mut tx, id).await?;
            }
        }
        for r in records {
            audit::insert(&mut tx, r).await?;
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users u WHERE u.env = $1 AND u.id = $2",
            rows::USER_COLUMNS
        ));
        let row = sqlx::query(sql)
            .bind(env.as_str())
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let user = rows::user(&row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some((user, ended)))
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
        // Who is concerned: users without a confirmed authenticator (everyone with `all`).
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS enforce_targets (id TEXT PRIMARY KEY) ON COMMIT DELETE ROWS",
        )
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM enforce_targets")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO enforce_targets (id) SELECT u.id FROM users u WHERE u.env = $1 AND ($2 OR NOT EXISTS \
             (SELECT 1 FROM authenticators a WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL))",
        )
        .bind(env.as_str())
        .bind(all)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let users_marked = sqlx::query(
            "UPDATE users SET mfa_enforced = TRUE WHERE env = $1 AND NOT mfa_enforced AND NOT EXISTS \
             (SELECT 1 FROM authenticators a WHERE a.user_id = users.id AND a.confirmed_at IS NOT NULL)",
        )
        .bind(env.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        let signed_out: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT s.user_id) FROM sessions s JOIN enforce_targets t ON t.id = s.user_id WHERE s.env = $1",
        )
        .bind(env.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let sessions_ended = sqlx::query(
            "DELETE FROM sessions WHERE env = $1 AND user_id IN (SELECT id FROM enforce_targets)",
        )
        .bind(env.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        sqlx::query("DELETE FROM login_transactions WHERE env = $1 AND user_id IN (SELECT id FROM enforce_targets)")
            .bind(env.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM enforce_targets")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let counts = EnforceCounts {
            users_marked,
            users_signed_out: u64::try_from(signed_out).unwrap_or(0),
            sessions_ended,
        };
        let mut record = record.clone();
        record.detail = Some(format!(
            "{{\"all\":{all},\"users_marked\":{},\"users_signed_out\":{},\"sessions_ended\":{}}}",
            counts.users_marked, counts.users_signed_out, counts.sessions_ended
        ));
        audit::insert(&mut tx, &record).await?;
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
