//! Logins: the password step's subject, login transactions, setup links, and the failure counters
//! that throttle and lock (SECURITY L1–L4).

use std::future::Future;

use super::{NewAuthenticator, NewRecoveryCode, NewSession, Proof, StoreResult};
use crate::audit::AuditRecord;
use latchkey_core::{
    login::Step, model::EnvSlug, model::Environment, model::LockoutSettings, model::User,
    token::TokenHash,
};

/// The names a [`StoreError::Conflict`](super::StoreError::Conflict) carries for the
/// conditions of this module.
pub mod conflict {
    /// The login transaction is gone, expired or in another step.
    pub const LOGIN: &str = "login transaction";
    /// The TOTP step was not later than the last accepted one.
    pub const TOTP_STEP: &str = "totp step";
    /// The recovery code does not exist or was used.
    pub const RECOVERY_CODE: &str = "recovery code";
    /// The setup link was used, voided or expired.
    pub const SETUP_LINK: &str = "setup link";
    /// Removing this authenticator would leave none where one is required.
    pub const LAST_AUTHENTICATOR: &str = "last authenticator";
}

/// What the password step needs to know of a user. `Debug` leaves the hash out.
#[derive(Clone)]
pub struct LoginSubject {
    pub user: User,
    pub password_hash: Option<String>,
    pub password_change_required: bool,
}

impl std::fmt::Debug for LoginSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSubject")
            .field("user", &self.user)
            .field("password_change_required", &self.password_change_required)
            .finish_non_exhaustive()
    }
}

/// A login transaction to insert.
#[derive(Debug, Clone)]
pub struct NewLoginTxn {
    pub id: String,
    pub token_hash: TokenHash,
    pub user_id: String,
    pub env: EnvSlug,
    pub state: Step,
    /// Space-separated methods used so far (`pwd`, `otp`, `rec`).
    pub amr: String,
    pub setup_token_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// An application's request needs a second factor (step-up, SPEC §9): asked or set up
    /// whatever the environment's policy.
    pub mfa_demanded: bool,
}

/// A login transaction with what the next step needs.
#[derive(Debug, Clone)]
pub struct LoginTxnView {
    pub id: String,
    pub state: Step,
    pub amr: String,
    pub pending_secret_sealed: Option<Vec<u8>>,
    pub setup_token_id: Option<String>,
    pub expires_at: i64,
    pub mfa_demanded: bool,
    pub user: User,
    pub password_change_required: bool,
    pub environment: Environment,
}

/// A valid setup link's facts.
#[derive(Debug, Clone)]
pub struct SetupTokenView {
    pub id: String,
    pub user_id: String,
    pub env: EnvSlug,
    pub expires_at: i64,
    /// The user's normalised email: the key of their password counter.
    pub email_normalized: String,
}

/// Which failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// Password failures, per (environment, normalised email), whether or not the user exists.
    Password,
    /// TOTP and recovery-code failures, per user id.
    SecondFactor,
}

impl CounterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// One failure counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    pub env: EnvSlug,
    pub kind: CounterKind,
    pub subject: String,
}

/// The answer to claiming an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Evaluate it; this is attempt number `attempt` of the round, after `locks` earlier locks.
    Allowed { attempt: u32, locks: u32 },
    /// Do not evaluate anything; answer 429 with this `Retry-After`.
    Refused { retry_after: i64 },
}

/// What follows a login step.
#[derive(Debug, Clone)]
pub enum LoginNext {
    /// Insert a new login transaction (the first step of a login).
    Begin(NewLoginTxn),
    /// Move the consumed transaction to this step, keeping its token.
    Advance { state: Step, amr: String },
    /// Delete the consumed transaction, if any, and open this session.
    Authenticate(NewSession),
}

/// A new password to store with a login step, and the setup link it uses up.
#[derive(Clone)]
pub struct PasswordWrite {
    pub hash: String,
    pub setup_token_id: Option<String>,
}

impl std::fmt::Debug for PasswordWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordWrite")
            .field("setup_token_id", &self.setup_token_id)
            .finish_non_exhaustive()
    }
}

/// One login step's writes, applied as one transaction. `Debug` leaves hashes out.
#[derive(Clone)]
pub struct LoginWrite {
    pub now: i64,
    pub user_id: String,
    /// The transaction this step consumes: it must exist, be unexpired and be in this step.
    pub from: Option<(String, Step)>,
    pub next: LoginNext,
    pub password: Option<PasswordWrite>,
    /// A re-hash of the current password under stronger parameters.
    pub rehash: Option<String>,
    pub proof: Option<Proof>,
    pub new_authenticator: Option<NewAuthenticator>,
    pub new_recovery_codes: Option<Vec<NewRecoveryCode>>,
    pub reset_counters: Vec<CounterKey>,
    pub audit: Vec<AuditRecord>,
}

impl std::fmt::Debug for LoginWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginWrite")
            .field("user_id", &self.user_id)
            .field("from", &self.from)
            .field("next", &self.next)
            .field("password", &self.password)
            .field("proof", &self.proof)
            .finish_non_exhaustive()
    }
}

/// A failed attempt to record, with what it causes decided by the service ([`Failure::new`]):
/// the store applies it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub key: CounterKey,
    /// The account's user (if known): their row is locked first, and a lock ends their pending
    /// logins (SECURITY L4).
    pub user_id: Option<String>,
    /// When the lock this failure sets ends; `None` when it sets none.
    pub lock_until: Option<i64>,
    /// The client, counted for per-IP throttling.
    pub ip: Option<String>,
    pub now: i64,
    /// The records to write: `login.locked` among them exactly when `lock_until` is set.
    pub audit: Vec<AuditRecord>,
}

impl Failure {
    /// The failure of an attempt claimed under `claim` (SPEC §2): the last attempt a round
    /// allows locks the counter for `policy::lock_seconds`, and the lock is the account
    /// user's: `user_id`, or for a second-factor counter the user it counts. Its audit
    /// records come after, from [`Failure::locks`].
    pub fn new(
        key: &CounterKey,
        claim: Claim,
        settings: &LockoutSettings,
        user_id: Option<&str>,
        ip: Option<&str>,
        now: i64,
    ) -> Self {
        let lock_until = match claim {
            Claim::Allowed { attempt, locks }
                if attempt >= latchkey_core::policy::attempts_allowed(settings, locks) =>
            {
                Some(now.saturating_add(latchkey_core::policy::lock_seconds(settings, locks)))
            }
            Claim::Allowed { .. } | Claim::Refused { .. } => None,
        };
        let user_id = user_id.or(match key.kind {
            CounterKind::SecondFactor => Some(key.subject.as_str()),
            CounterKind::Password => None,
        });
        Self {
            key: key.clone(),
            user_id: user_id.map(str::to_owned),
            lock_until,
            ip: ip.map(str::to_owned),
            now,
            audit: Vec::new(),
        }
    }

    /// Whether this failure locks the counter.
    pub fn locks(&self) -> bool {
        self.lock_until.is_some()
    }

    /// With its audit records.
    #[must_use]
    pub fn with_audit(self, audit: Vec<AuditRecord>) -> Self {
        Self { audit, ..self }
    }
}

/// A recorded failure's consequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Set when this failure locked the counter.
    pub locked_until: Option<i64>,
}

/// Logins.
pub trait LoginStore: Clone + Send + Sync + 'static {
    fn login_subject(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> impl Future<Output = StoreResult<Option<LoginSubject>>> + Send;

    /// A login transaction by its token's hash, expired or not (the caller tells a lockout,
    /// which answers 429, from an expired login, which answers `login_expired`).
    fn login_txn(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<Option<LoginTxnView>>> + Send;

    /// Offer a TOTP secret in a transaction at `mfa_setup_required` (sealed), unless one is
    /// offered already (`Conflict`: read it back).
    fn set_pending_secret(
        &self,
        txn_id: &str,
        sealed: &[u8],
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Apply one login step (see [`LoginWrite`]).
    fn write_login(&self, write: &LoginWrite) -> impl Future<Output = StoreResult<()>> + Send;

    /// An unused, unexpired setup link by its token's hash.
    fn setup_token(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<SetupTokenView>>> + Send;

    /// Start a login from a setup link: void the transactions this link opened before, and
    /// insert `txn`, provided the link is still unused and unexpired.
    fn begin_setup_login(
        &self,
        txn: &NewLoginTxn,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Claim an attempt on a counter before evaluating it (SECURITY L1, L2): refused while
    /// locked, and refused without evaluation beyond the attempts the round allows, so N
    /// concurrent guesses evaluate at most the allowed number.
    fn claim_attempt(
        &self,
        key: &CounterKey,
        settings: &LockoutSettings,
        now: i64,
    ) -> impl Future<Output = StoreResult<Claim>> + Send;

    /// Record that a claimed attempt failed; the last attempt a round allows locks the counter
    /// and ends the pending login transactions of `user_id` (L4): they expire at once, so
    /// they answer 429 while the lock lasts and `login_expired` after it. Also counts the failure
    /// against the client's IP and writes `audit`.
    fn record_failure(
        &self,
        failure: &Failure,
    ) -> impl Future<Output = StoreResult<FailureOutcome>> + Send;

    /// Claim an attempt on `attempt.key`, judge it, and settle it: the judge's write and the
    /// counter's reset if it is right, a recorded failure ([`Self::record_failure`]) if it is
    /// wrong or its write fails on a condition (the write's changes rolled back). The judge
    /// runs only if the claim allowed the attempt, and a judged attempt always stays counted:
    /// if the write fails otherwise, the claim is kept without it
    /// ([`super::StepOutcome::Unsettled`] on SQLite; an error after the claim's own commit in
    /// the default). SQLite does it all in one transaction; the default composes the three
    /// calls ([`super::attempt::composed`]).
    fn attempt_step(
        &self,
        attempt: super::StepAttempt,
    ) -> impl Future<Output = StoreResult<super::StepOutcome>> + Send {
        async move { super::attempt::composed(self, attempt).await }
    }

    /// When the counter's lock ends, if it is locked now. Reads only: nothing is counted.
    fn locked_until(
        &self,
        key: &CounterKey,
        now: i64,
    ) -> impl Future<Output = StoreResult<Option<i64>>> + Send;

    /// Forget a counter after a success outside a login step (a fresh second factor for an
    /// account change).
    fn reset_counter(&self, key: &CounterKey) -> impl Future<Output = StoreResult<()>> + Send;

    /// Failed attempts from `ip` in the current minute of `env`, and when that minute ends.
    fn ip_failures(
        &self,
        env: &EnvSlug,
        ip: &str,
        now: i64,
    ) -> impl Future<Output = StoreResult<(u32, i64)>> + Send;

    /// Count a failure from `ip` that no account counter covers (a bad setup link).
    fn record_ip_failure(
        &self,
        env: &EnvSlug,
        ip: &str,
        now: i64,
        audit: Option<&AuditRecord>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

#[cfg(test)]
mod tests {
    use latchkey_core::model::{EnvSlug, LockoutSettings};

    use super::{Claim, CounterKey, CounterKind, Failure};

    fn key(kind: CounterKind) -> CounterKey {
        CounterKey {
            env: EnvSlug::parse("prod").unwrap_or_else(|e| panic!("{e}")),
            kind,
            subject: "user-7".into(),
        }
    }

    #[test]
    fn the_last_attempt_of_a_round_locks_for_the_policys_time() {
        let settings = LockoutSettings::default(); // 5 attempts, then 60 s, doubling to 3600 s
        let k = key(CounterKind::Password);
        let allowed = |attempt, locks| Claim::Allowed { attempt, locks };
        let at = |claim| Failure::new(&k, claim, &settings, None, None, 1_000).lock_until;
        assert_eq!(at(allowed(4, 0)), None, "not yet the fifth");
        assert_eq!(at(allowed(5, 0)), Some(1_060), "the fifth: 60 s");
        assert_eq!(
            at(allowed(1, 1)),
            Some(1_120),
            "after a lock, the first: twice that"
        );
        assert_eq!(at(allowed(1, 9)), Some(4_600), "never past the maximum");
        assert_eq!(at(Claim::Refused { retry_after: 30 }), None);
    }

    #[test]
    fn a_lock_is_the_account_users() {
        let settings = LockoutSettings::default();
        let password = key(CounterKind::Password);
        let second = key(CounterKind::SecondFactor);
        let claim = Claim::Allowed {
            attempt: 1,
            locks: 0,
        };
        // A password counter is by email: its user only when known (never for an unknown one).
        assert_eq!(
            Failure::new(&password, claim, &settings, None, None, 0)
                .user_id
                .as_deref(),
            None
        );
        assert_eq!(
            Failure::new(&password, claim, &settings, Some("u"), None, 0)
                .user_id
                .as_deref(),
            Some("u")
        );
        // A second-factor counter is the user's own.
        assert_eq!(
            Failure::new(&second, claim, &settings, None, None, 0)
                .user_id
                .as_deref(),
            Some("user-7")
        );
    }
}
