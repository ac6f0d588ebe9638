//! Session rows. Only token hashes are stored.

use latchkey_service::store::{NewSession, SessionRecord, StoreResult};
use rusqlite::{Connection, params};
use sqlx::SqlitePool;
use std::sync::LazyLock;

use super::{lite, rows};
use crate::map_err;

const COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, s.env AS s_env, s.authenticated_at, s.amr, \
     s.created_at AS s_created_at, s.last_seen_at, s.ip, s.user_agent";

pub(super) fn insert(tx: &Connection, s: &NewSession) -> StoreResult<()> {
    lite::exec(
        tx,
        "INSERT INTO sessions (id, token_hash, user_id, env, authenticated_at, amr, created_at, \
         last_seen_at, ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
        params![
            s.id,
            s.token_hash.as_str(),
            s.user_id,
            s.env.as_str(),
            s.authenticated_at,
            s.amr,
            s.created_at,
            s.ip,
            s.user_agent,
        ],
    )?;
    Ok(())
}

/// The rows of user `?1` in a table aliased `s` that has an `(env, user_id)` index: a row's env
/// is its user's (the foreign key), and the env makes that index usable (migration 0002).
pub(super) const OF_USER: &str = "s.env = (SELECT env FROM users WHERE id = ?1) AND s.user_id = ?1";

pub(super) static LIST: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM sessions s WHERE {OF_USER} ORDER BY s.id"));
pub(super) static END_ALL: LazyLock<String> = LazyLock::new(|| {
    format!("DELETE FROM sessions AS s WHERE {OF_USER} AND (?2 IS NULL OR s.id <> ?2)")
});

pub(super) async fn list(pool: &SqlitePool, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
    let found = sqlx::query(sqlx::AssertSqlSafe(LIST.as_str()))
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    found.iter().map(rows::session_record).collect()
}

/// End the user's sessions except `keep`; returns how many ended.
pub(super) fn end_all(tx: &Connection, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
    lite::exec(tx, &END_ALL, params![user_id, keep])
}
