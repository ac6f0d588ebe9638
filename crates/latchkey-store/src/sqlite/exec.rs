//! [`Db`] on `rusqlite`: the writer's transaction or an inline reader. Every call is
//! synchronous, so each future is ready when made (`sql::run_now` polls it once). Statements
//! are prepared once per connection, and a row's columns are found by name through the
//! statement's [`Positions`].

use std::{
    collections::HashMap,
    future::{Future, ready},
    sync::{Arc, LazyLock, RwLock},
};

use latchkey_service::{StoreError, store::StoreResult};
use rusqlite::{
    Connection, Rows, ToSql, params_from_iter,
    types::{ToSqlOutput, ValueRef},
};

use crate::sql::{Db, Queue, Row, Sql, Value};

/// A `rusqlite` connection as a [`Db`].
pub(crate) struct Lite<'c>(pub &'c Connection);

/// A statement's columns by name → position, learnt at its first run: finding each column by
/// asking SQLite every name (what `rusqlite` does for a name) was half of a session check's CPU.
type Positions = HashMap<Box<str>, usize, foldhash::fast::FixedState>;

/// Every statement's [`Positions`], by its text's address (statements are `'static`).
static POSITIONS: LazyLock<RwLock<HashMap<usize, Arc<Positions>>>> = LazyLock::new(RwLock::default);

/// A row and its statement's [`Positions`].
struct Named<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    positions: &'a Positions,
}

/// Run a query (prepared once per connection) and hand its rows to `read`, with the columns'
/// positions.
fn rows<T>(
    conn: &Connection,
    sql: &'static Sql,
    args: &[Value<'_>],
    read: impl FnOnce(Rows<'_>, &Positions) -> StoreResult<T>,
) -> StoreResult<T> {
    let text = sql.sqlite();
    let mut stmt = conn.prepare_cached(text).map_err(lite_err)?;
    let key = text.as_ptr() as usize;
    let known = POSITIONS.read().ok().and_then(|m| m.get(&key).cloned());
    let positions = known.unwrap_or_else(|| {
        let mut learnt = Positions::default();
        for (i, name) in stmt.column_names().into_iter().enumerate() {
            // A name twice reads the first, as `rusqlite` and sqlx do.
            learnt.entry(Box::from(name)).or_insert(i);
        }
        let learnt = Arc::new(learnt);
        if let Ok(mut m) = POSITIONS.write() {
            m.insert(key, Arc::clone(&learnt));
        }
        learnt
    });
    let rows = stmt.query(params_from_iter(args)).map_err(lite_err)?;
    read(rows, &positions)
}

/// A `rusqlite` error as the service sees it, as `crate::map_err` does for sqlx: a duplicate is
/// a conflict, a missing reference is not found, a broken rule or an unreadable value is
/// corruption, anything else (a busy or failed database) is unavailable.
pub(crate) fn lite_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::{Error, ffi};
    let text = e.to_string();
    match e {
        Error::SqliteFailure(f, message) => match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                StoreError::Conflict("already exists")
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound,
            ffi::SQLITE_CONSTRAINT_CHECK => StoreError::Corrupt(format!(
                "a value broke a database rule: {}",
                message.as_deref().unwrap_or("CHECK")
            )),
            _ => StoreError::Unavailable(text),
        },
        Error::QueryReturnedNoRows => StoreError::NotFound,
        Error::FromSqlConversionFailure(..)
        | Error::InvalidColumnType(..)
        | Error::InvalidColumnName(_)
        | Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(text),
        _ => StoreError::Unavailable(text),
    }
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Int(Some(v)) => ValueRef::Integer(v),
            Value::Text(Some(v)) => ValueRef::Text(v.as_bytes()),
            Value::Blob(Some(v)) => ValueRef::Blob(v),
            Value::Bool(Some(v)) => ValueRef::Integer(i64::from(v)),
            Value::Int(None) | Value::Text(None) | Value::Blob(None) | Value::Bool(None) => {
                ValueRef::Null
            }
        }))
    }
}

impl Named<'_, '_> {
    fn value<T: rusqlite::types::FromSql>(&self, column: &str) -> StoreResult<Option<T>> {
        let at = self.positions.get(column).copied();
        let at =
            at.ok_or_else(|| StoreError::Corrupt(format!("no column {column} in the query")))?;
        self.row.get(at).map_err(lite_err)
    }
}

impl Row for Named<'_, '_> {
    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.value(column)
    }
    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        self.value(column)
    }
    fn blob(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        self.value(column)
    }
    fn boolean(&self, column: &str) -> StoreResult<Option<bool>> {
        Ok(self.int(column)?.map(|v| v != 0))
    }
}

impl Db for Lite<'_> {
    fn exec(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
    ) -> impl Future<Output = StoreResult<u64>> {
        ready(
            self.0
                .prepare_cached(sql.sqlite())
                .and_then(|mut s| s.execute(params_from_iter(args)))
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
                .map_err(lite_err),
        )
    }

    fn one<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        read: impl FnOnce(&dyn Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Option<T>>> {
        ready(rows(self.0, sql, args, |mut rows, positions| {
            match rows.next().map_err(lite_err)? {
                Some(row) => read(&Named { row, positions }).map(Some),
                None => Ok(None),
            }
        }))
    }

    fn all<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        mut read: impl FnMut(&dyn Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Vec<T>>> {
        ready(rows(self.0, sql, args, |mut rows, positions| {
            let mut found = Vec::new();
            while let Some(row) = rows.next().map_err(lite_err)? {
                found.push(read(&Named { row, positions })?);
            }
            Ok(found)
        }))
    }

    fn lock_user(&mut self, _user_id: &str) -> impl Future<Output = StoreResult<()>> {
        // One writer runs every transaction: nothing to lock.
        ready(Ok(()))
    }

    fn lock_user_to_delete(&mut self, _user_id: &str) -> impl Future<Output = StoreResult<()>> {
        ready(Ok(()))
    }

    fn serialize(&mut self, _queue: Queue) -> impl Future<Output = StoreResult<()>> {
        ready(Ok(()))
    }
}
