//! `ManageStore` for PostgreSQL: administration as single transactions and set operations.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        ApiTokenRecord, EnforceCounts, EnvStats, ManageStore, NewApiToken, NewSetupToken,
        StoreResult, UserUpdate,
    },
};
use sqlx::{Postgres, Transaction, postgres::PgRow};

use super::{PgStore, audit, exec::Pg, rows};
use crate::{corrupt, map_err, sql};

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

fn token(row: &PgRow) -> StoreResult<ApiTokenRecord> {
    let env: Option<String> = rows::get(row, "env")?;
    Ok(ApiTokenRecord {
        id: rows::get(row, "id")?,
        env: env
            .map(|e| EnvSlug::parse(&e).map_err(|_| corrupt("env", e)))
            .transpose()?,
        name: rows::get(row, "name")?,
        created_by: rows::get(row, "created_by")?,
        created_at: rows::get(row, "created_at")?,
        last_used_at: rows::get(row, "last_used_at")?,
        revoked_at: rows::get(row, "revoked_at")?,
    })
}

const TOKEN_COLUMNS: &str = "id, env, name, created_by, created_at, last_used_at, revoked_at";

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
        let row: (i64, i64, i64) = sqlx::query_as(
            "WITH targets AS (SELECT u.id, u.mfa_enforced, NOT EXISTS (SELECT 1 FROM authenticators a \
               WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL) AS without_mfa \
               FROM users u WHERE u.env = $1) \
             SELECT \
               (SELECT count(*) FROM targets WHERE without_mfa AND NOT mfa_enforced), \
               (SELECT count(DISTINCT s.user_id) FROM sessions s JOIN targets t ON t.id = s.user_id \
                  WHERE s.env = $1 AND ($2 OR t.without_mfa)), \
               (SELECT count(*) FROM sessions s JOIN targets t ON t.id = s.user_id \
                  WHERE s.env = $1 AND ($2 OR t.without_mfa))",
        )
        .bind(env.as_str())
        .bind(all)
        .fetch_one(&self.readers)
        .await
        .map_err(map_err)?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(EnforceCounts {
            users_marked: n(row.0),
            users_signed_out: n(row.1),
            sessions_ended: n(row.2),
        })
    }

    async fn stats(&self, env: &EnvSlug, now: i64) -> StoreResult<EnvStats> {
        let row: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT \
               (SELECT count(*) FROM users WHERE env = $1), \
               (SELECT count(DISTINCT a.user_id) FROM authenticators a JOIN users u ON u.id = a.user_id \
                  WHERE u.env = $1 AND a.confirmed_at IS NOT NULL), \
               (SELECT count(*) FROM users WHERE env = $1 AND mfa_enforced), \
               (SELECT count(*) FROM sessions s WHERE s.env = $1 AND s.authenticated_at + \
                  (SELECT session_max_age FROM environments e WHERE e.slug = $1) > $2), \
               (SELECT count(*) FROM audit_events WHERE env = $1 AND type = 'login.locked' AND at > $2 - 86400)",
        )
        .bind(env.as_str())
        .bind(now)
        .fetch_one(&self.readers)
        .await
        .map_err(map_err)?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(EnvStats {
            users: n(row.0),
            users_with_mfa: n(row.1),
            users_mfa_enforced: n(row.2),
            active_sessions: n(row.3),
            lockouts_24h: n(row.4),
        })
    }

    async fn create_api_token(&self, t: &NewApiToken, record: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, env, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(t.hash.as_str())
        .bind(t.env.as_ref().map(EnvSlug::as_str))
        .bind(&t.name)
        .bind(t.created_by.as_deref())
        .bind(t.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        audit::insert(&mut tx, record).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_api_tokens(&self, env: Option<&EnvSlug>) -> StoreResult<Vec<ApiTokenRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE env IS NOT DISTINCT FROM $1 ORDER BY id"
        ));
        let found = sqlx::query(sql)
            .bind(env.map(EnvSlug::as_str))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)?;
        found.iter().map(token).collect()
    }

    async fn revoke_api_token(
        &self,
        env: Option<&EnvSlug>,
        id: &str,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let revoked = sqlx::query("UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND env IS NOT DISTINCT FROM $2 AND revoked_at IS NULL")
            .bind(id)
            .bind(env.map(EnvSlug::as_str))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if revoked == 0 {
            return Ok(false);
        }
        audit::insert(&mut tx, record).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn use_api_token(
        &self,
        hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<ApiTokenRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ));
        let Some(row) = sqlx::query(sql)
            .bind(hash.as_str())
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let record = token(&row)?;
        if record.last_used_at.is_none_or(|t| now - t >= 60) {
            let mut tx = self.begin().await?;
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(&record.id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
        }
        Ok(Some(record))
    }
}
