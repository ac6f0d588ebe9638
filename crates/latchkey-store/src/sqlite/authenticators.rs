//! Authenticator rows and the replay guard.

use latchkey_service::store::{AuthenticatorRecord, NewAuthenticator, StoreResult};
use rusqlite::{Connection, params};

use super::lite;
use crate::corrupt;

pub(super) fn insert(tx: &Connection, a: &NewAuthenticator) -> StoreResult<()> {
    let last_step = a
        .last_step
        .map(|s| i64::try_from(s).map_err(|_| corrupt("time step", s)))
        .transpose()?;
    lite::exec(
        tx,
        "INSERT INTO authenticators (id, user_id, label, secret_sealed, algorithm, digits, period, \
         confirmed_at, created_at, last_step) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            a.id,
            a.user_id,
            a.label,
            a.secret_sealed,
            a.params.algorithm().as_str(),
            i64::try_from(a.params.digits().count()).unwrap_or(6),
            i64::from(a.params.period()),
            a.confirmed_at,
            a.created_at,
            last_step,
        ],
    )?;
    Ok(())
}

pub(super) fn list(conn: &Connection, user_id: &str) -> StoreResult<Vec<AuthenticatorRecord>> {
    lite::all(
        conn,
        "SELECT id, user_id, label, secret_sealed, algorithm, digits, period, confirmed_at, \
         last_step, created_at, last_used_at FROM authenticators WHERE user_id = ?1 ORDER BY id",
        [user_id],
        lite::authenticator,
    )
}

/// The conditional update that makes "never twice" hold across requests and nodes: it changes
/// exactly one row when `step` is later than the recorded one, and none otherwise.
pub(super) fn advance_step(tx: &Connection, id: &str, step: u64, now: i64) -> StoreResult<bool> {
    let step = i64::try_from(step).map_err(|_| corrupt("time step", step))?;
    let changed = lite::exec(
        tx,
        "UPDATE authenticators SET last_step = ?2, last_used_at = ?3 \
         WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
        params![id, step, now],
    )?;
    Ok(changed == 1)
}
