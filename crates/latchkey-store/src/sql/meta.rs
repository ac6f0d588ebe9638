//! The database's own facts (the sealing key's fingerprint) and its first start.

use latchkey_core::model::Environment;
use latchkey_service::{
    AuditRecord, StoreError,
    store::{KeyCheck, NewSetupToken, NewUser, StoreResult},
};

use super::{Db, Queue, Sql, audit, environments, get, users};

static CLAIM_FINGERPRINT: Sql = Sql::new(
    "INSERT INTO meta (key, value) VALUES ('key_fingerprint', ?1) ON CONFLICT (key) DO NOTHING",
);

static FINGERPRINT: Sql = Sql::new("SELECT value FROM meta WHERE key = 'key_fingerprint'");

/// Record this key's fingerprint if the database has none; say whether it matches the one it
/// has.
pub(crate) async fn claim_key_fingerprint<D: Db>(
    db: &mut D,
    fingerprint: &str,
) -> StoreResult<KeyCheck> {
    let inserted = db.exec(&CLAIM_FINGERPRINT, &[fingerprint.into()]).await?;
    let recorded = key_fingerprint(db).await?.ok_or(StoreError::NotFound)?;
    Ok(KeyCheck::after_claim(inserted == 1, recorded, fingerprint))
}

/// The fingerprint of the key the database was made with.
pub(crate) async fn key_fingerprint<D: Db>(db: &mut D) -> StoreResult<Option<String>> {
    db.one(&FINGERPRINT, &[], |row| get(row, "value")).await
}

/// The first start: `system` and its first operator with a setup link, unless `system` exists
/// (then nothing; `false`). Nodes starting together on an empty database queue up: one creates
/// it, the others then find it.
pub(crate) async fn bootstrap<D: Db>(
    db: &mut D,
    system: &Environment,
    operator: &NewUser,
    setup: &NewSetupToken,
    records: &[AuditRecord],
) -> StoreResult<bool> {
    db.serialize(Queue::Bootstrap).await?;
    if environments::exists_slug(db, &system.slug).await? {
        return Ok(false);
    }
    environments::insert(db, system).await?;
    users::insert(db, operator).await?;
    users::insert_setup_token(db, setup).await?;
    for record in records {
        audit::insert(db, record).await?;
    }
    Ok(true)
}

/// What housekeeping removes, each statement with `?1` the time now.
static PURGE: [Sql; 8] = [
    // Kept an hour past expiry, so a step on one still answers login_expired.
    Sql::new("DELETE FROM login_transactions WHERE expires_at < ?1 - 3600"),
    Sql::new(
        "DELETE FROM sessions WHERE authenticated_at + \
         (SELECT session_max_age FROM environments e WHERE e.slug = sessions.env) <= ?1",
    ),
    Sql::new(
        "DELETE FROM setup_tokens WHERE expires_at < ?1 - 30 * 86400 \
         OR used_at < ?1 - 30 * 86400",
    ),
    Sql::new("DELETE FROM authenticators WHERE confirmed_at IS NULL AND created_at < ?1 - 86400"),
    // Counters untouched for a day and not locked: a day-old failure is forgotten.
    Sql::new(
        "DELETE FROM failure_counters WHERE (locked_until IS NULL OR locked_until < ?1) \
         AND updated_at < ?1 - 86400",
    ),
    // OpenID Connect: requests nobody finished, codes past their minute, tokens past their
    // life (a used refresh token is kept as long as it would have lived: reuse detection).
    Sql::new("DELETE FROM oidc_requests WHERE expires_at < ?1"),
    Sql::new("DELETE FROM oidc_codes WHERE expires_at < ?1 - 3600"),
    Sql::new("DELETE FROM oidc_tokens WHERE expires_at < ?1"),
];

/// Remove what is over: expired logins, sessions and links, abandoned enrolments, forgotten
/// failures. Returns the rows removed.
pub(crate) async fn purge_expired<D: Db>(db: &mut D, now: i64) -> StoreResult<u64> {
    let mut gone = 0;
    for sql in &PURGE {
        gone += db.exec(sql, &[now.into()]).await?;
    }
    Ok(gone)
}

static PING: Sql = Sql::new("SELECT 1");

/// The database answers.
pub(crate) async fn ping<D: Db>(db: &mut D) -> StoreResult<()> {
    db.one(&PING, &[], |_| Ok(())).await.map(drop)
}
