//! A login step's second factor claimed, judged and settled as one unit of work.
//!
//! A code step is three things in order: claim an attempt on the user's counter (SECURITY L1,
//! L2), judge the code, then settle the attempt — the step's write and the counter's reset if
//! the code is right, a recorded failure otherwise (or if the write loses a race: T4, T5). A
//! backend that can run the judge inside its transaction does all three in one, with one
//! commit; the default composes [`LoginStore::claim_attempt`], [`LoginStore::write_login`] and
//! [`LoginStore::record_failure`], as the steps did before. Either way the judge runs only
//! after the claim allowed the attempt, and never when it was refused.

use latchkey_core::model::LockoutSettings;

use super::{
    Claim, CounterKey, Failure, LoginStore, LoginWrite, StoreError, StoreResult, conflict,
};
use crate::audit::AuditRecord;

/// What a judge decides: the step's write (the factor is right), or why the factor is wrong
/// (the `reason` of the failure's audit record).
pub type Verdict = Result<LoginWrite, &'static str>;

/// The judge of a claimed attempt. It runs where the backend runs the transaction (on
/// SQLite, the writer thread, holding the write lock), so it only computes: the secrets it
/// needs are opened and the write prepared before the claim.
pub type Judge = Box<dyn FnOnce() -> Verdict + Send>;

/// The audit records of a failed attempt for its reason and whether it locks the counter:
/// `login.failed`, and `login.locked` with a lock.
pub type FailureAudit = Box<dyn Fn(&str, bool) -> Vec<AuditRecord> + Send>;

/// One attempt on a counter, to claim, judge and settle (see the module's text).
pub struct StepAttempt {
    pub facts: AttemptFacts,
    pub judge: Judge,
    pub failure_audit: FailureAudit,
}

/// What an attempt is counted against.
#[derive(Debug, Clone)]
pub struct AttemptFacts {
    pub key: CounterKey,
    pub settings: LockoutSettings,
    /// Whose pending login transactions a lock ends (SECURITY L4).
    pub user_id: String,
    /// The client, counted for per-IP throttling when the attempt fails.
    pub ip: Option<String>,
    pub now: i64,
}

impl AttemptFacts {
    /// The failure of this attempt, claimed under `claim` (its audit records still to add).
    pub fn failure(&self, claim: Claim) -> Failure {
        Failure::new(
            &self.key,
            claim,
            &self.settings,
            Some(&self.user_id),
            self.ip.as_deref(),
            self.now,
        )
    }
}

impl std::fmt::Debug for StepAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepAttempt")
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The counter is locked or the round's attempts are used up: nothing was judged.
    Refused { retry_after: i64 },
    /// The factor was right: the step's write is applied and the counter reset.
    Written,
    /// Counted as a failed attempt. `conflict` names the write's condition that failed when
    /// the factor was right but the write lost a race (a step another request used, a login
    /// that ended); `locked_until` is set when this failure locked the counter.
    Failed {
        reason: &'static str,
        conflict: Option<&'static str>,
        locked_until: Option<i64>,
    },
    /// The factor was right but its write failed for a reason other than a condition (the
    /// database failed): the write is rolled back, the claim stays counted, as an attempt
    /// abandoned mid-way does, and the caller answers unavailable. The text is for the log.
    Unsettled(String),
}

/// The audit reason of a right factor whose write failed on `conflict`: a code another request
/// used first is a replay (T4), answered like any wrong code (T5); anything else means the
/// login ended meanwhile (expired, or ended by a lock or an admin).
pub fn conflict_reason(conflict: &str) -> &'static str {
    if conflict == conflict::TOTP_STEP || conflict == conflict::RECOVERY_CODE {
        "replay"
    } else {
        "login_expired"
    }
}

/// [`LoginStore::attempt_step`] from the store's other methods: claim, judge, then one write.
pub async fn composed<S: LoginStore>(store: &S, attempt: StepAttempt) -> StoreResult<StepOutcome> {
    let StepAttempt {
        facts,
        judge,
        failure_audit,
    } = attempt;
    let claim = store
        .claim_attempt(&facts.key, &facts.settings, facts.now)
        .await?;
    if let Claim::Refused { retry_after } = claim {
        return Ok(StepOutcome::Refused { retry_after });
    }
    let (reason, conflict) = match judge() {
        Err(reason) => (reason, None),
        Ok(write) => match store.write_login(&write).await {
            Ok(()) => return Ok(StepOutcome::Written),
            Err(StoreError::Conflict(c)) => (conflict_reason(c), Some(c)),
            Err(e) => return Err(e),
        },
    };
    let failure = facts.failure(claim);
    let audit = failure_audit(reason, failure.locks());
    let outcome = store.record_failure(&failure.with_audit(audit)).await?;
    Ok(StepOutcome::Failed {
        reason,
        conflict,
        locked_until: outcome.locked_until,
    })
}
