//! Authenticator rows on the writer's transaction or an inline reader: the units of work are
//! `sql::authenticators`'.

use latchkey_service::store::{AuthenticatorRecord, NewAuthenticator, StoreResult};
use rusqlite::Connection;

use super::exec::Lite;
use crate::sql::{self, run_now};

pub(super) fn insert(tx: &Connection, a: &NewAuthenticator) -> StoreResult<()> {
    run_now(sql::authenticators::insert(&mut Lite(tx), a))
}

pub(super) fn list(conn: &Connection, user_id: &str) -> StoreResult<Vec<AuthenticatorRecord>> {
    run_now(sql::authenticators::list(&mut Lite(conn), user_id))
}

pub(super) fn advance_step(tx: &Connection, id: &str, step: u64, now: i64) -> StoreResult<bool> {
    run_now(sql::authenticators::advance_step(
        &mut Lite(tx),
        id,
        step,
        now,
    ))
}
