//! Reading SQLite rows back into domain types (the readers are shared with PostgreSQL), for the
//! reads made through sqlx (lists and counts); the others read through `lite.rs`.

#![allow(dead_code)] // every reader is expanded; not every one is read through sqlx

row_readers!(sqlx::sqlite::SqliteRow, sqlx::Sqlite);
