//! `ManageStore` for SQLite: administration as single transactions and set operations.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        ApiTokenRecord, EnforceCounts, EnvStats, ManageStore, NewApiToken, NewSetupToken,
        StoreResult, UserUpdate,
    },
};
use rusqlite::{Connection, params};
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, audit, exec::Lite, lite, lite_err, rows};
use crate::{
    corrupt, map_err,
    sql::{self, run_now},
};

/// The user must exist in `env` (nothing crosses environments).
fn user_exists(tx: &Connection, env: &EnvSlug, id: &str) -> StoreResult<bool> {
    let found = lite::exists(
        tx,
        "SELECT 1 FROM users WHERE env = ?1 AND id = ?2",
        [env.as_str(), id],
    )?;
    Ok(found)
}

/// `system` must keep an active admin (an operator): refuse a change that would remove the
/// last one, checked inside the writing transaction so two concurrent changes cannot both pass.
pub(super) fn keep_an_operator(tx: &Connection, env: &EnvSlug, id: &str) -> StoreResult<()> {
    if !env.is_system() {
        return Ok(());
    }
    let is_operator = lite::exists(
        tx,
        "SELECT 1 FROM users WHERE env = ?1 AND id = ?2 AND role = 'admin' AND state = 'active'",
        [env.as_str(), id],
    )?;
    if !is_operator {
        return Ok(());
    }
    let others = lite::one(
        tx,
        "SELECT count(*) FROM users WHERE env = ?1 AND role = 'admin' AND state = 'active' AND id <> ?2",
        [env.as_str(), id],
        lite::first::<i64>,
    )?;
    if others == Some(0) {
        return Err(latchkey_service::StoreError::Conflict(LAST_OPERATOR));
    }
    Ok(())
}

/// The conflict a change that would leave `system` without an operator gets.
pub const LAST_OPERATOR: &str = "last operator";

/// Tokens a user made stop working when the user can no longer administer (SECURITY S7).
pub(super) fn revoke_tokens_of(tx: &Connection, user_id: &str, now: i64) -> StoreResult<()> {
    run_now(sql::manage::revoke_tokens_of(&mut Lite(tx), user_id, now))
}

/// End a user's sessions and pending logins; returns the sessions ended.
fn end_everything(tx: &Connection, user_id: &str) -> StoreResult<u64> {
    run_now(sql::manage::end_everything(&mut Lite(tx), user_id))
}

fn token(row: &SqliteRow) -> StoreResult<ApiTokenRecord> {
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
                if !user_exists(tx, &env, &id)? {
                    return Ok(None);
                }
                let loses_admin =
                    u.disabled == Some(true) || u.role == Some(latchkey_core::model::Role::User);
                if loses_admin {
                    keep_an_operator(tx, &env, &id)?;
                }
                let state = u.disabled.map(|d| if d { "disabled" } else { "enabled" });
                lite::exec(
                    tx,
                    "UPDATE users SET name = coalesce(?3, name), role = coalesce(?4, role), \
                     mfa_enforced = coalesce(?5, mfa_enforced), \
                     state = CASE WHEN ?6 = 'disabled' THEN 'disabled' \
                                  WHEN ?6 = 'enabled' AND state = 'disabled' \
                                  THEN CASE WHEN password_hash IS NULL THEN 'invited' ELSE 'active' END \
                                  ELSE state END, \
                     updated_at = ?7 WHERE env = ?1 AND id = ?2",
                    params![
                        env.as_str(),
                        id,
                        u.name.as_deref(),
                        u.role.map(latchkey_core::model::Role::as_str),
                        u.mfa_enforced,
                        state,
                        now,
                    ],
                )?;
                let mut ended = 0;
                if u.disabled == Some(true) {
                    ended = end_everything(tx, &id)?;
                    // A disabled user's links must not work again when they are enabled.
                    lite::exec(tx, "DELETE FROM setup_tokens WHERE user_id = ?1", [&id])?;
                }
                if loses_admin {
                    revoke_tokens_of(tx, &id, now)?;
                }
                if u.mfa_enforced == Some(true) {
                    // Marked like *enforce MFA* does for one user: without an authenticator,
                    // signed out.
                    let has = lite::exists(
                        tx,
                        "SELECT 1 FROM authenticators WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
                        [&id],
                    )?;
                    if !has {
                        ended += end_everything(tx, &id)?;
                    }
                }
                for r in &records {
                    audit::insert(tx, r)?;
                }
                let user = run_now(sql::users::get(&mut Lite(tx), &env, &id))?
                    .ok_or(latchkey_service::StoreError::NotFound)?;
                Ok(Some((user, ended)))
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
        let row: (i64, i64, i64) = sqlx::query_as(
            "WITH targets AS (SELECT u.id, u.mfa_enforced, NOT EXISTS (SELECT 1 FROM authenticators a \
               WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL) AS without_mfa \
               FROM users u WHERE u.env = ?1) \
             SELECT \
               (SELECT count(*) FROM targets WHERE without_mfa AND mfa_enforced = 0), \
               (SELECT count(DISTINCT s.user_id) FROM sessions s JOIN targets t ON t.id = s.user_id \
                  WHERE s.env = ?1 AND (?2 OR t.without_mfa)), \
               (SELECT count(*) FROM sessions s JOIN targets t ON t.id = s.user_id \
                  WHERE s.env = ?1 AND (?2 OR t.without_mfa))",
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
               (SELECT count(*) FROM users WHERE env = ?1), \
               (SELECT count(DISTINCT a.user_id) FROM authenticators a JOIN users u ON u.id = a.user_id \
                  WHERE u.env = ?1 AND a.confirmed_at IS NOT NULL), \
               (SELECT count(*) FROM users WHERE env = ?1 AND mfa_enforced = 1), \
               (SELECT count(*) FROM sessions s WHERE s.env = ?1 AND s.authenticated_at + \
                  (SELECT session_max_age FROM environments e WHERE e.slug = ?1) > ?2), \
               (SELECT count(*) FROM audit_events WHERE env = ?1 AND type = 'login.locked' AND at > ?2 - 86400)",
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
        let (t, record) = (t.clone(), record.clone());
        self.writer
            .run(move |tx| {
                lite::exec(
                    tx,
                    "INSERT INTO api_tokens (id, token_hash, env, name, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        t.id,
                        t.hash.as_str(),
                        t.env.as_ref().map(EnvSlug::as_str),
                        t.name,
                        t.created_by,
                        t.created_at,
                    ],
                )?;
                audit::insert(tx, &record)
            })
            .await
    }

    async fn list_api_tokens(&self, env: Option<&EnvSlug>) -> StoreResult<Vec<ApiTokenRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE env IS ?1 ORDER BY id"
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
        let (env, id, record) = (env.cloned(), id.to_owned(), record.clone());
        self.writer
            .run(move |tx| {
                let revoked = lite::exec(
                    tx,
                    "UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND env IS ?2 AND revoked_at IS NULL",
                    params![id, env.as_ref().map(EnvSlug::as_str), now],
                )?;
                if revoked == 0 {
                    return Ok(false);
                }
                audit::insert(tx, &record)?;
                Ok(true)
            })
            .await
    }

    async fn use_api_token(
        &self,
        hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<ApiTokenRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL"
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
            let id = record.id.clone();
            self.writer
                .run(move |tx| {
                    lite::exec(
                        tx,
                        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )
                })
                .await?;
        }
        Ok(Some(record))
    }
}
