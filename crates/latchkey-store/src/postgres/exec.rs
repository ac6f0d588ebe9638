//! [`Db`] on PostgreSQL: a pooled connection, or a transaction's.

use latchkey_service::store::StoreResult;
use sqlx::{
    PgConnection, Postgres, Row as _,
    postgres::{PgArguments, PgRow},
    query::Query,
};

use crate::{
    map_err,
    sql::{Db, Queue, Row, Sql, Value},
};

/// A PostgreSQL connection (a transaction derefs to one) as a [`Db`].
pub(crate) struct Pg<'c>(pub &'c mut PgConnection);

fn bind<'q>(sql: &'static Sql, args: &[Value<'q>]) -> Query<'q, Postgres, PgArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.postgres()));
    for arg in args {
        query = match *arg {
            Value::Int(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
        };
    }
    query
}

impl Row for PgRow {
    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        // BIGINT columns, and the INTEGER of a literal or an aggregate.
        match self.try_get::<Option<i64>, _>(column) {
            Ok(v) => Ok(v),
            Err(sqlx::Error::ColumnDecode { .. }) => self
                .try_get::<Option<i32>, _>(column)
                .map(|v| v.map(i64::from))
                .map_err(map_err),
            Err(e) => Err(map_err(e)),
        }
    }

    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        self.try_get(column).map_err(map_err)
    }

    fn blob(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(column).map_err(map_err)
    }

    fn boolean(&self, column: &str) -> StoreResult<Option<bool>> {
        self.try_get(column).map_err(map_err)
    }
}

impl Db for Pg<'_> {
    async fn exec(&mut self, sql: &'static Sql, args: &[Value<'_>]) -> StoreResult<u64> {
        Ok(bind(sql, args)
            .execute(&mut *self.0)
            .await
            .map_err(map_err)?
            .rows_affected())
    }

    async fn one<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        read: impl FnOnce(&dyn Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = bind(sql, args)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(map_err)?;
        row.as_ref().map(|r| read(r)).transpose()
    }

    async fn all<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        mut read: impl FnMut(&dyn Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = bind(sql, args)
            .fetch_all(&mut *self.0)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| read(r)).collect()
    }

    async fn lock_user_to_delete(&mut self, user_id: &str) -> StoreResult<()> {
        static LOCK: Sql = Sql::new("SELECT 1 FROM users WHERE id = ?1 FOR UPDATE");
        self.one(&LOCK, &[user_id.into()], |_| Ok(()))
            .await
            .map(|_| ())
    }

    async fn serialize(&mut self, queue: Queue) -> StoreResult<()> {
        static ADVISORY: Sql = Sql::new("SELECT pg_advisory_xact_lock(?1)");
        self.exec(&ADVISORY, &[queue.key().into()])
            .await
            .map(|_| ())
    }

    async fn lock_user(&mut self, user_id: &str) -> StoreResult<()> {
        static LOCK: Sql = Sql::new("SELECT 1 FROM users WHERE id = ?1 FOR NO KEY UPDATE");
        self.one(&LOCK, &[user_id.into()], |_| Ok(()))
            .await
            .map(|_| ())
    }
}
