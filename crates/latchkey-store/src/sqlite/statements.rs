//! The statement helpers on `rusqlite` under SQLite's executor (`exec.rs`): `exec`, `one`,
//! `all`, each prepared once per connection, and `lite_err`, which maps a `rusqlite` error as
//! `crate::map_err` maps sqlx's.

use latchkey_service::{StoreError, store::StoreResult};
use rusqlite::{Connection, Params, Row};

/// A `rusqlite` error as the service sees it, as `crate::map_err` does for sqlx: a duplicate is
/// a conflict, a missing reference is not found, a broken rule or an unreadable value is
/// corruption, anything else (a busy or failed database) is unavailable.
pub(super) fn lite_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict("already exists")
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound
        }
        rusqlite::Error::SqliteFailure(f, ref message)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_CHECK =>
        {
            StoreError::Corrupt(format!(
                "a value broke a database rule: {}",
                message.as_deref().unwrap_or("CHECK")
            ))
        }
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::InvalidColumnName(_)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Run one statement (prepared once per connection) and return the rows it changed.
pub(super) fn exec(conn: &Connection, sql: &str, params: impl Params) -> StoreResult<u64> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
        .map_err(lite_err)
}

/// The first row of a query, read by `read`.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite_err)?;
    let mut rows = stmt.query(params).map_err(lite_err)?;
    match rows.next().map_err(lite_err)? {
        Some(row) => read(row).map(Some),
        None => Ok(None),
    }
}

/// Every row of a query, each read by `read`.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut read: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite_err)?;
    let mut rows = stmt.query(params).map_err(lite_err)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(lite_err)? {
        found.push(read(row)?);
    }
    Ok(found)
}
