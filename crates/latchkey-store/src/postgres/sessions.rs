//! PostgreSQL's session check: the session, its user and its environment in one read. (The
//! other session units are `sql::sessions`'.)

use latchkey_service::store::{SessionView, StoreResult};
use sqlx::PgPool;

use super::rows;
use crate::map_err;

const COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, s.env AS s_env, s.authenticated_at, s.amr, \
     s.created_at AS s_created_at, s.last_seen_at, s.ip, s.user_agent";

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
