//! Environments: their settings, their figures, and what applies to all of their users at once
//! (enforce MFA).

use std::future::Future;

use super::StoreResult;
use crate::audit::AuditRecord;
use latchkey_core::{model::EnvSlug, model::Environment};

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

/// Environments.
pub trait EnvironmentStore: Clone + Send + Sync + 'static {
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

    fn stats(&self, env: &EnvSlug, now: i64) -> impl Future<Output = StoreResult<EnvStats>> + Send;

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
}
