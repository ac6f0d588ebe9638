//! A user's second factors: consuming a fresh proof, recovery codes, confirming and removing
//! authenticators.

use latchkey_service::{
    StoreError,
    store::{NewRecoveryCode, Proof, StoreResult, conflict},
};
use rusqlite::{Connection, params};
use sqlx::SqlitePool;

use super::{authenticators, lite};
use crate::map_err;

/// Consume a second factor in the caller's transaction: a TOTP step must be later than the
/// last one, a recovery code unused. Otherwise the whole transaction fails.
pub(super) fn consume_proof(
    tx: &Connection,
    user_id: &str,
    proof: &Proof,
    now: i64,
) -> StoreResult<()> {
    match proof {
        Proof::Totp {
            authenticator_id,
            step,
        } => {
            let owned = lite::exists(
                tx,
                "SELECT 1 FROM authenticators WHERE id = ?1 AND user_id = ?2",
                [authenticator_id, user_id],
            )?;
            if !owned || !authenticators::advance_step(tx, authenticator_id, *step, now)? {
                return Err(StoreError::Conflict(conflict::TOTP_STEP));
            }
        }
        Proof::RecoveryCode { hash } => {
            let used = lite::exec(
                tx,
                "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
                params![user_id, hash.as_str(), now],
            )?;
            if used != 1 {
                return Err(StoreError::Conflict(conflict::RECOVERY_CODE));
            }
        }
    }
    // The factor was right: the user's second-factor count starts again (user ids are unique
    // across environments).
    reset_second_factor(tx, user_id)
}

/// The user's second-factor failures start again (user ids are unique across environments).
pub(super) fn reset_second_factor(tx: &Connection, user_id: &str) -> StoreResult<()> {
    lite::exec(
        tx,
        "DELETE FROM failure_counters WHERE kind = 'second_factor' AND subject = ?1",
        [user_id],
    )?;
    Ok(())
}

/// Replace the user's recovery codes: the old ones are void.
pub(super) fn replace_recovery_codes(
    tx: &Connection,
    user_id: &str,
    codes: &[NewRecoveryCode],
    now: i64,
) -> StoreResult<()> {
    lite::exec(
        tx,
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        [user_id],
    )?;
    for c in codes {
        lite::exec(
            tx,
            "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![c.id, user_id, c.hash.as_str(), now],
        )?;
    }
    Ok(())
}

pub(super) async fn remaining(pool: &SqlitePool, user_id: &str) -> StoreResult<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok(u32::try_from(n).unwrap_or(0))
}

pub(super) fn has_code(conn: &Connection, user_id: &str, hash: &str) -> StoreResult<bool> {
    let found = lite::exists(
        conn,
        "SELECT 1 FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
        [user_id, hash],
    )?;
    Ok(found)
}

pub(super) fn confirm(
    tx: &Connection,
    user_id: &str,
    id: &str,
    label: &str,
    step: u64,
    now: i64,
) -> StoreResult<()> {
    let step = i64::try_from(step).map_err(|_| crate::corrupt("time step", step))?;
    let changed = lite::exec(
        tx,
        "UPDATE authenticators SET confirmed_at = ?3, label = ?4, last_step = ?5, last_used_at = ?3 \
         WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NULL",
        params![id, user_id, now, label, step],
    )?;
    if changed != 1 {
        return Err(StoreError::NotFound);
    }
    reset_second_factor(tx, user_id)
}

/// Remove a confirmed authenticator; with `keep_one`, never the last. Removing the last one
/// voids the recovery codes too.
pub(super) fn remove(tx: &Connection, user_id: &str, id: &str, keep_one: bool) -> StoreResult<()> {
    let removed = lite::exec(
        tx,
        "DELETE FROM authenticators WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NOT NULL \
         AND (?3 = 0 OR (SELECT count(*) FROM authenticators WHERE user_id = ?2 AND confirmed_at IS NOT NULL) > 1)",
        params![id, user_id, keep_one],
    )?;
    if removed != 1 {
        let exists = lite::exists(
            tx,
            "SELECT 1 FROM authenticators WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NOT NULL",
            [id, user_id],
        )?;
        return Err(if exists {
            StoreError::Conflict(conflict::LAST_AUTHENTICATOR)
        } else {
            StoreError::NotFound
        });
    }
    let left = lite::one(
        tx,
        "SELECT count(*) FROM authenticators WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
        [user_id],
        lite::first::<i64>,
    )?;
    if left == Some(0) {
        lite::exec(
            tx,
            "DELETE FROM recovery_codes WHERE user_id = ?1",
            [user_id],
        )?;
    }
    Ok(())
}
