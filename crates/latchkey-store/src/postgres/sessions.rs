//! Session rows. Only token hashes are stored.

use latchkey_service::store::{NewSession, SessionRecord, SessionView, StoreResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::rows;
use crate::map_err;

const COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, s.env AS s_env, s.authenticated_at, s.amr, \
     s.created_at AS s_created_at, s.last_seen_at, s.ip, s.user_agent";

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    s: &NewSession,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, env, authenticated_at, amr, created_at, \
         last_seen_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)",
    )
    .bind(&s.id)
    .bind(s.token_hash.as_str())
    .bind(&s.user_id)
    .bind(s.env.as_str())
    .bind(s.authenticated_at)
    .bind(&s.amr)
    .bind(s.created_at)
    .bind(s.ip.as_deref())
    .bind(s.user_agent.as_deref())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// One query: the session, its user and its environment, so a session check is one read.
pub(super) async fn by_token(pool: &PgPool, token_hash: &str) -> StoreResult<Option<SessionView>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, {}, {} FROM sessions s JOIN users u ON u.id = s.user_id \
         JOIN environments e ON e.slug = s.env WHERE s.token_hash = $1",
        rows::USER_COLUMNS,
        rows::ENV_JOINED_COLUMNS
    ));
    let Some(row) = sqlx::query(sql)
        .bind(token_hash)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?
    else {
        return Ok(None);
    };
    Ok(Some(SessionView {
        session: rows::session_record(&row)?,
        user: rows::user(&row)?,
        environment: rows::environment_joined(&row)?,
    }))
}

/// The rows of user `$1` in a table aliased `s` that has an `(env, user_id)` index: a row's env
/// is its user's (the foreign key), and the env makes that index usable (migration 0002).
pub(super) const OF_USER: &str = "s.env = (SELECT env FROM users WHERE id = $1) AND s.user_id = $1";

static END_ALL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("DELETE FROM sessions AS s WHERE {OF_USER} AND ($2 IS NULL OR s.id <> $2)")
});

pub(super) async fn list(pool: &PgPool, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions s WHERE {OF_USER} ORDER BY s.id"
    ));
    let found = sqlx::query(sql)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    found.iter().map(rows::session_record).collect()
}

/// End the user's sessions except `keep`; returns how many ended.
pub(super) async fn end_all(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    keep: Option<&str>,
) -> StoreResult<u64> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(END_ALL.as_str()))
        .bind(user_id)
        .bind(keep)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected())
}
