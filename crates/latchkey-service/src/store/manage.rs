//! The storage side of administration (SPEC §4): user changes, resets, sign-outs, bulk
//! enforcement, lockout clearing, statistics and API tokens. Each write is one transaction with
//! its audit record; bulk acts are set operations, never a loop of round trips.

use std::future::Future;

use latchkey_core::{
    model::{EnvSlug, Role, User},
    token::TokenHash,
};

use super::{NewSetupToken, StoreResult};
use crate::audit::AuditRecord;

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub role: Option<Role>,
    /// `Some(true)` disables (ending sessions and logins), `Some(false)` enables.
    pub disabled: Option<bool>,
    pub mfa_enforced: Option<bool>,
}

/// What *enforce MFA* did (SPEC §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnforceCounts {
    pub users_marked: u64,
    pub users_signed_out: u64,
    pub sessions_ended: u64,
}

/// An environment's figures (SPEC §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnvStats {
    pub users: u64,
    pub users_with_mfa: u64,
    pub users_mfa_enforced: u64,
    pub active_sessions: u64,
    pub lockouts_24h: u64,
}

/// An API token to store (its hash only). `env: None` is an operator token.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: String,
    pub hash: TokenHash,
    pub env: Option<EnvSlug>,
    pub name: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// A stored API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub id: String,
    pub env: Option<EnvSlug>,
    pub name: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Administration.
pub trait ManageStore: Clone + Send + Sync + 'static {
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

    /// Mark every user of `env` without an authenticator `mfa_enforced` and end their sessions
    /// and logins (everyone's sessions with `all`). The audit record's detail is set to the
    /// counts.
    fn enforce_mfa(
        &self,
        env: &EnvSlug,
        all: bool,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<EnforceCounts>> + Send;

    /// What [`enforce_mfa`](Self::enforce_mfa) would do now, without doing it: the users it
    /// would newly mark, the users who have a session it would end, and those sessions. Read
    /// only; the figures can differ from the real run by whatever happens in between.
    fn enforce_preview(
        &self,
        env: &EnvSlug,
        all: bool,
    ) -> impl Future<Output = StoreResult<EnforceCounts>> + Send;

    /// Forget a user's failure counters (password and second factor). Returns whether any was
    /// there.
    fn clear_lockout(
        &self,
        env: &EnvSlug,
        user_id: &str,
        email_normalized: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn stats(&self, env: &EnvSlug, now: i64) -> impl Future<Output = StoreResult<EnvStats>> + Send;

    fn create_api_token(
        &self,
        token: &NewApiToken,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Tokens of `env`, or operator tokens with `None`; revoked ones included.
    fn list_api_tokens(
        &self,
        env: Option<&EnvSlug>,
    ) -> impl Future<Output = StoreResult<Vec<ApiTokenRecord>>> + Send;

    /// Revoke a token of `env` (`None`: an operator token). Returns whether one was live.
    fn revoke_api_token(
        &self,
        env: Option<&EnvSlug>,
        id: &str,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// A live (unrevoked) token by its hash, its last use recorded (at most once a minute).
    fn use_api_token(
        &self,
        hash: &TokenHash,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<ApiTokenRecord>>> + Send;
}
