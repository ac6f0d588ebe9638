//! Login transactions, setup links, the unit of work of a login step (`write`), and a code step
//! claimed, judged and settled in one transaction (`attempt`, with `settle_after_rollback` when
//! its write failed).

use latchkey_core::{login::Step, model::EnvSlug};
use latchkey_service::{
    StoreError,
    store::{
        AttemptFacts, Claim, FailureAudit, LoginNext, LoginSubject, LoginTxnView, LoginWrite,
        NewLoginTxn, SetupTokenView, StepAttempt, StepOutcome, StoreResult, conflict,
        conflict_reason,
    },
};
use rusqlite::{Connection, params};
use std::sync::LazyLock;

use super::{audit, authenticators, exec::Lite, lite, sessions, writer::End};
use crate::{
    corrupt,
    sql::{self, run_now},
};

static SUBJECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, u.password_hash, u.password_change_required FROM users u WHERE u.env = ?1 AND u.email_norm = ?2",
        lite::USER_COLUMNS
    )
});

pub(super) fn subject(
    conn: &Connection,
    env: &EnvSlug,
    email_norm: &str,
) -> StoreResult<Option<LoginSubject>> {
    lite::one(conn, &SUBJECT, [env.as_str(), email_norm], |row| {
        Ok(LoginSubject {
            user: lite::user(row)?,
            password_hash: lite::get(row, "password_hash")?,
            password_change_required: lite::get(row, "password_change_required")?,
        })
    })
}

static TXN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT t.id AS t_id, t.state AS t_state, t.amr AS t_amr, t.pending_secret_sealed, t.setup_token_id, \
                  t.expires_at AS t_expires_at, u.password_change_required, {}, {} \
         FROM login_transactions t JOIN users u ON u.id = t.user_id JOIN environments e ON e.slug = u.env \
         WHERE t.token_hash = ?1 AND ?2 IS NOT NULL",
        lite::USER_COLUMNS,
        lite::ENV_JOINED_COLUMNS
    )
});

pub(super) fn txn(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<LoginTxnView>> {
    lite::one(conn, &TXN, params![token_hash, now], |row| {
        let state: String = lite::get(row, "t_state")?;
        Ok(LoginTxnView {
            id: lite::get(row, "t_id")?,
            state: Step::parse(&state).ok_or_else(|| corrupt("login state", &state))?,
            amr: lite::get(row, "t_amr")?,
            pending_secret_sealed: lite::get(row, "pending_secret_sealed")?,
            setup_token_id: lite::get(row, "setup_token_id")?,
            expires_at: lite::get(row, "t_expires_at")?,
            password_change_required: lite::get(row, "password_change_required")?,
            user: lite::user(row)?,
            environment: lite::environment_joined(row)?,
        })
    })
}

pub(super) fn set_pending_secret(
    tx: &Connection,
    id: &str,
    sealed: &[u8],
    now: i64,
) -> StoreResult<()> {
    let changed = lite::exec(
        tx,
        "UPDATE login_transactions SET pending_secret_sealed = ?2 \
         WHERE id = ?1 AND state = 'mfa_setup_required' AND expires_at > ?3 \
         AND pending_secret_sealed IS NULL",
        params![id, sealed, now],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(conflict::LOGIN))
    }
}

pub(super) fn insert(tx: &Connection, t: &NewLoginTxn) -> StoreResult<()> {
    lite::exec(
        tx,
        "INSERT INTO login_transactions (id, token_hash, user_id, env, state, amr, setup_token_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            t.id,
            t.token_hash.as_str(),
            t.user_id,
            t.env.as_str(),
            t.state.as_str(),
            t.amr,
            t.setup_token_id,
            t.created_at,
            t.expires_at,
        ],
    )?;
    Ok(())
}

/// Through the partial index of migration 0002 (`setup_token_id = ?` implies `IS NOT NULL`).
pub(super) const END_FROM_LINK: &str = "DELETE FROM login_transactions WHERE setup_token_id = ?1";
/// End every pending login transaction of a user.
pub(super) fn end_all(tx: &Connection, user_id: &str) -> StoreResult<u64> {
    run_now(sql::logins::end_all(&mut Lite(tx), user_id))
}

pub(super) fn setup_token(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<SetupTokenView>> {
    lite::one(
        conn,
        "SELECT t.id, t.user_id, u.env, t.expires_at, u.email_norm FROM setup_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ?1 AND t.used_at IS NULL AND t.expires_at > ?2 AND u.state <> 'disabled'",
        params![token_hash, now],
        |row| {
            let env: String = lite::get(row, "env")?;
            Ok(SetupTokenView {
                id: lite::get(row, "id")?,
                user_id: lite::get(row, "user_id")?,
                env: EnvSlug::parse(&env).map_err(|_| corrupt("env", &env))?,
                expires_at: lite::get(row, "expires_at")?,
                email_normalized: lite::get(row, "email_norm")?,
            })
        },
    )
}

pub(super) fn begin_setup(tx: &Connection, t: &NewLoginTxn, now: i64) -> StoreResult<()> {
    let setup_id = t
        .setup_token_id
        .as_deref()
        .ok_or(StoreError::Conflict(conflict::SETUP_LINK))?;
    let valid = lite::exists(
        tx,
        "SELECT 1 FROM setup_tokens WHERE id = ?1 AND user_id = ?2 AND used_at IS NULL AND expires_at > ?3",
        params![setup_id, t.user_id, now],
    )?;
    if !valid {
        return Err(StoreError::Conflict(conflict::SETUP_LINK));
    }
    lite::exec(tx, END_FROM_LINK, [setup_id])?;
    insert(tx, t)
}

fn consume_from(tx: &Connection, w: &LoginWrite) -> StoreResult<()> {
    let Some((id, state)) = &w.from else {
        return Ok(());
    };
    let changed = match &w.next {
        LoginNext::Advance { state: next, amr } => lite::exec(
            tx,
            "UPDATE login_transactions SET state = ?3, amr = ?4, pending_secret_sealed = NULL \
             WHERE id = ?1 AND state = ?2 AND expires_at > ?5",
            params![id, state.as_str(), next.as_str(), amr, w.now],
        )?,
        LoginNext::Authenticate(_) | LoginNext::Begin(_) => lite::exec(
            tx,
            "DELETE FROM login_transactions WHERE id = ?1 AND state = ?2 AND expires_at > ?3",
            params![id, state.as_str(), w.now],
        )?,
    };
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(conflict::LOGIN))
    }
}

/// One login step, all or nothing.
pub(super) fn write(tx: &Connection, w: &LoginWrite) -> StoreResult<()> {
    consume_from(tx, w)?;
    if let Some(p) = &w.password {
        let changed = lite::exec(
            tx,
            "UPDATE users SET password_hash = ?2, password_change_required = 0, \
             state = CASE WHEN state = 'invited' THEN 'active' ELSE state END, updated_at = ?3 \
             WHERE id = ?1 AND state <> 'disabled'",
            params![w.user_id, p.hash, w.now],
        )?;
        if changed != 1 {
            return Err(StoreError::Conflict(conflict::LOGIN));
        }
        if let Some(setup_id) = &p.setup_token_id {
            let used = lite::exec(
                tx,
                "UPDATE setup_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![setup_id, w.now],
            )?;
            if used != 1 {
                return Err(StoreError::Conflict(conflict::SETUP_LINK));
            }
        }
    }
    if let Some(hash) = &w.rehash {
        lite::exec(
            tx,
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![w.user_id, hash],
        )?;
    }
    if let Some(proof) = &w.proof {
        run_now(sql::credentials::consume_proof(
            &mut Lite(tx),
            &w.user_id,
            proof,
            w.now,
        ))?;
    }
    if let Some(a) = &w.new_authenticator {
        // A first authenticator set up inside a login: only while the user still has none
        // (another login or the account page may have enrolled one meanwhile).
        let has = lite::exists(
            tx,
            "SELECT 1 FROM authenticators WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
            [&w.user_id],
        )?;
        if has {
            return Err(StoreError::Conflict(conflict::LOGIN));
        }
        authenticators::insert(tx, a)?;
    }
    if let Some(codes) = &w.new_recovery_codes {
        run_now(sql::credentials::replace_recovery_codes(
            &mut Lite(tx),
            &w.user_id,
            codes,
            w.now,
        ))?;
    }
    for key in &w.reset_counters {
        run_now(sql::throttle::reset(&mut Lite(tx), key))?;
    }
    match &w.next {
        LoginNext::Begin(t) => insert(tx, t)?,
        LoginNext::Advance { .. } => {}
        LoginNext::Authenticate(session) => {
            sessions::insert(tx, session)?;
            lite::exec(
                tx,
                "UPDATE users SET last_login_at = ?2, state = CASE WHEN state = 'invited' THEN 'active' ELSE state END \
                 WHERE id = ?1",
                params![w.user_id, w.now],
            )?;
        }
    }
    for record in &w.audit {
        audit::insert(tx, record)?;
    }
    Ok(())
}

/// Claim, judge and settle one attempt in the writer's transaction (`AuthStore::attempt_step`).
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
    let claim = run_now(sql::throttle::claim(
        &mut Lite(tx),
        &facts.key,
        &facts.settings,
        facts.now,
    ))?;
    if let Claim::Refused { retry_after } = claim {
        return Ok(End::Commit(StepOutcome::Refused { retry_after }));
    }
    let reason = match judge() {
        Ok(w) => {
            return Ok(match write(tx, &w) {
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

/// Record the attempt claimed under `claim` as failed for `reason`.
fn failed(
    tx: &Connection,
    facts: &AttemptFacts,
    claim: Claim,
    failure_audit: &FailureAudit,
    reason: &'static str,
    conflict: Option<&'static str>,
) -> StoreResult<StepOutcome> {
    let audit = failure_audit(reason);
    let outcome = run_now(sql::throttle::record_failure(
        &mut Lite(tx),
        &facts.failure(claim, &audit),
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
    let claim = run_now(sql::throttle::claim(
        &mut Lite(tx),
        &facts.key,
        &facts.settings,
        facts.now,
    ))?;
    if let Claim::Refused { retry_after } = claim {
        return Ok(StepOutcome::Refused { retry_after });
    }
    let StoreError::Conflict(conflict) = error else {
        return Ok(StepOutcome::Unsettled(error.to_string()));
    };
    let reason = conflict_reason(conflict);
    failed(tx, &facts, claim, &failure_audit, reason, Some(conflict))
}
