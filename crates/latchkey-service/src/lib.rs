//! Latchkey's use cases: what a user, an admin or an operator can do, over the storage, clock
//! and hashing abstractions. Every write is one store call, hence one database transaction.
//!
//! Knows nothing of HTTP or SQL. Never logs a secret: credential paths are instrumented with
//! `skip_all` and name only the environment and ids.

pub mod account;
pub mod admin;
pub mod audit;
pub mod authz;
pub mod bootstrap;
pub mod clock;
pub mod environments;
pub mod error;
pub mod factors;
pub mod hashing;
pub mod login;
pub mod metrics;
pub mod oidc;
pub mod session;
pub mod store;
pub mod users;

use std::sync::Arc;

use latchkey_core::{
    HumanDuration, model::EnvSlug, password::HashCost, sealing::Keyring, token::Token,
};

pub use audit::{Actor, AuditRecord, AuditType, Caller, DeviceCookie, Origin, Outcome};
pub use clock::{Clock, SystemClock, TestClock};
pub use error::{ServiceError, ServiceResult};
pub use hashing::HashPool;
pub use store::{KeyCheck, Store, StoreError};

/// Settings the use cases need; the binary builds them from the validated configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Base of every link Latchkey hands out, without a trailing slash.
    pub public_url: String,
    /// Lifetime of an invitation's setup link (SPEC §4.2: 7 days).
    pub invite_ttl: HumanDuration,
    /// Lifetime of a password reset's setup link (SPEC §4.3: 24 hours).
    pub reset_ttl: HumanDuration,
    pub hash_cost: HashCost,
    /// Lifetime of a login transaction between steps (SPEC §1: 5 minutes).
    pub login_ttl: HumanDuration,
    /// Hashes computed at once (the pool's size).
    pub hash_workers: usize,
    /// Hash requests admitted (running or waiting) before the pool answers busy.
    pub hash_queue: usize,
}

impl ServiceConfig {
    /// Defaults for a given public URL: 7-day invitations, 24-hour resets, OWASP's argon2id
    /// minimum, one hashing worker per core.
    pub fn new(public_url: &str) -> Self {
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            invite_ttl: HumanDuration::from_secs(7 * 86_400).unwrap_or_else(|_| unreachable!()),
            reset_ttl: HumanDuration::from_secs(86_400).unwrap_or_else(|_| unreachable!()),
            hash_cost: HashCost::default(),
            login_ttl: HumanDuration::from_secs(300).unwrap_or_else(|_| unreachable!()),
            hash_workers: workers,
            hash_queue: workers * 32,
        }
    }
}

/// A setup link handed to an admin (or printed by the CLI) once. The token inside is a secret,
/// and so is the URL that carries it: `Debug` shows neither.
#[derive(Clone)]
pub struct SetupLink {
    pub token: Token,
    pub url: String,
    pub expires_at: i64,
    pub valid_for: HumanDuration,
}

impl std::fmt::Debug for SetupLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupLink")
            .field("url", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("valid_for", &self.valid_for)
            .finish_non_exhaustive()
    }
}

/// The use cases, over a store `S`.
#[derive(Clone)]
pub struct Service<S> {
    store: S,
    clock: Arc<dyn Clock>,
    keyring: Arc<Keyring>,
    hashing: HashPool,
    config: Arc<ServiceConfig>,
    recorder: Recorder,
    metrics: Arc<metrics::Metrics>,
    /// Signs device cookies (a subkey of the sealing key, so every node accepts every other's).
    device_key: Arc<latchkey_core::SecretBytes>,
    /// The throttle windows this node has audited, by (environment, address): one
    /// `login.throttled` event per window and node, without a write per refusal.
    throttle_audited: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), i64>>>,
    /// Each environment's OpenID Connect signing keys, parsed (`oidc/keys.rs`).
    oidc_keys: Arc<oidc::keys::KeyCache>,
}

/// How long a device cookie exempts its browser from the address throttle: 90 days.
pub const DEVICE_COOKIE_MAX_AGE: i64 = 90 * 86_400;

/// The label of the sealing-key subkey that signs device cookies.
const DEVICE_KEY_LABEL: &str = "latchkey/device/v1";

/// Makes ids and audit records. Cheap to clone into a closure that runs elsewhere: the failure
/// records of a step attempt are made inside the store's transaction, and only if it fails.
#[derive(Clone)]
pub(crate) struct Recorder {
    clock: Arc<dyn Clock>,
    /// Keeps ids made in the same millisecond in creation order.
    ids: Arc<std::sync::Mutex<uuid::ContextV7>>,
}

impl Recorder {
    /// A new id: `UUIDv7`, so ids sort by creation time (cursor pagination relies on it).
    pub(crate) fn new_id(&self) -> String {
        let millis = u64::try_from(self.clock.now_millis()).unwrap_or(0);
        let nanos = u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0);
        let context = self
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ts = uuid::Timestamp::from_unix(&*context, millis / 1000, nanos);
        uuid::Uuid::new_v7(ts).to_string()
    }

    /// An audit record stamped now.
    pub(crate) fn audit(
        &self,
        env: &EnvSlug,
        caller: &Caller,
        kind: AuditType,
        target: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
    ) -> AuditRecord {
        let Caller { actor, origin } = caller;
        AuditRecord {
            id: self.new_id(),
            env: env.clone(),
            at: self.clock.now(),
            kind: kind.as_str().to_owned(),
            actor: actor.audit_name(),
            target: target.map(str::to_owned),
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            outcome,
            detail,
        }
    }
}

impl<S: Store> Service<S> {
    /// Build the service after checking that the sealing key is the database's (SPEC §7): a
    /// node with another key must refuse to start rather than fail every code.
    pub async fn start(
        store: S,
        clock: Arc<dyn Clock>,
        keyring: Keyring,
        config: ServiceConfig,
    ) -> ServiceResult<Self> {
        let fingerprint = keyring.primary().id_hex();
        match store.claim_key_fingerprint(&fingerprint).await? {
            KeyCheck::Recorded | KeyCheck::Matches => {}
            KeyCheck::Mismatch { recorded } => {
                return Err(ServiceError::Refused {
                    code: "key_mismatch",
                    message: format!(
                        "the secret key (fingerprint {fingerprint}) is not the one this database \
                         was initialised with (fingerprint {recorded}); start with the original \
                         LATCHKEY_SECRET_KEY or key file"
                    ),
                });
            }
        }
        let hashing = HashPool::new(config.hash_cost, config.hash_workers, config.hash_queue)?;
        Ok(Self {
            recorder: Recorder {
                clock: Arc::clone(&clock),
                ids: Arc::new(std::sync::Mutex::new(uuid::ContextV7::new())),
            },
            store,
            clock,
            device_key: Arc::new(keyring.primary().derive(DEVICE_KEY_LABEL)),
            throttle_audited: Arc::default(),
            oidc_keys: Arc::default(),
            keyring: Arc::new(keyring),
            hashing,
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::new()),
        })
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn hashing(&self) -> &HashPool {
        &self.hashing
    }

    /// A device cookie for a browser that just completed a login of `user_id` in `env`.
    pub(crate) fn device_cookie(&self, env: &EnvSlug, user_id: &str) -> DeviceCookie {
        DeviceCookie::new(latchkey_core::token::device_token(
            self.device_key.expose(),
            env.as_str(),
            user_id,
            self.now(),
        ))
    }

    /// The user whom one of the caller's device cookies was issued to in `env`, if one is
    /// valid (an HMAC and a parse: no read).
    pub(crate) fn device_user(&self, env: &EnvSlug, caller: &Caller) -> Option<String> {
        caller.origin.devices.iter().find_map(|d| {
            latchkey_core::token::device_user(
                self.device_key.expose(),
                env.as_str(),
                d.expose(),
                self.now(),
                DEVICE_COOKIE_MAX_AGE,
            )
            .map(str::to_owned)
        })
    }

    /// Whether this is the first refusal of the window ending at `window_ends` for `ip` in
    /// `env` that this node sees (and remember that it was).
    pub(crate) fn first_refusal_of_window(
        &self,
        env: &EnvSlug,
        ip: &str,
        window_ends: i64,
        now: i64,
    ) -> bool {
        let mut seen = self
            .throttle_audited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 10_000 {
            seen.retain(|_, ends| *ends > now);
        }
        let key = (env.as_str().to_owned(), ip.to_owned());
        if seen.get(&key) == Some(&window_ends) {
            return false;
        }
        seen.insert(key, window_ends);
        true
    }

    /// This process's counters (`GET /metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The Prometheus text of this process's counters, the hashing pool and the store.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(self.hashing.state(), self.store.latency())
    }

    /// The database answers (for `/readyz`).
    pub async fn ready(&self) -> ServiceResult<()> {
        Ok(self.store.ping().await?)
    }

    /// A consistent copy of the database at `path`, taken while it is in use.
    pub async fn backup(&self, path: &std::path::Path) -> ServiceResult<()> {
        self.store.backup_to(path).await.map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict(format!(
                "{} already exists; choose a new file name",
                path.display()
            )),
            other => other.into(),
        })
    }

    /// A new id: `UUIDv7`, so ids sort by creation time (cursor pagination relies on it).
    pub fn new_id(&self) -> String {
        self.recorder.new_id()
    }

    /// A setup link for `user_id` in `env`, valid for `ttl`.
    fn setup_link(
        &self,
        env: &EnvSlug,
        user_id: &str,
        purpose: store::SetupPurpose,
        ttl: HumanDuration,
    ) -> ServiceResult<(SetupLink, store::NewSetupToken)> {
        let token = Token::generate()?;
        let now = self.now();
        let expires_at = now.saturating_add(ttl.as_secs_i64());
        let record = store::NewSetupToken {
            id: self.new_id(),
            user_id: user_id.to_owned(),
            hash: token.hash(),
            purpose,
            created_at: now,
            expires_at,
        };
        let url = format!(
            "{}/e/{env}/setup?token={}",
            self.config.public_url,
            token.expose()
        );
        Ok((
            SetupLink {
                token,
                url,
                expires_at,
                valid_for: ttl,
            },
            record,
        ))
    }

    /// An audit record stamped now.
    fn audit(
        &self,
        env: &EnvSlug,
        caller: &Caller,
        kind: AuditType,
        target: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
    ) -> AuditRecord {
        self.recorder
            .audit(env, caller, kind, target, outcome, detail)
    }
}
