//! Users, and what an administrator does to one (SPEC §4): create, change, reset, sign out,
//! unlock, delete.

use std::future::Future;

use super::StoreResult;
use crate::audit::AuditRecord;
use latchkey_core::{model::EnvSlug, model::Role, model::User, model::UserState, token::TokenHash};

/// Why a setup link was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupPurpose {
    Invite,
    Reset,
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

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub role: Option<Role>,
    /// `Some(true)` disables (ending sessions and logins), `Some(false)` enables.
    pub disabled: Option<bool>,
    pub mfa_enforced: Option<bool>,
}

impl SetupPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reset => "reset",
        }
    }
}

/// Users, and what an administrator does to one (SPEC §4).
pub trait UserStore: Clone + Send + Sync + 'static {
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

    /// Apply `update` to a user of `env`; disabling ends their sessions and logins. `None` when
    /// there is no such user. Returns the user after the change and the sessions ended.
    fn update_user(
        &self,
        env: &EnvSlug,
        id: &str,
        update: &UserUpdate,
        now: i64,
        audit: &[AuditRecord],
    ) -> impl Future<Output = StoreResult<Option<(User, u64)>>> + Send;

    /// Reset a password: the hash is voided, a new password is required, sessions and logins
    /// end, older setup links are voided and `setup` is stored. Returns the sessions ended.
    fn reset_password(
        &self,
        env: &EnvSlug,
        user_id: &str,
        setup: &NewSetupToken,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Reset MFA: authenticators (and their replay state), pending enrolments and recovery codes
    /// go, sessions and logins end. Returns (sessions ended, authenticators removed).
    fn reset_mfa(
        &self,
        env: &EnvSlug,
        user_id: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<(u64, u64)>> + Send;

    /// End every session and pending login of a user. Returns the sessions ended.
    fn sign_out(
        &self,
        env: &EnvSlug,
        user_id: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Forget a user's failure counters (password and second factor). Returns whether any was
    /// there.
    fn clear_lockout(
        &self,
        env: &EnvSlug,
        user_id: &str,
        email_normalized: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Delete a user and, by cascade, everything that is theirs. Returns whether one existed.
    fn delete_user(
        &self,
        env: &EnvSlug,
        id: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
