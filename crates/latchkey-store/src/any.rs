//! `AnyStore`: the backend chosen at start-up from the database URL (`sqlite://…` or
//! `postgres://…`), so the binary and the web layer are built once, over one store type.
//! Every method forwards to the backend and records how long it took (`/metrics`' store
//! latency histograms, one per operation); on PostgreSQL it runs an operation again after a
//! transient failure where that is safe (`retry`). Nothing here has rules of its own.

use std::{sync::Arc, time::Instant};

use latchkey_core::{
    model::{EnvSlug, Environment, LockoutSettings, User},
    token::TokenHash,
};
use latchkey_service::{
    AuditRecord,
    metrics::StoreLatency,
    store::{
        AdminStore, ApiTokenRecord, AuditQuery, AuthStore, AuthenticatorRecord, Claim,
        Confirmation, CounterKey, EnforceCounts, EnvStats, Failure, FailureOutcome, KeyCheck,
        LoginSubject, LoginTxnView, LoginWrite, ManageStore, NewApiToken, NewAuthenticator,
        NewLoginTxn, NewRecoveryCode, NewSetupToken, NewUser, Proof, SessionRecord, SessionView,
        SetupTokenView, StepAttempt, StepOutcome, StoreResult, UserQuery, UserUpdate,
    },
};

use crate::{PgStore, SqliteStore, sqlite::OpenError};

/// One of the backends, and the latency of its operations.
#[derive(Debug, Clone)]
pub struct AnyStore {
    backend: Backend,
    latency: Arc<StoreLatency>,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Box<SqliteStore>),
    Postgres(PgStore),
}

impl AnyStore {
    /// Open the database a URL names: `postgres://` or `postgresql://` selects PostgreSQL,
    /// anything else is read as `sqlite://PATH` (or a bare path).
    pub async fn open(url: &str, pg_connections: u32) -> Result<Self, OpenError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(PgStore::open(url, pg_connections).await?)
        } else {
            Backend::Sqlite(Box::new(SqliteStore::open(url).await?))
        };
        Ok(Self {
            backend,
            latency: Arc::default(),
        })
    }

    /// Whether this is the embedded SQLite database (a file beside the process).
    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }
}

/// Forward every method of a trait to the backend, timed; `also { … }` holds the trait's
/// methods that are answered here rather than forwarded.
macro_rules! forward {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )* }
     $(also { $($also:tt)* })?) => {
        impl $trait for AnyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    let started = Instant::now();
                    let result = match &self.backend {
                        Backend::Sqlite(s) => s.$name($($arg),*).await,
                        // Transient failures run again where that is safe (`retry`).
                        Backend::Postgres(s) => {
                            let mut attempt = 0;
                            loop {
                                let result = s.$name($($arg),*).await;
                                let Err(e) = &result else { break result };
                                let Some(wait) = crate::retry::delay(stringify!($name), e, attempt) else {
                                    break result;
                                };
                                tracing::warn!(operation = stringify!($name), attempt, error = %e, "running the operation again");
                                self.latency.count_retry(stringify!($name));
                                attempt += 1;
                                tokio::time::sleep(wait).await;
                            }
                        }
                    };
                    self.latency.observe(stringify!($name), started.elapsed());
                    result
                }
            )*
            $($($also)*)?
        }
    };
}

forward!(AdminStore {
    fn ping(&self) -> StoreResult<()>;
    fn claim_key_fingerprint(&self, fingerprint: &str) -> StoreResult<KeyCheck>;
    fn key_fingerprint(&self) -> StoreResult<Option<String>>;
    fn bootstrap(&self, system: &Environment, operator: &NewUser, setup: &NewSetupToken, audit: &[AuditRecord]) -> StoreResult<bool>;
    fn create_environment(&self, env: &Environment, audit: &AuditRecord) -> StoreResult<()>;
    fn get_environment(&self, slug: &EnvSlug) -> StoreResult<Option<Environment>>;
    fn list_environments(&self) -> StoreResult<Vec<Environment>>;
    fn update_environment(&self, env: &Environment, previous: &Environment, audit: &AuditRecord) -> StoreResult<()>;
    fn create_user(&self, user: &NewUser, setup: &NewSetupToken, audit: &AuditRecord) -> StoreResult<()>;
    fn get_user(&self, env: &EnvSlug, id: &str) -> StoreResult<Option<User>>;
    fn find_user_by_email(&self, env: &EnvSlug, email_normalized: &str) -> StoreResult<Option<User>>;
    fn list_users(&self, env: &EnvSlug, query: &UserQuery) -> StoreResult<Vec<User>>;
    fn delete_user(&self, env: &EnvSlug, id: &str, audit: &AuditRecord) -> StoreResult<bool>;
    fn insert_authenticator(&self, authenticator: &NewAuthenticator) -> StoreResult<()>;
    fn list_authenticators(&self, user_id: &str) -> StoreResult<Vec<AuthenticatorRecord>>;
    fn advance_totp_step(&self, authenticator_id: &str, step: u64, now: i64) -> StoreResult<bool>;
    fn append_audit(&self, record: &AuditRecord) -> StoreResult<()>;
    fn list_audit(&self, env: &EnvSlug, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    fn backup_to(&self, path: &std::path::Path) -> StoreResult<()>;
} also {
    fn latency(&self) -> Option<&StoreLatency> {
        Some(&self.latency)
    }
});

forward!(AuthStore {
    fn login_subject(&self, env: &EnvSlug, email_normalized: &str) -> StoreResult<Option<LoginSubject>>;
    fn login_txn(&self, token_hash: &TokenHash, now: i64) -> StoreResult<Option<LoginTxnView>>;
    fn set_pending_secret(&self, txn_id: &str, sealed: &[u8], now: i64) -> StoreResult<()>;
    fn write_login(&self, write: &LoginWrite) -> StoreResult<()>;
    fn setup_token(&self, token_hash: &TokenHash, now: i64) -> StoreResult<Option<SetupTokenView>>;
    fn begin_setup_login(&self, txn: &NewLoginTxn, now: i64) -> StoreResult<()>;
    fn claim_attempt(&self, key: &CounterKey, settings: &LockoutSettings, now: i64) -> StoreResult<Claim>;
    fn record_failure(&self, failure: &Failure<'_>) -> StoreResult<FailureOutcome>;
    fn locked_until(&self, key: &CounterKey, now: i64) -> StoreResult<Option<i64>>;
    fn reset_counter(&self, key: &CounterKey) -> StoreResult<()>;
    fn ip_failures(&self, env: &EnvSlug, ip: &str, now: i64) -> StoreResult<(u32, i64)>;
    fn record_ip_failure(&self, env: &EnvSlug, ip: &str, now: i64, audit: Option<&AuditRecord>) -> StoreResult<()>;
    fn session_by_token(&self, token_hash: &TokenHash) -> StoreResult<Option<SessionView>>;
    fn touch_session(&self, id: &str, now: i64) -> StoreResult<()>;
    fn end_session(&self, user_id: &str, id: &str, audit: Option<&AuditRecord>) -> StoreResult<bool>;
    fn list_sessions(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>>;
    fn change_password(&self, user_id: &str, hash: &str, keep_session: Option<&str>, now: i64, audit: &AuditRecord) -> StoreResult<u64>;
    fn confirm_authenticator(&self, confirmation: &Confirmation<'_>) -> StoreResult<()>;
    fn remove_authenticator(&self, user_id: &str, authenticator_id: &str, keep_one: bool, proof: &Proof, now: i64, audit: &AuditRecord) -> StoreResult<()>;
    fn replace_recovery_codes(&self, user_id: &str, codes: &[NewRecoveryCode], proof: &Proof, now: i64, audit: &AuditRecord) -> StoreResult<()>;
    fn consume_proof(&self, user_id: &str, proof: &Proof, now: i64) -> StoreResult<()>;
    fn purge_expired(&self, now: i64) -> StoreResult<u64>;
    fn recovery_codes_remaining(&self, user_id: &str) -> StoreResult<u32>;
    fn has_recovery_code(&self, user_id: &str, hash: &TokenHash) -> StoreResult<bool>;
} also {
    // Not run again here: the attempt owns its judge (the code check, run once), and on
    // PostgreSQL it is several transactions (claim, judge, settle), each its own unit.
    async fn attempt_step(&self, attempt: StepAttempt) -> StoreResult<StepOutcome> {
        let started = Instant::now();
        let result = match &self.backend {
            Backend::Sqlite(s) => s.attempt_step(attempt).await,
            Backend::Postgres(s) => s.attempt_step(attempt).await,
        };
        self.latency.observe("attempt_step", started.elapsed());
        result
    }
});

forward!(ManageStore {
    fn update_user(&self, env: &EnvSlug, id: &str, update: &UserUpdate, now: i64, audit: &[AuditRecord]) -> StoreResult<Option<(User, u64)>>;
    fn reset_password(&self, env: &EnvSlug, user_id: &str, setup: &NewSetupToken, now: i64, audit: &AuditRecord) -> StoreResult<u64>;
    fn reset_mfa(&self, env: &EnvSlug, user_id: &str, audit: &AuditRecord) -> StoreResult<(u64, u64)>;
    fn sign_out(&self, env: &EnvSlug, user_id: &str, audit: &AuditRecord) -> StoreResult<u64>;
    fn enforce_mfa(&self, env: &EnvSlug, all: bool, audit: &AuditRecord) -> StoreResult<EnforceCounts>;
    fn enforce_preview(&self, env: &EnvSlug, all: bool) -> StoreResult<EnforceCounts>;
    fn clear_lockout(&self, env: &EnvSlug, user_id: &str, email_normalized: &str, audit: &AuditRecord) -> StoreResult<bool>;
    fn stats(&self, env: &EnvSlug, now: i64) -> StoreResult<EnvStats>;
    fn create_api_token(&self, token: &NewApiToken, audit: &AuditRecord) -> StoreResult<()>;
    fn list_api_tokens(&self, env: Option<&EnvSlug>) -> StoreResult<Vec<ApiTokenRecord>>;
    fn revoke_api_token(&self, env: Option<&EnvSlug>, id: &str, now: i64, audit: &AuditRecord) -> StoreResult<bool>;
    fn use_api_token(&self, hash: &TokenHash, now: i64) -> StoreResult<Option<ApiTokenRecord>>;
});
