//! OpenID Connect (SPEC §9): applications (clients), signing keys, authorization requests
//! waiting for a login, codes, access and refresh tokens, and the back-channel logout queue.
//! Tokens and codes belong to the session that issued them: the database deletes them with it,
//! and queues the back-channel logouts in the same transaction (migration 0003).

use std::future::Future;

use super::{SessionView, StoreResult};
use crate::audit::AuditRecord;
use latchkey_core::{model::EnvSlug, token::TokenHash};

/// A confidential client has a secret; a public one (a browser or native app) has none and
/// must use PKCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Confidential,
    Public,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confidential" => Some(Self::Confidential),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub env: EnvSlug,
    pub client_id: String,
    pub name: String,
    pub client_type: ClientType,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<TokenHash>,
    pub require_pkce: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub require_mfa: bool,
    /// Seconds.
    pub access_token_ttl: i64,
    pub refresh_token: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A signing key as stored: the private key sealed with the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub env: EnvSlug,
    pub generation: i64,
    pub private_sealed: Vec<u8>,
    /// The public JWK's JSON.
    pub public_jwk: String,
    pub created_at: i64,
    /// When it starts signing (a rotation publishes it first).
    pub signs_from: i64,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("env", &self.env)
            .field("generation", &self.generation)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

/// An authorization request waiting for its browser to sign in; found by its handle's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub handle_hash: TokenHash,
    pub env: EnvSlug,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub max_age: Option<i64>,
    /// `prompt=login`: only a login after `created_at` satisfies it.
    pub fresh_login: bool,
    /// A second factor is needed (a `require_mfa` client or `acr_values`).
    pub needs_mfa: bool,
    pub login_hint: Option<String>,
    /// The session the browser had when the request began (never the one that satisfies a
    /// request for a new login).
    pub prior_session: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization code (its hash), with what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub code_hash: TokenHash,
    pub env: EnvSlug,
    pub client_id: String,
    pub session_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The family of tokens the code issues (revoked if the code comes twice).
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(Self::Access),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// An access or refresh token (its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_hash: TokenHash,
    pub kind: TokenKind,
    pub family_id: String,
    pub env: EnvSlug,
    pub client_id: String,
    pub session_id: String,
    pub user_id: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// A token with the session that issued it (its user and environment): a token is good only
/// while that session is.
#[derive(Debug, Clone)]
pub struct TokenView {
    pub token: TokenRecord,
    pub session: SessionView,
}

/// A back-channel logout to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutJob {
    pub id: i64,
    pub env: EnvSlug,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub uri: String,
    pub attempts: i64,
}

/// OpenID Connect's storage.
pub trait OidcStore: Clone + Send + Sync + 'static {
    /// Register a client; `Conflict` if its id is taken in the environment.
    fn create_client(
        &self,
        client: &ClientRecord,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn list_clients(
        &self,
        env: &EnvSlug,
    ) -> impl Future<Output = StoreResult<Vec<ClientRecord>>> + Send;

    fn get_client(
        &self,
        env: &EnvSlug,
        client_id: &str,
    ) -> impl Future<Output = StoreResult<Option<ClientRecord>>> + Send;

    /// Replace a client's settings (and secret hash); whether it existed.
    fn update_client(
        &self,
        client: &ClientRecord,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Delete a client, its codes, tokens and requests; whether it existed.
    fn delete_client(
        &self,
        env: &EnvSlug,
        client_id: &str,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The environment's signing keys, oldest first.
    fn signing_keys(
        &self,
        env: &EnvSlug,
    ) -> impl Future<Output = StoreResult<Vec<SigningKeyRecord>>> + Send;

    /// Add a key; `Conflict` if its generation exists (another node made it first).
    fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: Option<&AuditRecord>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn save_auth_request(
        &self,
        request: &AuthRequest,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// A waiting request that has not expired at `now`.
    fn auth_request(
        &self,
        handle_hash: &TokenHash,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<AuthRequest>>> + Send;

    /// Store a code, finishing the waiting request `handle_hash` (if any) in the same
    /// transaction; `false` if that request was already finished or expired.
    fn issue_code(
        &self,
        handle_hash: Option<&TokenHash>,
        code: &CodeRecord,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn code(
        &self,
        code_hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<Option<CodeRecord>>> + Send;

    /// Use a code once and store the tokens it issues; `false` if it was used or expired (the
    /// caller then revokes its family).
    fn exchange_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        tokens: &[TokenRecord],
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// A token with its session, user and environment.
    fn oidc_token(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<Option<TokenView>>> + Send;

    /// Mark a refresh token used and store its successors; `false` if it was already used.
    fn rotate_refresh(
        &self,
        old_hash: &TokenHash,
        now: i64,
        tokens: &[TokenRecord],
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Revoke every token of a family; how many there were.
    fn revoke_family(
        &self,
        family_id: &str,
        audit: Option<&AuditRecord>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Revoke one token.
    fn revoke_token(&self, token_hash: &TokenHash) -> impl Future<Output = StoreResult<()>> + Send;

    /// Whether a logout is due at `now` (a read: senders poll it).
    fn logout_due(&self, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Claim up to `limit` due logouts for `lease` seconds (another node skips them).
    fn claim_logouts(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<LogoutJob>>> + Send;

    /// A logout was delivered (or given up, with the audit record saying so).
    fn finish_logout(
        &self,
        id: i64,
        audit: Option<&AuditRecord>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// A delivery failed: try again at `next_attempt_at`.
    fn retry_logout(
        &self,
        id: i64,
        next_attempt_at: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
