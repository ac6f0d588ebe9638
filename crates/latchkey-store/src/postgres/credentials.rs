//! A user's second factors: consuming a fresh proof, recovery codes, confirming and removing
//! authenticators.

use latchkey_service::{
    StoreError,
    store::{NewRecoveryCode, Proof, StoreResult, conflict},
};
use sqlx::{PgPool, Postgres, Transaction};

use super::authenticators;
use crate::map_err;

/// Consume a second factor in the caller's transaction: a TOTP step must be later than the
/// last one, a recovery code unused. Otherwise the whole transaction fails.
pub(super) async fn consume_proof(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    proof: &Proof,
    now: i64,
) -> StoreResult<()> {
    match proof {
        Proof::Totp {
            authenticator_id,
            step,
        } => {
            let owned: Option<i64> = sqlx::query_scalar(
                "SELECT 1::bigint FROM authenticators WHERE id = $1 AND user_id = $2",
            )
            .bind(authenticator_id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            if owned.is_none()
                || !authenticators::advance_step(tx, authenticator_id, *step, now).await?
            {
                return Err(StoreError::Conflict(conflict::TOTP_STEP));
            }
        }
        Proof::RecoveryCode { hash } => {
            let used = sqlx::query(
                "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(hash.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if used != 1 {
                return Err(StoreError::Conflict(conflict::RECOVERY_CODE));
            }
        }
    }
    // The factor was right: the user's second-factor count starts again (user ids are unique
    // across environments).
    reset_second_factor(tx, user_id).await?;
    Ok(())
}

/// The user's second-factor failures start again (user ids are unique across environments).
pub(super) async fn reset_second_factor(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM failure_counters WHERE kind = 'second_factor' AND subject = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Replace the user's recovery codes: the old ones are void.
pub(super) async fn replace_recovery_codes(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    codes: &[NewRecoveryCode],
    now: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    for c in codes {
        sqlx::query("INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&c.id)
            .bind(user_id)
            .bind(c.hash.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

pub(super) async fn remaining(pool: &PgPool, user_id: &str) -> StoreResult<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok(u32::try_from(n).unwrap_or(0))
}

pub(super) async fn has_code(pool: &PgPool, user_id: &str, hash: &str) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1::bigint FROM recovery_codes WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(hash)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    Ok(found.is_some())
}

pub(super) async fn confirm(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    id: &str,
    label: &str,
    step: u64,
    now: i64,
) -> StoreResult<()> {
    let step = i64::try_from(step).map_err(|_| crate::corrupt("time step", step))?;
    let changed = sqlx::query(
        "UPDATE authenticators SET confirmed_at = $3, label = $4, last_step = $5, last_used_at = $3 \
         WHERE id = $1 AND user_id = $2 AND confirmed_at IS NULL",
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .bind(label)
    .bind(step)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if changed != 1 {
        return Err(StoreError::NotFound);
    }
    reset_second_factor(tx, user_id).await?;
    Ok(())
}

/// Remove a confirmed authenticator; with `keep_one`, never the last. Removing the last one
/// voids the recovery codes too.
pub(super) async fn remove(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    id: &str,
    keep_one: bool,
) -> StoreResult<()> {
    let removed = sqlx::query(
        "DELETE FROM authenticators WHERE id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL \
         AND (NOT $3 OR (SELECT count(*) FROM authenticators WHERE user_id = $2 AND confirmed_at IS NOT NULL) > 1)",
    )
    .bind(id)
    .bind(user_id)
    .bind(keep_one)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if removed != 1 {
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1::bigint FROM authenticators WHERE id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
        return Err(if exists.is_some() {
            StoreError::Conflict(conflict::LAST_AUTHENTICATOR)
        } else {
            StoreError::NotFound
        });
    }
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM authenticators WHERE user_id = $1 AND confirmed_at IS NOT NULL",
    )
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    if left == 0 {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}
