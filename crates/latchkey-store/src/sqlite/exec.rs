//! [`Db`] on `rusqlite`: the writer's transaction or an inline reader. Every call is
//! synchronous, so each future is ready when made (`sql::run_now` polls it once).

use std::future::{Future, ready};

use latchkey_service::store::StoreResult;
use rusqlite::{
    Connection, ToSql, params_from_iter,
    types::{ToSqlOutput, ValueRef},
};

use super::statements::{self, lite_err};
use crate::sql::{Db, Queue, Row, Sql, Value};

/// A `rusqlite` connection as a [`Db`].
pub(super) struct Lite<'c>(pub &'c Connection);

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

impl Row for rusqlite::Row<'_> {
    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.get(column).map_err(lite_err)
    }

    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        self.get(column).map_err(lite_err)
    }

    fn blob(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        self.get(column).map_err(lite_err)
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
        ready(statements::exec(
            self.0,
            sql.sqlite(),
            params_from_iter(args),
        ))
    }

    fn one<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        read: impl FnOnce(&dyn Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Option<T>>> {
        ready(statements::one(
            self.0,
            sql.sqlite(),
            params_from_iter(args),
            |row| read(row),
        ))
    }

    fn all<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        mut read: impl FnMut(&dyn Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Vec<T>>> {
        ready(statements::all(
            self.0,
            sql.sqlite(),
            params_from_iter(args),
            |row| read(row),
        ))
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
