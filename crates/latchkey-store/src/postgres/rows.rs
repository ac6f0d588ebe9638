//! Reading PostgreSQL rows back into domain types (the readers are shared with SQLite).

#![allow(dead_code)] // every reader is expanded; not every one is read through sqlx

row_readers!(sqlx::postgres::PgRow, sqlx::Postgres);
