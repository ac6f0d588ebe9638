//! The use cases' errors. The web layer maps each to an RFC 9457 problem with a stable code;
//! the CLI prints the message. Messages are for the person who asked: they never carry SQL,
//! driver text or a secret (internal causes go to the log through [`ServiceError::Unavailable`]
//! and [`ServiceError::Internal`], whose public text is generic).

use latchkey_core::{entropy::EntropyError, model::InvalidInput, password::PasswordError};

use crate::{hashing::Busy, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that cannot be what it claims (400 `invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// A new password that the rules refuse, with the reason (400 `weak_password`).
    #[error("{0}")]
    WeakPassword(String),
    /// No such thing, or not visible to the caller (404 `not_found`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule (409 `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// The act is not allowed by policy (409 with the given code).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// Unknown email, wrong password or disabled user: one answer for all (401, SECURITY P7).
    #[error("the email or password is not correct")]
    InvalidCredentials,
    /// A well-formed second factor that is wrong, replayed or used (401, SECURITY T5).
    #[error("the code is not correct")]
    InvalidCode,
    /// Locked or throttled: nothing was evaluated (429 with `Retry-After`).
    #[error("too many attempts; try again in {retry_after} seconds")]
    TooManyAttempts { retry_after: u64 },
    /// The login transaction is unknown, expired, ended or of another environment (401).
    #[error("this login has expired; start again with your email and password")]
    LoginExpired,
    /// The setup link is used, expired or superseded (410).
    #[error("this setup link has expired or was already used; ask an admin for a new one")]
    LinkExpired,
    /// The login is at another step (409 `invalid_step`).
    #[error("this login is at the `{0}` step")]
    WrongStep(&'static str),
    /// No valid session or token (401).
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The hashing pool is saturated (503 with `Retry-After`).
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// The database cannot be used (503); the cause is logged, not shown.
    #[error("the database is unavailable")]
    Unavailable(String),
    /// A bug or corruption (500); the cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what.to_owned()),
            StoreError::NotFound => Self::NotFound("record"),
            StoreError::Unavailable(cause)
            | StoreError::Contended(cause)
            | StoreError::Disconnected(cause) => Self::Unavailable(cause),
            StoreError::Corrupt(cause) => Self::Internal(cause),
            StoreError::Unsupported(what) => Self::Invalid(what.to_owned()),
        }
    }
}

impl From<InvalidInput> for ServiceError {
    fn from(e: InvalidInput) -> Self {
        Self::Invalid(e.0)
    }
}

impl From<Busy> for ServiceError {
    fn from(_: Busy) -> Self {
        Self::Busy
    }
}

impl From<EntropyError> for ServiceError {
    fn from(e: EntropyError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<PasswordError> for ServiceError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Weak(reason) => Self::WeakPassword(reason),
            PasswordError::Empty | PasswordError::TooLong => Self::Invalid(e.to_string()),
            PasswordError::Hashing => Self::Internal(e.to_string()),
        }
    }
}
