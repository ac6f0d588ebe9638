//! The database's own facts (the sealing key's fingerprint) and its first start.

use latchkey_core::model::Environment;
use latchkey_service::{
    AuditRecord, StoreError,
    store::{KeyCheck, NewSetupToken, NewUser, StoreResult},
};

use super::{Db, Queue, Sql, audit, environments, exists, get, users};

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

static ENVIRONMENT_EXISTS: Sql = Sql::new("SELECT 1 FROM environments WHERE slug = ?1");

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
    if exists(db, &ENVIRONMENT_EXISTS, &[system.slug.as_str().into()]).await? {
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
