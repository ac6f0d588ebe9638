//! User and setup-token rows.

use latchkey_core::model::{EnvSlug, Role, User, UserState};
use latchkey_service::store::{MfaFilter, NewSetupToken, NewUser, StoreResult, UserQuery};
use sqlx::{PgPool, Postgres, Transaction};

use super::rows::{self, USER_COLUMNS};
use crate::map_err;

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    new: &NewUser,
) -> StoreResult<()> {
    let u = &new.user;
    sqlx::query(
        "INSERT INTO users (id, env, email, email_norm, name, role, state, mfa_enforced, \
         password_hash, password_change_required, last_login_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&u.id)
    .bind(u.env.as_str())
    .bind(u.email.as_str())
    .bind(u.email.normalized())
    .bind(u.name.as_str())
    .bind(u.role.as_str())
    .bind(u.state.as_str())
    .bind(u.mfa_enforced)
    .bind(new.password_hash.as_deref())
    .bind(new.password_hash.is_none())
    .bind(u.last_login_at)
    .bind(u.created_at)
    .bind(u.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Store a setup link's hash, voiding the user's older unused links (SPEC §4.2).
pub(super) async fn insert_setup_token(
    tx: &mut Transaction<'static, Postgres>,
    t: &NewSetupToken,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM setup_tokens WHERE user_id = $1")
        .bind(&t.user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO setup_tokens (id, token_hash, user_id, purpose, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&t.id)
    .bind(t.hash.as_str())
    .bind(&t.user_id)
    .bind(t.purpose.as_str())
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn get(pool: &PgPool, env: &EnvSlug, id: &str) -> StoreResult<Option<User>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.env = $1 AND u.id = $2"
    ));
    let row = sqlx::query(sql)
        .bind(env.as_str())
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(rows::user).transpose()
}

pub(super) async fn find_by_email(
    pool: &PgPool,
    env: &EnvSlug,
    email_norm: &str,
) -> StoreResult<Option<User>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.env = $1 AND u.email_norm = $2"
    ));
    let row = sqlx::query(sql)
        .bind(env.as_str())
        .bind(email_norm)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(rows::user).transpose()
}

pub(super) async fn list(pool: &PgPool, env: &EnvSlug, q: &UserQuery) -> StoreResult<Vec<User>> {
    // One static statement: absent filters are NULL parameters, so no SQL is built from input.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.env = $1 \
         AND ($2 IS NULL OR u.role = $2) \
         AND ($3 IS NULL OR u.state = $3) \
         AND ($4 IS NULL OR strpos(u.email_norm, $4) > 0) \
         AND ($5 IS NULL OR u.id > $5) \
         AND ($6 IS NULL OR $6 = EXISTS (SELECT 1 FROM authenticators a WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL)) \
         ORDER BY u.id LIMIT $7"
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
