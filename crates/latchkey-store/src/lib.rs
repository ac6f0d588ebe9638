//! Latchkey's storage: the units of work, written once over a small executor (`sql/`), and
//! the implementations of `latchkey_service::store::Store` that run them — `SqliteStore`
//! (`sqlite/`), `PgStore` (`postgres/`), and `AnyStore`, the one a database URL selects — with
//! their migrations.
//!
//! The only crate that knows SQL. Each write method runs as one transaction; unique-constraint
//! violations become `StoreError::Conflict`; a deadlock or serialization failure
//! `StoreError::Contended` and a broken connection `StoreError::Disconnected` (run again where
//! safe: `retry.rs`); other driver errors `StoreError::Unavailable`, with the cause kept for
//! the log. Nothing here ever sees a secret in clear: tokens arrive as
//! hashes and TOTP secrets sealed.

mod any_store;
pub mod postgres;
mod retry;
mod sql;
pub mod sqlite;
mod stores;

use latchkey_service::StoreError;

pub use any_store::AnyStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Map a driver error to the storage boundary's error.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("already exists")
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        // A CHECK the service should have enforced first: a bug, not an outage (R2, R3).
        sqlx::Error::Database(db) if db.is_check_violation() => {
            StoreError::Corrupt(format!("a value broke a database rule: {}", db.message()))
        }
        // PostgreSQL rolled the transaction back to break a deadlock or a serialization
        // conflict: safe to run again (`retry`).
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")) => {
            StoreError::Contended(db.message().to_owned())
        }
        // The server ended the connection (class 08, or 57P01–57P03: an administrator, a
        // crash, a restart).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }) =>
        {
            StoreError::Disconnected(db.message().to_owned())
        }
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => StoreError::Disconnected(e.to_string()),
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A stored value that does not parse back: corruption or a bug.
pub(crate) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} is invalid: {value}"))
}
