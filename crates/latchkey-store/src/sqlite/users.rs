//! User and setup-token rows.

use latchkey_core::model::{EnvSlug, Role, User, UserState};
use latchkey_service::store::{MfaFilter, NewSetupToken, NewUser, StoreResult, UserQuery};
use std::sync::LazyLock;

use rusqlite::{Connection, params};
use sqlx::SqlitePool;

use super::{
    lite,
    rows::{self, USER_COLUMNS},
};
use crate::map_err;

pub(super) fn insert(tx: &Connection, new: &NewUser) -> StoreResult<()> {
    let u = &new.user;
    lite::exec(
        tx,
        "INSERT INTO users (id, env, email, email_norm, name, role, state, mfa_enforced, \
         password_hash, password_change_required, last_login_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            u.id,
            u.env.as_str(),
            u.email.as_str(),
            u.email.normalized(),
            u.name.as_str(),
            u.role.as_str(),
            u.state.as_str(),
            u.mfa_enforced,
            new.password_hash,
            new.password_hash.is_none(),
            u.last_login_at,
            u.created_at,
            u.updated_at,
        ],
    )?;
    Ok(())
}

/// Store a setup link's hash, voiding the user's older unused links (SPEC §4.2).
pub(super) fn insert_setup_token(tx: &Connection, t: &NewSetupToken) -> StoreResult<()> {
    lite::exec(
        tx,
        "DELETE FROM setup_tokens WHERE user_id = ?1",
        [&t.user_id],
    )?;
    lite::exec(
        tx,
        "INSERT INTO setup_tokens (id, token_hash, user_id, purpose, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            t.id,
            t.hash.as_str(),
            t.user_id,
            t.purpose.as_str(),
            t.created_at,
            t.expires_at,
        ],
    )?;
    Ok(())
}

static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users u WHERE u.env = ?1 AND u.id = ?2"));

static BY_EMAIL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {USER_COLUMNS} FROM users u WHERE u.env = ?1 AND u.email_norm = ?2")
});

/// A user by id, in `env` (a point read, inline or inside a write).
pub(super) fn get(conn: &Connection, env: &EnvSlug, id: &str) -> StoreResult<Option<User>> {
    lite::one(conn, &BY_ID, [env.as_str(), id], lite::user)
}

pub(super) fn find_by_email(
    conn: &Connection,
    env: &EnvSlug,
    email_norm: &str,
) -> StoreResult<Option<User>> {
    lite::one(conn, &BY_EMAIL, [env.as_str(), email_norm], lite::user)
}

pub(super) async fn list(
    pool: &SqlitePool,
    env: &EnvSlug,
    q: &UserQuery,
) -> StoreResult<Vec<User>> {
    // One static statement: absent filters are NULL parameters, so no SQL is built from input.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.env = ?1 \
         AND (?2 IS NULL OR u.role = ?2) \
         AND (?3 IS NULL OR u.state = ?3) \
         AND (?4 IS NULL OR instr(u.email_norm, ?4) > 0) \
         AND (?5 IS NULL OR u.id > ?5) \
         AND (?6 IS NULL OR ?6 = EXISTS (SELECT 1 FROM authenticators a WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL)) \
         ORDER BY u.id LIMIT ?7"
    ));
    let mfa = q.mfa.map(|m| m == MfaFilter::Enrolled);
    let found = sqlx::query(sql)
        .bind(env.as_str())
        .bind(q.role.map(Role::as_str))
        .bind(q.state.map(UserState::as_str))
        .bind(q.email_contains.as_deref())
        .bind(q.after.as_deref())
        .bind(mfa)
        .bind(i64::from(q.limit))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    found.iter().map(rows::user).collect()
}
