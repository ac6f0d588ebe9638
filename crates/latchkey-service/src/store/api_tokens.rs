//! API tokens (SPEC §5): issued, listed, revoked, and used.

use std::future::Future;

use super::StoreResult;
use crate::audit::AuditRecord;
use latchkey_core::{model::EnvSlug, token::TokenHash};

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

/// API tokens (SPEC §5).
pub trait ApiTokenStore: Clone + Send + Sync + 'static {
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

    /// A live (unrevoked) token by its hash.
    fn find_api_token(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<Option<ApiTokenRecord>>> + Send;

    /// Record a token's use at `now`.
    fn mark_api_token_used(
        &self,
        id: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
