//! Session rows. Only token hashes are stored.

use latchkey_core::token::TokenHash;
use latchkey_service::store::{NewSession, SessionRecord, SessionView, StoreResult};

use super::{Db, Sql, rows};

static INSERT: Sql = Sql::new(
    "INSERT INTO sessions (id, token_hash, user_id, env, authenticated_at, amr, created_at, \
     last_seen_at, ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
);

pub(crate) async fn insert<D: Db>(db: &mut D, s: &NewSession) -> StoreResult<()> {
    db.run(
        &INSERT,
        &[
            s.id.as_str().into(),
            s.token_hash.as_str().into(),
            s.user_id.as_str().into(),
            s.env.as_str().into(),
            s.authenticated_at.into(),
            s.amr.as_str().into(),
            s.created_at.into(),
            s.ip.as_deref().into(),
            s.user_agent.as_deref().into(),
        ],
    )
    .await
}

pub(crate) static LIST: Sql = Sql::new(concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE ",
    of_user!(),
    " ORDER BY s.id"
));

/// A user's sessions, oldest first.
pub(crate) async fn list<D: Db>(db: &mut D, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
    db.all(&LIST, &[user_id.into()], rows::session_record).await
}

pub(crate) static END_ALL: Sql = Sql::new(concat!(
    "DELETE FROM sessions AS s WHERE ",
    of_user!(),
    " AND (?2 IS NULL OR s.id <> ?2)"
));

/// End the user's sessions except `keep`; returns how many ended.
pub(crate) async fn end_all<D: Db>(
    db: &mut D,
    user_id: &str,
    keep: Option<&str>,
) -> StoreResult<u64> {
    db.exec(&END_ALL, &[user_id.into(), keep.into()]).await
}

/// A session with its user and environment, found by `$key`.
macro_rules! session_view {
    ($key:literal) => {
        concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            ", ",
            env_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id \
             JOIN environments e ON e.slug = s.env WHERE ",
            $key
        )
    };
}

static BY_TOKEN: Sql = Sql::new(session_view!("s.token_hash = ?1"));

fn view(row: &dyn super::Row) -> StoreResult<SessionView> {
    Ok(SessionView {
        session: rows::session_record(row)?,
        user: rows::user(row)?,
        environment: rows::environment(row)?,
    })
}

/// The session check in one read: the session, its user and its environment, by the token's
/// hash. (SQLite asks its cache first: `sqlite/readers.rs`.)
pub(crate) async fn by_token<D: Db>(
    db: &mut D,
    token_hash: &TokenHash,
) -> StoreResult<Option<SessionView>> {
    db.one(&BY_TOKEN, &[token_hash.as_str().into()], view).await
}

static BY_ID: Sql = Sql::new(session_view!("s.id = ?1"));

/// The same, by the session's id (an application's code or token names its session).
pub(crate) async fn by_id<D: Db>(db: &mut D, id: &str) -> StoreResult<Option<SessionView>> {
    db.one(&BY_ID, &[id.into()], view).await
}
