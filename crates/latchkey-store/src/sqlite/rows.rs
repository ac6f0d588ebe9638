//! Reading SQLite rows back into domain types (the readers are shared with PostgreSQL).

row_readers!(sqlx::sqlite::SqliteRow, sqlx::Sqlite);
