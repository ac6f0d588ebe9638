//! Administration (SPEC §4): the units moved here so far, each a whole transaction's work.

use latchkey_core::model::{EnvSlug, Role, User};
use latchkey_service::{
    AuditRecord, StoreError,
    store::{EnforceCounts, EnvStats, NewSetupToken, StoreResult, UserUpdate},
};

use super::{
    Db, Queue, Row, Sql, Value, audit, authenticators, credentials, exists, get, logins, sessions,
    users,
};

static USER_IN_ENV: Sql = Sql::new("SELECT 1 FROM users WHERE env = ?1 AND id = ?2");

/// Lock the user's row, and find them in `env` (nothing crosses environments): `NotFound`
/// otherwise.
async fn lock_user_in<D: Db>(db: &mut D, env: &EnvSlug, id: &str) -> StoreResult<()> {
    db.lock_user(id).await?;
    if exists(db, &USER_IN_ENV, &[env.as_str().into(), id.into()]).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

static REVOKE_TOKENS_OF: Sql = Sql::new(
    "UPDATE api_tokens SET revoked_at = ?2 \
     WHERE created_by = 'user:' || ?1 AND revoked_at IS NULL",
);

/// Tokens a user made stop working when the user can no longer administer (SECURITY S7).
pub(crate) async fn revoke_tokens_of<D: Db>(
    db: &mut D,
    user_id: &str,
    now: i64,
) -> StoreResult<()> {
    db.run(&REVOKE_TOKENS_OF, &[user_id.into(), now.into()])
        .await
}

/// End a user's sessions and pending logins; returns the sessions ended.
pub(crate) async fn end_everything<D: Db>(db: &mut D, user_id: &str) -> StoreResult<u64> {
    let ended = sessions::end_all(db, user_id, None).await?;
    logins::end_all(db, user_id).await?;
    Ok(ended)
}

static CLEAR_PASSWORD: Sql = Sql::new(
    "UPDATE users SET password_hash = NULL, password_change_required = ?3, updated_at = ?2 \
     WHERE id = ?1",
);

/// An admin resets a password (SPEC §4.2): the password goes, every session and pending login
/// ends, and a new setup link replaces the old ones. Returns the sessions ended.
pub(crate) async fn reset_password<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    user_id: &str,
    setup: &NewSetupToken,
    now: i64,
    record: &AuditRecord,
) -> StoreResult<u64> {
    lock_user_in(db, env, user_id).await?;
    db.exec(&CLEAR_PASSWORD, &[user_id.into(), now.into(), true.into()])
        .await?;
    let ended = end_everything(db, user_id).await?;
    users::insert_setup_token(db, setup).await?;
    audit::insert(db, record).await?;
    Ok(ended)
}

static REMOVE_CONFIRMED: Sql =
    Sql::new("DELETE FROM authenticators WHERE user_id = ?1 AND confirmed_at IS NOT NULL");

/// The pending authenticators an MFA reset removes after the confirmed ones.
static REMOVE_PENDING: Sql = Sql::new("DELETE FROM authenticators WHERE user_id = ?1");

/// An admin resets a lost device (SPEC §4.3): every second factor goes and the user is signed
/// out. Returns `(sessions ended, authenticators removed)`.
pub(crate) async fn reset_mfa<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    user_id: &str,
    record: &AuditRecord,
) -> StoreResult<(u64, u64)> {
    lock_user_in(db, env, user_id).await?;
    let removed = db.exec(&REMOVE_CONFIRMED, &[user_id.into()]).await?;
    db.exec(&REMOVE_PENDING, &[user_id.into()]).await?;
    credentials::void_recovery_codes(db, user_id).await?;
    credentials::reset_second_factor(db, user_id).await?;
    let ended = end_everything(db, user_id).await?;
    audit::insert(db, record).await?;
    Ok((ended, removed))
}

/// An admin signs a user out everywhere. Returns the sessions ended.
pub(crate) async fn sign_out<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    user_id: &str,
    record: &AuditRecord,
) -> StoreResult<u64> {
    lock_user_in(db, env, user_id).await?;
    let ended = end_everything(db, user_id).await?;
    audit::insert(db, record).await?;
    Ok(ended)
}

static CLEAR_LOCKOUT: Sql = Sql::new(
    "DELETE FROM failure_counters WHERE env = ?1 \
     AND ((kind = 'second_factor' AND subject = ?2) OR (kind = 'password' AND subject = ?3))",
);

/// An admin clears a user's lockout: both counters start again. Whether there was one.
pub(crate) async fn clear_lockout<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    user_id: &str,
    email_normalized: &str,
    record: &AuditRecord,
) -> StoreResult<bool> {
    let cleared = db
        .exec(
            &CLEAR_LOCKOUT,
            &[env.as_str().into(), user_id.into(), email_normalized.into()],
        )
        .await?;
    audit::insert(db, record).await?;
    Ok(cleared > 0)
}

static PREVIEW: Sql = Sql::new(
    "WITH targets AS (SELECT u.id, u.mfa_enforced, NOT EXISTS (SELECT 1 FROM authenticators a \
       WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL) AS without_mfa \
       FROM users u WHERE u.env = ?1) \
     SELECT \
       (SELECT count(*) FROM targets WHERE without_mfa AND mfa_enforced = ?3) AS marked, \
       (SELECT count(DISTINCT s.user_id) FROM sessions s JOIN targets t ON t.id = s.user_id \
          WHERE s.env = ?1 AND (?2 OR t.without_mfa)) AS signed_out, \
       (SELECT count(*) FROM sessions s JOIN targets t ON t.id = s.user_id \
          WHERE s.env = ?1 AND (?2 OR t.without_mfa)) AS ended",
);

fn count(row: &dyn Row, column: &str) -> StoreResult<u64> {
    Ok(u64::try_from(get::<i64>(row, column)?).unwrap_or(0))
}

/// What enforce-MFA would do now: the users it would mark, sign out, the sessions it would end.
pub(crate) async fn enforce_preview<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    all: bool,
) -> StoreResult<EnforceCounts> {
    let counts = db
        .one(
            &PREVIEW,
            &[env.as_str().into(), all.into(), false.into()],
            |row| {
                Ok(EnforceCounts {
                    users_marked: count(row, "marked")?,
                    users_signed_out: count(row, "signed_out")?,
                    sessions_ended: count(row, "ended")?,
                })
            },
        )
        .await?;
    counts.ok_or(StoreError::NotFound)
}

static STATS: Sql = Sql::new(
    "SELECT \
       (SELECT count(*) FROM users WHERE env = ?1) AS users, \
       (SELECT count(DISTINCT a.user_id) FROM authenticators a JOIN users u ON u.id = a.user_id \
          WHERE u.env = ?1 AND a.confirmed_at IS NOT NULL) AS with_mfa, \
       (SELECT count(*) FROM users WHERE env = ?1 AND mfa_enforced = ?3) AS enforced, \
       (SELECT count(*) FROM sessions s WHERE s.env = ?1 AND s.authenticated_at + \
          (SELECT session_max_age FROM environments e WHERE e.slug = ?1) > ?2) AS sessions, \
       (SELECT count(*) FROM audit_events \
          WHERE env = ?1 AND type = 'login.locked' AND at > ?2 - 86400) AS lockouts",
);

/// An environment's figures for its admin page.
pub(crate) async fn stats<D: Db>(db: &mut D, env: &EnvSlug, now: i64) -> StoreResult<EnvStats> {
    let stats = db
        .one(
            &STATS,
            &[env.as_str().into(), now.into(), true.into()],
            |row| {
                Ok(EnvStats {
                    users: count(row, "users")?,
                    users_with_mfa: count(row, "with_mfa")?,
                    users_mfa_enforced: count(row, "enforced")?,
                    active_sessions: count(row, "sessions")?,
                    lockouts_24h: count(row, "lockouts")?,
                })
            },
        )
        .await?;
    stats.ok_or(StoreError::NotFound)
}

/// The conflict a change that would leave `system` without an operator gets.
pub(crate) const LAST_OPERATOR: &str = "last operator";

static IS_OPERATOR: Sql = Sql::new(
    "SELECT 1 FROM users WHERE env = ?1 AND id = ?2 AND role = 'admin' AND state = 'active'",
);

static OTHER_OPERATORS: Sql = Sql::new(
    "SELECT count(*) AS n FROM users \
     WHERE env = ?1 AND role = 'admin' AND state = 'active' AND id <> ?2",
);

/// `system` must keep an active admin (an operator): refuse a change that would remove the
/// last one, checked inside the writing transaction so two concurrent changes cannot both pass.
pub(crate) async fn keep_an_operator<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    id: &str,
) -> StoreResult<()> {
    if !env.is_system() {
        return Ok(());
    }
    db.serialize(Queue::Operators).await?;
    let args = [env.as_str().into(), id.into()];
    if !exists(db, &IS_OPERATOR, &args).await? {
        return Ok(());
    }
    let others: Option<i64> = db.one(&OTHER_OPERATORS, &args, |row| get(row, "n")).await?;
    if others == Some(0) {
        return Err(StoreError::Conflict(LAST_OPERATOR));
    }
    Ok(())
}

static UPDATE_USER: Sql = Sql::new(
    "UPDATE users SET name = coalesce(?3, name), role = coalesce(?4, role), \
     mfa_enforced = coalesce(?5, mfa_enforced), \
     state = CASE WHEN ?6 = 'disabled' THEN 'disabled' \
                  WHEN ?6 = 'enabled' AND state = 'disabled' \
                  THEN CASE WHEN password_hash IS NULL THEN 'invited' ELSE 'active' END \
                  ELSE state END, \
     updated_at = ?7 WHERE env = ?1 AND id = ?2",
);

/// An admin changes a user (SPEC §4): name, role, disabled, `mfa_enforced`, with what each
/// change brings. `None` when the user is not in `env`; else the user as now, and the sessions
/// ended.
pub(crate) async fn update_user<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    id: &str,
    u: &UserUpdate,
    now: i64,
    records: &[AuditRecord],
) -> StoreResult<Option<(User, u64)>> {
    match lock_user_in(db, env, id).await {
        Err(StoreError::NotFound) => return Ok(None),
        other => other?,
    }
    let loses_admin = u.disabled == Some(true) || u.role == Some(Role::User);
    if loses_admin {
        keep_an_operator(db, env, id).await?;
    }
    let state = u.disabled.map(|d| if d { "disabled" } else { "enabled" });
    db.exec(
        &UPDATE_USER,
        &[
            env.as_str().into(),
            id.into(),
            u.name.as_deref().into(),
            u.role.map(Role::as_str).into(),
            Value::Bool(u.mfa_enforced),
            state.into(),
            now.into(),
        ],
    )
    .await?;
    let mut ended = 0;
    if u.disabled == Some(true) {
        ended = end_everything(db, id).await?;
        // A disabled user's links must not work again when they are enabled.
        users::void_setup_tokens(db, id).await?;
    }
    if loses_admin {
        revoke_tokens_of(db, id, now).await?;
    }
    // Marked like *enforce MFA* does for one user: without an authenticator, signed out.
    if u.mfa_enforced == Some(true) && !authenticators::has_confirmed(db, id).await? {
        ended += end_everything(db, id).await?;
    }
    for r in records {
        audit::insert(db, r).await?;
    }
    let user = users::get(db, env, id).await?.ok_or(StoreError::NotFound)?;
    Ok(Some((user, ended)))
}

static DELETE_USER: Sql = Sql::new("DELETE FROM users WHERE env = ?1 AND id = ?2");

/// An admin deletes a user: everything of theirs goes (the foreign keys' cascades), the
/// tokens they made are revoked, the audit log stays. Whether they existed.
pub(crate) async fn delete_user<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    id: &str,
    record: &AuditRecord,
) -> StoreResult<bool> {
    db.lock_user_to_delete(id).await?;
    // Nothing happens to a user of another environment (not even to their tokens).
    if !exists(db, &USER_IN_ENV, &[env.as_str().into(), id.into()]).await? {
        return Ok(false);
    }
    keep_an_operator(db, env, id).await?;
    revoke_tokens_of(db, id, record.at).await?;
    db.exec(&DELETE_USER, &[env.as_str().into(), id.into()])
        .await?;
    audit::insert(db, record).await?;
    Ok(true)
}

/// Enforce-MFA's targets, a temporary table of the transaction's connection (emptied before and
/// after use; PostgreSQL also empties it at commit).
static TARGETS_TABLE: Sql = Sql::dialects(
    "CREATE TEMP TABLE IF NOT EXISTS enforce_targets (id TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TEMP TABLE IF NOT EXISTS enforce_targets (id TEXT PRIMARY KEY) ON COMMIT DELETE ROWS",
);

static EMPTY_TARGETS: Sql = Sql::new("DELETE FROM enforce_targets");

static FILL_TARGETS: Sql = Sql::new(
    "INSERT INTO enforce_targets (id) SELECT u.id FROM users u WHERE u.env = ?1 AND (?2 OR NOT \
     EXISTS (SELECT 1 FROM authenticators a WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL))",
);

static MARK: Sql = Sql::new(
    "UPDATE users SET mfa_enforced = ?2 WHERE env = ?1 AND mfa_enforced = ?3 AND NOT EXISTS \
     (SELECT 1 FROM authenticators a WHERE a.user_id = users.id AND a.confirmed_at IS NOT NULL)",
);

static TARGETS_SIGNED_IN: Sql = Sql::new(
    "SELECT count(DISTINCT s.user_id) AS n FROM sessions s \
     JOIN enforce_targets t ON t.id = s.user_id WHERE s.env = ?1",
);

static END_TARGET_SESSIONS: Sql =
    Sql::new("DELETE FROM sessions WHERE env = ?1 AND user_id IN (SELECT id FROM enforce_targets)");

static END_TARGET_LOGINS: Sql = Sql::new(
    "DELETE FROM login_transactions WHERE env = ?1 AND user_id IN (SELECT id FROM enforce_targets)",
);

/// Enforce MFA (SPEC §4.6) in one transaction: users without an authenticator are marked
/// `mfa_enforced`, and they (everyone with `all`) are signed out. The audit record gets the
/// counts.
pub(crate) async fn enforce_mfa<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    all: bool,
    record: &AuditRecord,
) -> StoreResult<EnforceCounts> {
    let in_env = [env.as_str().into()];
    db.exec(&TARGETS_TABLE, &[]).await?;
    db.exec(&EMPTY_TARGETS, &[]).await?;
    db.exec(&FILL_TARGETS, &[env.as_str().into(), all.into()])
        .await?;
    let users_marked = db
        .exec(&MARK, &[env.as_str().into(), true.into(), false.into()])
        .await?;
    let signed_out: Option<i64> = db
        .one(&TARGETS_SIGNED_IN, &in_env, |row| get(row, "n"))
        .await?;
    let sessions_ended = db.exec(&END_TARGET_SESSIONS, &in_env).await?;
    db.exec(&END_TARGET_LOGINS, &in_env).await?;
    db.exec(&EMPTY_TARGETS, &[]).await?;
    let counts = EnforceCounts {
        users_marked,
        users_signed_out: signed_out.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        sessions_ended,
    };
    let mut record = record.clone();
    record.detail = Some(format!(
        "{{\"all\":{all},\"users_marked\":{},\"users_signed_out\":{},\"sessions_ended\":{}}}",
        counts.users_marked, counts.users_signed_out, counts.sessions_ended
    ));
    audit::insert(db, &record).await?;
    Ok(counts)
}
