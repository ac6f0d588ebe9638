//! The user's own account (SPEC §5.2): sessions they end, their password, their second
//! factors — each a whole transaction's work, the user's row locked first.

use latchkey_service::{
    AuditRecord, StoreError,
    store::{Confirmation, NewRecoveryCode, Proof, StoreResult},
};

use super::{Db, Sql, audit, credentials, logins, sessions};

static TOUCH_SESSION: Sql =
    Sql::new("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND last_seen_at < ?2");

/// A session was used (for the idle timeout): its last use moves forward, never back.
pub(crate) async fn touch_session<D: Db>(db: &mut D, id: &str, now: i64) -> StoreResult<()> {
    db.run(&TOUCH_SESSION, &[id.into(), now.into()]).await
}

static END_SESSION: Sql = Sql::new("DELETE FROM sessions WHERE id = ?1 AND user_id = ?2");

/// End one of the user's sessions (a logout, or "end" on the account page): whether it was
/// theirs and live.
pub(crate) async fn end_session<D: Db>(
    db: &mut D,
    user_id: &str,
    id: &str,
    record: Option<&AuditRecord>,
) -> StoreResult<bool> {
    if db.exec(&END_SESSION, &[id.into(), user_id.into()]).await? == 0 {
        return Ok(false);
    }
    if let Some(r) = record {
        audit::insert(db, r).await?;
    }
    Ok(true)
}

static SET_PASSWORD: Sql = Sql::new(
    "UPDATE users SET password_hash = ?2, password_change_required = ?4, updated_at = ?3 \
     WHERE id = ?1 AND state = 'active'",
);

/// The user changes their password: every other session and every pending login ends.
/// Returns the sessions ended.
pub(crate) async fn change_password<D: Db>(
    db: &mut D,
    user_id: &str,
    hash: &str,
    keep_session: Option<&str>,
    now: i64,
    record: &AuditRecord,
) -> StoreResult<u64> {
    db.lock_user(user_id).await?;
    let args = [user_id.into(), hash.into(), now.into(), false.into()];
    db.exec_one(&SET_PASSWORD, &args, StoreError::NotFound)
        .await?;
    let ended = sessions::end_all(db, user_id, keep_session).await?;
    logins::end_all(db, user_id).await?;
    audit::insert(db, record).await?;
    Ok(ended)
}

/// A new authenticator is confirmed by a code from it (its step burnt); the first one brings
/// recovery codes.
pub(crate) async fn confirm_authenticator<D: Db>(db: &mut D, c: &Confirmation) -> StoreResult<()> {
    db.lock_user(&c.user_id).await?;
    credentials::confirm(db, &c.user_id, &c.authenticator_id, &c.label, c.step, c.now).await?;
    if let Some(codes) = &c.recovery_codes {
        credentials::replace_recovery_codes(db, &c.user_id, codes, c.now).await?;
    }
    for record in &c.audit {
        audit::insert(db, record).await?;
    }
    Ok(())
}

/// The user removes an authenticator, proving presence with a fresh factor (consumed here).
pub(crate) async fn remove_authenticator<D: Db>(
    db: &mut D,
    user_id: &str,
    id: &str,
    keep_one: bool,
    proof: &Proof,
    now: i64,
    record: &AuditRecord,
) -> StoreResult<()> {
    consume_proof(db, user_id, proof, now).await?;
    credentials::remove(db, user_id, id, keep_one).await?;
    audit::insert(db, record).await
}

/// The user takes ten new recovery codes, proving presence with a fresh factor.
pub(crate) async fn replace_recovery_codes<D: Db>(
    db: &mut D,
    user_id: &str,
    codes: &[NewRecoveryCode],
    proof: &Proof,
    now: i64,
    record: &AuditRecord,
) -> StoreResult<()> {
    consume_proof(db, user_id, proof, now).await?;
    credentials::replace_recovery_codes(db, user_id, codes, now).await?;
    audit::insert(db, record).await
}

/// A fresh factor proves presence for an act of the account (consumed: never twice), the
/// user's row locked first.
pub(crate) async fn consume_proof<D: Db>(
    db: &mut D,
    user_id: &str,
    proof: &Proof,
    now: i64,
) -> StoreResult<()> {
    db.lock_user(user_id).await?;
    credentials::consume_proof(db, user_id, proof, now).await
}
