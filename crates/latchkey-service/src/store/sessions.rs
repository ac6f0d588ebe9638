//! Sessions: the check every request makes, activity, listing and ending them.

use std::future::Future;

use super::StoreResult;
use crate::audit::AuditRecord;
use latchkey_core::{model::EnvSlug, model::Environment, model::User, token::TokenHash};

/// A session to insert (only the token's hash is stored).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub token_hash: TokenHash,
    pub user_id: String,
    pub env: EnvSlug,
    pub authenticated_at: i64,
    pub amr: String,
    pub created_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub env: EnvSlug,
    pub authenticated_at: i64,
    pub amr: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A session with its user and environment, as a session check needs them.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: SessionRecord,
    pub user: User,
    pub environment: Environment,
}

/// Sessions.
pub trait SessionStore: Clone + Send + Sync + 'static {
    /// A session by its token's hash, with its user and environment.
    fn session_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<Option<SessionView>>> + Send;

    /// A session by its id, with its user and environment.
    fn session_by_id(
        &self,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<SessionView>>> + Send;

    /// Record use of a session (written at most once a minute by the caller).
    fn touch_session(&self, id: &str, now: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// End one session of `user_id`; `false` if there was none.
    fn end_session(
        &self,
        user_id: &str,
        id: &str,
        audit: Option<&AuditRecord>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn list_sessions(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<SessionRecord>>> + Send;
}
