//! Reading PostgreSQL rows back into domain types (the readers are shared with SQLite).

row_readers!(sqlx::postgres::PgRow, sqlx::Postgres);
