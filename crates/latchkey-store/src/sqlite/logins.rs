//! Login transactions, setup links, the unit of work of a login step (`write`), and a code step
//! claimed, judged and settled in one transaction (`attempt`, with `settle_after_rollback` when
//! its write failed).

use latchkey_service::{
    StoreError,
    store::{
        AttemptFacts, Claim, FailureAudit, StepAttempt, StepOutcome, StoreResult, conflict_reason,
    },
};
use rusqlite::Connection;

use super::{exec::Lite, writer::End};
use crate::sql::{self, run_now};

/// Claim, judge and settle one attempt in the writer's transaction (`LoginStore::attempt_step`).
/// The judge runs after the claim, so of N concurrent attempts only those the round allows are
/// judged (SECURITY L2). If a right factor's write fails — one of its conditions (a step or
/// code used meanwhile, a login ended: T4, T5) or anything else — the whole transaction is
/// rolled back and [`settle_after_rollback`] runs next, in the same writer job.
///
/// A rollback rather than a savepoint: a savepoint journals every page the write touches
/// (about 18), which spilled past SQLite's 64 KiB into a temporary file at every login, and
/// the only compile-time remedy (`SQLITE_STMTJRNL_SPILL`) broke large statements. A lost race
/// is rare; it costs a second commit, the common path nothing.
pub(super) fn attempt(tx: &Connection, a: StepAttempt) -> StoreResult<End<StepOutcome, Redo>> {
    let StepAttempt {
        facts,
        judge,
        failure_audit,
    } = a;
    let claim = claim_attempt(tx, &facts)?;
    if let Claim::Refused { retry_after } = claim {
        return Ok(End::Commit(StepOutcome::Refused { retry_after }));
    }
    let reason = match judge() {
        Ok(w) => {
            return Ok(match run_now(sql::logins::write(&mut Lite(tx), &w)) {
                Ok(()) => End::Commit(StepOutcome::Written),
                Err(error) => End::Rollback(Redo {
                    facts,
                    failure_audit,
                    error,
                }),
            });
        }
        Err(reason) => reason,
    };
    failed(tx, &facts, claim, &failure_audit, reason, None).map(End::Commit)
}

/// Claim the attempt on its counter.
fn claim_attempt(tx: &Connection, facts: &AttemptFacts) -> StoreResult<Claim> {
    run_now(sql::throttle::claim(
        &mut Lite(tx),
        &facts.key,
        &facts.settings,
        facts.now,
    ))
}

/// Record the attempt claimed under `claim` as failed for `reason`.
fn failed(
    tx: &Connection,
    facts: &AttemptFacts,
    claim: Claim,
    failure_audit: &FailureAudit,
    reason: &'static str,
    conflict: Option<&'static str>,
) -> StoreResult<StepOutcome> {
    let failure = facts.failure(claim);
    let audit = failure_audit(reason, failure.locks());
    let outcome = run_now(sql::logins::record_failure(
        &mut Lite(tx),
        &failure.with_audit(audit),
    ))?;
    Ok(StepOutcome::Failed {
        reason,
        conflict,
        locked_until: outcome.locked_until,
    })
}

/// A right factor whose write failed, to settle after the rollback.
pub(super) struct Redo {
    facts: AttemptFacts,
    failure_audit: FailureAudit,
    error: StoreError,
}

/// Claim the attempt again (the rollback took the first claim with it; no write of this node
/// came in between) and settle it: a failed condition is a failed attempt; any other failure
/// leaves the claim alone, counted, as an attempt abandoned mid-way does. A claim refused now
/// (another process locked the counter in between) answers as locked.
pub(super) fn settle_after_rollback(tx: &Connection, redo: Redo) -> StoreResult<StepOutcome> {
    let Redo {
        facts,
        failure_audit,
        error,
    } = redo;
    let claim = claim_attempt(tx, &facts)?;
    if let Claim::Refused { retry_after } = claim {
        return Ok(StepOutcome::Refused { retry_after });
    }
    let StoreError::Conflict(conflict) = error else {
        return Ok(StepOutcome::Unsettled(error.to_string()));
    };
    let reason = conflict_reason(conflict);
    failed(tx, &facts, claim, &failure_audit, reason, Some(conflict))
}
