//! The storage traits: what the use cases need from a database, and nothing about SQL.
//! `Store` is one trait per aggregate, each in the file of its name: the database itself
//! (`database.rs`), environments, users, a user's credentials, logins and their failure
//! counters (a code step's unit of work in `attempt.rs`), sessions, API tokens, the audit
//! log and OpenID Connect's clients, keys, codes and tokens; with the records they take and return.
//!
//! Each write method is a unit of work that the implementation runs as **one** database
//! transaction, audit record included, so a crash never leaves half of a use case behind
//! (SPEC §8, SECURITY R1). Implementations map unique-constraint violations to
//! [`StoreError::Conflict`] and never put SQL or driver text into the other variants' public
//! messages. Timestamps are Unix seconds.

mod api_tokens;
mod attempt;
mod audit;
mod credentials;
mod database;
mod environments;
mod logins;
mod oidc;
mod sessions;
mod users;

pub use api_tokens::*;
pub use attempt::*;
pub use audit::*;
pub use credentials::*;
pub use database::*;
pub use environments::*;
pub use logins::*;
pub use oidc::*;
pub use sessions::*;
pub use users::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (the payload names what, for the client).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or failed; callers fail closed (SECURITY R2). The text is
    /// for the server's log only.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database ended the transaction to break a deadlock or a serialization conflict
    /// (PostgreSQL 40P01, 40001): nothing of it was applied, so it may run again. The store
    /// runs it again a few times before this reaches a caller, who answers 503.
    #[error("transaction aborted by a conflict: {0}")]
    Contended(String),
    /// The connection broke during the operation (or the server ended it). A read may run
    /// again on another connection; whether a write was applied is unknown, so a write is not
    /// repeated. Reaches a caller as 503.
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// The backend cannot do this (the text says what to do instead).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A stored value could not be read back (corruption or a bug); for the log only.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the use cases ask of a database. One implementation per backend; the same test
/// suite runs against each.
pub trait Store:
    DatabaseStore
    + EnvironmentStore
    + UserStore
    + CredentialStore
    + LoginStore
    + SessionStore
    + ApiTokenStore
    + AuditStore
    + OidcStore
{
}

impl<T> Store for T where
    T: DatabaseStore
        + EnvironmentStore
        + UserStore
        + CredentialStore
        + LoginStore
        + SessionStore
        + ApiTokenStore
        + AuditStore
        + OidcStore
{
}
