//! A user's second factors: consuming a fresh proof, recovery codes, confirming and removing
//! authenticators.

use latchkey_core::token::TokenHash;
use latchkey_service::{
    StoreError,
    store::{NewRecoveryCode, Proof, StoreResult, conflict},
};

use super::{Db, Sql, authenticators, exists, get};
use crate::corrupt;

static OWNS: Sql = Sql::new("SELECT 1 FROM authenticators WHERE id = ?1 AND user_id = ?2");

static USE_RECOVERY_CODE: Sql = Sql::new(
    "UPDATE recovery_codes SET used_at = ?3 \
     WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
);

/// Consume a second factor in the caller's transaction: a TOTP step must be later than the
/// last one, a recovery code unused. Otherwise the whole transaction fails.
pub(crate) async fn consume_proof<D: Db>(
    db: &mut D,
    user_id: &str,
    proof: &Proof,
    now: i64,
) -> StoreResult<()> {
    match proof {
        Proof::Totp {
            authenticator_id,
            step,
        } => {
            let owned = exists(
                db,
                &OWNS,
                &[authenticator_id.as_str().into(), user_id.into()],
            )
            .await?;
            if !owned || !authenticators::advance_step(db, authenticator_id, *step, now).await? {
                return Err(StoreError::Conflict(conflict::TOTP_STEP));
            }
        }
        Proof::RecoveryCode { hash } => {
            let args = [user_id.into(), hash.as_str().into(), now.into()];
            let used = StoreError::Conflict(conflict::RECOVERY_CODE);
            db.exec_one(&USE_RECOVERY_CODE, &args, used).await?;
        }
    }
    // The factor was right: the user's second-factor count starts again.
    reset_second_factor(db, user_id).await
}

static RESET_SECOND_FACTOR: Sql =
    Sql::new("DELETE FROM failure_counters WHERE kind = 'second_factor' AND subject = ?1");

/// The user's second-factor failures start again (user ids are unique across environments).
pub(crate) async fn reset_second_factor<D: Db>(db: &mut D, user_id: &str) -> StoreResult<()> {
    db.run(&RESET_SECOND_FACTOR, &[user_id.into()]).await
}

static VOID_RECOVERY_CODES: Sql = Sql::new("DELETE FROM recovery_codes WHERE user_id = ?1");

static INSERT_RECOVERY_CODE: Sql = Sql::new(
    "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
);

/// Void every recovery code of the user.
pub(crate) async fn void_recovery_codes<D: Db>(db: &mut D, user_id: &str) -> StoreResult<()> {
    db.run(&VOID_RECOVERY_CODES, &[user_id.into()]).await
}

/// Replace the user's recovery codes: the old ones are void.
pub(crate) async fn replace_recovery_codes<D: Db>(
    db: &mut D,
    user_id: &str,
    codes: &[NewRecoveryCode],
    now: i64,
) -> StoreResult<()> {
    void_recovery_codes(db, user_id).await?;
    for c in codes {
        db.exec(
            &INSERT_RECOVERY_CODE,
            &[
                c.id.as_str().into(),
                user_id.into(),
                c.hash.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

static REMAINING: Sql =
    Sql::new("SELECT count(*) AS n FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL");

/// The user's unused recovery codes.
pub(crate) async fn remaining<D: Db>(db: &mut D, user_id: &str) -> StoreResult<u32> {
    let n: Option<i64> = db
        .one(&REMAINING, &[user_id.into()], |row| get(row, "n"))
        .await?;
    Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
}

static HAS_CODE: Sql = Sql::new(
    "SELECT 1 FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
);

pub(crate) async fn has_code<D: Db>(
    db: &mut D,
    user_id: &str,
    hash: &TokenHash,
) -> StoreResult<bool> {
    exists(db, &HAS_CODE, &[user_id.into(), hash.as_str().into()]).await
}

static CONFIRM: Sql = Sql::new(
    "UPDATE authenticators SET confirmed_at = ?3, label = ?4, last_step = ?5, last_used_at = ?3 \
     WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NULL",
);

/// Confirm a pending authenticator with the step of the code that proved it (burnt).
pub(crate) async fn confirm<D: Db>(
    db: &mut D,
    user_id: &str,
    id: &str,
    label: &str,
    step: u64,
    now: i64,
) -> StoreResult<()> {
    let step = i64::try_from(step).map_err(|_| corrupt("time step", step))?;
    let args = [
        id.into(),
        user_id.into(),
        now.into(),
        label.into(),
        step.into(),
    ];
    db.exec_one(&CONFIRM, &args, StoreError::NotFound).await?;
    reset_second_factor(db, user_id).await
}

static REMOVE: Sql = Sql::new(
    "DELETE FROM authenticators WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NOT NULL \
     AND (NOT ?3 OR (SELECT count(*) FROM authenticators \
     WHERE user_id = ?2 AND confirmed_at IS NOT NULL) > 1)",
);

static CONFIRMED: Sql = Sql::new(
    "SELECT 1 FROM authenticators WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NOT NULL",
);

static CONFIRMED_LEFT: Sql = Sql::new(
    "SELECT count(*) AS n FROM authenticators WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
);

/// Remove a confirmed authenticator; with `keep_one`, never the last. Removing the last one
/// voids the recovery codes too.
pub(crate) async fn remove<D: Db>(
    db: &mut D,
    user_id: &str,
    id: &str,
    keep_one: bool,
) -> StoreResult<()> {
    let removed = db
        .exec(&REMOVE, &[id.into(), user_id.into(), keep_one.into()])
        .await?;
    if removed != 1 {
        return Err(
            if exists(db, &CONFIRMED, &[id.into(), user_id.into()]).await? {
                StoreError::Conflict(conflict::LAST_AUTHENTICATOR)
            } else {
                StoreError::NotFound
            },
        );
    }
    let left: Option<i64> = db
        .one(&CONFIRMED_LEFT, &[user_id.into()], |row| get(row, "n"))
        .await?;
    if left == Some(0) {
        void_recovery_codes(db, user_id).await?;
    }
    Ok(())
}
