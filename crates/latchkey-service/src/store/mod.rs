//! The storage traits: what the use cases need from a database, and nothing about SQL.
//! `Store` is `AdminStore` (here: environments, users, authenticators, the audit log, the
//! sealing key's fingerprint, backups), `AuthStore` (`auth.rs`; a code step's unit of work in
//! `attempt.rs`) and `ManageStore` (`manage.rs`), with the records they take and return.
//!
//! Each write method is a unit of work that the implementation runs as **one** database
//! transaction, audit record included, so a crash never leaves half of a use case behind
//! (SPEC §8, SECURITY R1). Implementations map unique-constraint violations to
//! [`StoreError::Conflict`] and never put SQL or driver text into the other variants' public
//! messages. Timestamps are Unix seconds.

use std::future::Future;

use latchkey_core::{
    model::{EnvSlug, Environment, Role, User, UserState},
    token::TokenHash,
    totp::TotpParams,
};

use crate::audit::AuditRecord;

mod attempt;
mod auth;
mod manage;

pub use attempt::*;
pub use auth::*;
pub use manage::*;

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

/// What the database said about the sealing key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The database had none; this key's is now recorded.
    Recorded,
    /// The database was made with this key.
    Matches,
    /// The database was made with another key, whose fingerprint this is.
    Mismatch { recorded: String },
}

impl KeyCheck {
    /// The answer of a claim that inserted `fingerprint` unless one was recorded (`inserted`
    /// tells whether it was), and then read back what is recorded.
    pub fn after_claim(inserted: bool, recorded: String, fingerprint: &str) -> Self {
        if inserted {
            Self::Recorded
        } else if recorded == fingerprint {
            Self::Matches
        } else {
            Self::Mismatch { recorded }
        }
    }
}

/// Why a setup link was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupPurpose {
    Invite,
    Reset,
}

impl SetupPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reset => "reset",
        }
    }
}

/// A setup-link token to store (only its hash).
#[derive(Debug, Clone)]
pub struct NewSetupToken {
    pub id: String,
    pub user_id: String,
    pub hash: TokenHash,
    pub purpose: SetupPurpose,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A user to insert, with the password hash when one is already known (never for invites).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user: User,
    pub password_hash: Option<String>,
}

/// A TOTP authenticator to insert; `confirmed_at: None` is a pending enrolment (SECURITY E3).
#[derive(Debug, Clone)]
pub struct NewAuthenticator {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub secret_sealed: Vec<u8>,
    pub params: TotpParams,
    pub confirmed_at: Option<i64>,
    /// The step of the code that confirmed it, burnt at once (SECURITY T4).
    pub last_step: Option<u64>,
    pub created_at: i64,
}

/// A stored authenticator.
#[derive(Debug, Clone)]
pub struct AuthenticatorRecord {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub secret_sealed: Vec<u8>,
    pub params: TotpParams,
    pub confirmed_at: Option<i64>,
    pub last_step: Option<u64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Whether a user has a confirmed authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaFilter {
    Enrolled,
    NotEnrolled,
}

/// A page of users: filters, then users whose id sorts after `after`, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub mfa: Option<MfaFilter>,
    pub role: Option<Role>,
    pub state: Option<UserState>,
    /// Case-insensitive substring of the email.
    pub email_contains: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
}

/// A page of audit events, newest first, before the event id `before`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub kind: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<String>,
    pub limit: u32,
}

/// Everything the use cases ask of a database. One implementation per backend; the same test
/// suite runs against each. Split by aggregate: [`AdminStore`] (environments, users, audit,
/// the database itself), [`AuthStore`] (logins, sessions, counters, credentials) and
/// [`ManageStore`] (administration).
pub trait Store: AdminStore + AuthStore + ManageStore {}

impl<T: AdminStore + AuthStore + ManageStore> Store for T {}

/// Environments, users, the audit log and the database itself.
pub trait AdminStore: Clone + Send + Sync + 'static {
    /// The database answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// The latency of each storage operation, where the store measures it (`GET /metrics`).
    fn latency(&self) -> Option<&crate::metrics::StoreLatency> {
        None
    }

    /// Compare the sealing key's fingerprint with the one recorded, recording it when there is
    /// none yet.
    fn claim_key_fingerprint(
        &self,
        fingerprint: &str,
    ) -> impl Future<Output = StoreResult<KeyCheck>> + Send;

    /// Whether the key fingerprint has been recorded (the database has been initialised).
    fn key_fingerprint(&self) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// First start: create `system` and its first operator with a setup link, unless `system`
    /// exists. Returns whether it created them.
    fn bootstrap(
        &self,
        system: &Environment,
        operator: &NewUser,
        setup: &NewSetupToken,
        audit: &[AuditRecord],
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn create_environment(
        &self,
        env: &Environment,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_environment(
        &self,
        slug: &EnvSlug,
    ) -> impl Future<Output = StoreResult<Option<Environment>>> + Send;

    fn list_environments(&self) -> impl Future<Output = StoreResult<Vec<Environment>>> + Send;

    /// Replace an environment's settings (the slug and `created_at` stay), provided they are
    /// still `previous`; `Conflict` when another change came first.
    fn update_environment(
        &self,
        env: &Environment,
        previous: &Environment,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Insert a user and their first setup link (voiding none: the user is new).
    fn create_user(
        &self,
        user: &NewUser,
        setup: &NewSetupToken,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_user(
        &self,
        env: &EnvSlug,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send;

    /// Look a user up by the normalised email.
    fn find_user_by_email(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> impl Future<Output = StoreResult<Option<User>>> + Send;

    fn list_users(
        &self,
        env: &EnvSlug,
        query: &UserQuery,
    ) -> impl Future<Output = StoreResult<Vec<User>>> + Send;

    /// Delete a user and, by cascade, everything that is theirs. Returns whether one existed.
    fn delete_user(
        &self,
        env: &EnvSlug,
        id: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn insert_authenticator(
        &self,
        authenticator: &NewAuthenticator,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn list_authenticators(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<AuthenticatorRecord>>> + Send;

    /// Record `step` as the authenticator's last accepted step if, and only if, it is later
    /// than the one recorded (`docs/ARCHITECTURE.md`, Conventions 7: one conditional update).
    /// Returns whether it changed a row; `false` means another request got there first, or the
    /// step was not later.
    fn advance_totp_step(
        &self,
        authenticator_id: &str,
        step: u64,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn append_audit(&self, record: &AuditRecord) -> impl Future<Output = StoreResult<()>> + Send;

    fn list_audit(
        &self,
        env: &EnvSlug,
        query: &AuditQuery,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;

    /// Write a consistent copy of the whole database to `path` (which must not exist), while
    /// the database stays in use.
    fn backup_to(&self, path: &std::path::Path) -> impl Future<Output = StoreResult<()>> + Send;
}
