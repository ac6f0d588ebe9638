//! Session rows on the writer's transaction: the units of work are `sql::sessions`'. (The
//! session check is `fast.rs`', through the cache.)

use latchkey_service::store::{NewSession, StoreResult};
use rusqlite::Connection;

use super::exec::Lite;
use crate::sql::{self, run_now};

pub(super) fn insert(tx: &Connection, s: &NewSession) -> StoreResult<()> {
    run_now(sql::sessions::insert(&mut Lite(tx), s))
}

/// End the user's sessions except `keep`; returns how many ended.
pub(super) fn end_all(tx: &Connection, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
    run_now(sql::sessions::end_all(&mut Lite(tx), user_id, keep))
}
