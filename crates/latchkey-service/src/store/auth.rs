//! The storage side of logins, sessions, failure counters and a user's own credentials.
//!
//! Every write is one transaction. Writes that depend on a condition — a login transaction
//! still in the expected step and unexpired, a TOTP step later than the last one, a recovery
//! code unused, a setup link unused — check it in the same statement that changes the row and
//! fail with [`StoreError::Conflict`] naming the condition, rolling back everything else.

use std::future::Future;

use latchkey_core::{
    login::Step,
    model::{EnvSlug, Environment, LockoutSettings, User},
    token::TokenHash,
};

use super::{NewAuthenticator, StoreResult};
use crate::audit::AuditRecord;

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
    pub user: User,
    pub password_change_required: bool,
    pub environment: Environment,
}

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

/// A recovery code to store (hash only).
#[derive(Debug, Clone)]
pub struct NewRecoveryCode {
    pub id: String,
    pub hash: TokenHash,
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

/// A fresh second factor that a write consumes in its own transaction.
#[derive(Debug, Clone)]
pub enum Proof {
    /// Record this TOTP step for this authenticator (must be later than the last).
    Totp { authenticator_id: String, step: u64 },
    /// Mark this recovery code of the user used (must be unused).
    RecoveryCode { hash: TokenHash },
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

/// A failed attempt to record, with what it causes decided by the service ([`Failure::new`]):
/// the store applies it.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub key: &'a CounterKey,
    /// The account's user (if known): their row is locked first, and a lock ends their pending
    /// logins (SECURITY L4).
    pub user_id: Option<&'a str>,
    /// When the lock this failure sets ends; `None` when it sets none.
    pub lock_until: Option<i64>,
    /// The client, counted for per-IP throttling.
    pub ip: Option<&'a str>,
    pub now: i64,
    /// The records to write: `login.locked` among them exactly when `lock_until` is set.
    pub audit: &'a [AuditRecord],
}

impl<'a> Failure<'a> {
    /// The failure of an attempt claimed under `claim` (SPEC §2): the last attempt a round
    /// allows locks the counter for `policy::lock_seconds`, and the lock is the account
    /// user's: `user_id`, or for a second-factor counter the user it counts. Its audit
    /// records come after, from [`Failure::locks`].
    pub fn new(
        key: &'a CounterKey,
        claim: Claim,
        settings: &LockoutSettings,
        user_id: Option<&'a str>,
        ip: Option<&'a str>,
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
            key,
            user_id,
            lock_until,
            ip,
            now,
            audit: &[],
        }
    }

    /// Whether this failure locks the counter.
    pub fn locks(&self) -> bool {
        self.lock_until.is_some()
    }

    /// With its audit records.
    #[must_use]
    pub fn with_audit(self, audit: &'a [AuditRecord]) -> Self {
        Self { audit, ..self }
    }
}

/// A pending enrolment to confirm.
#[derive(Debug, Clone)]
pub struct Confirmation<'a> {
    pub user_id: &'a str,
    pub authenticator_id: &'a str,
    pub label: &'a str,
    /// The step of the confirming code, burnt (SECURITY T4).
    pub step: u64,
    /// Recovery codes to store (with the first authenticator).
    pub recovery_codes: Option<&'a [NewRecoveryCode]>,
    pub now: i64,
    pub audit: &'a [AuditRecord],
}

impl std::fmt::Debug for LoginSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSubject")
            .field("user", &self.user)
            .field("password_change_required", &self.password_change_required)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PasswordWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordWrite")
            .field("setup_token_id", &self.setup_token_id)
            .finish_non_exhaustive()
    }
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

/// A recorded failure's consequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Set when this failure locked the counter.
    pub locked_until: Option<i64>,
}

/// Logins, sessions, counters and the user's own credentials.
pub trait AuthStore: Clone + Send + Sync + 'static {
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
        now: i64,
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
        failure: &Failure<'_>,
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

    /// A session by its token's hash, with its user and environment.
    fn session_by_token(
        &self,
        token_hash: &TokenHash,
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

    /// Set a new password, ending the user's other sessions (all but `keep_session`).
    fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Confirm a pending enrolment: burn `step`, set the label, and store recovery codes when
    /// given (the first authenticator).
    fn confirm_authenticator(
        &self,
        confirmation: &Confirmation<'_>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Remove an authenticator after consuming `proof`; with `keep_one`, refuse to remove the
    /// last confirmed one. Removing the last one also removes the recovery codes.
    fn remove_authenticator(
        &self,
        user_id: &str,
        authenticator_id: &str,
        keep_one: bool,
        proof: &Proof,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Replace the user's recovery codes after consuming `proof`.
    fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[NewRecoveryCode],
        proof: &Proof,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Consume a fresh second factor on its own (before adding an authenticator). Every write
    /// that consumes a proof also resets the user's second-factor counter in its transaction.
    fn consume_proof(
        &self,
        user_id: &str,
        proof: &Proof,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Delete what can no longer be used: ended logins and sessions, old setup links,
    /// abandoned enrolments, settled failure counters. Returns how many rows went.
    fn purge_expired(&self, now: i64) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Unused recovery codes of the user.
    fn recovery_codes_remaining(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<u32>> + Send;

    /// Whether the user has an unused recovery code with this hash.
    fn has_recovery_code(
        &self,
        user_id: &str,
        hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
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
            Failure::new(&password, claim, &settings, None, None, 0).user_id,
            None
        );
        assert_eq!(
            Failure::new(&password, claim, &settings, Some("u"), None, 0).user_id,
            Some("u")
        );
        // A second-factor counter is the user's own.
        assert_eq!(
            Failure::new(&second, claim, &settings, None, None, 0).user_id,
            Some("user-7")
        );
    }
}
