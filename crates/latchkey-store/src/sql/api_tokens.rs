//! API tokens (SPEC §5.3): only their hashes are stored.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{ApiTokenRecord, NewApiToken, StoreResult},
};

use super::{Db, Row, Sql, audit, get};

fn token(row: &dyn Row) -> StoreResult<ApiTokenRecord> {
    let env: Option<String> = get(row, "env")?;
    Ok(ApiTokenRecord {
        id: get(row, "id")?,
        env: env.map(super::rows::env_slug).transpose()?,
        name: get(row, "name")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

macro_rules! select_tokens {
    ($tail:literal) => {
        concat!(
            "SELECT id, env, name, created_by, created_at, last_used_at, revoked_at \
             FROM api_tokens ",
            $tail
        )
    };
}

static INSERT: Sql = Sql::new(
    "INSERT INTO api_tokens (id, token_hash, env, name, created_by, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
);

pub(crate) async fn create<D: Db>(
    db: &mut D,
    t: &NewApiToken,
    record: &AuditRecord,
) -> StoreResult<()> {
    db.exec(
        &INSERT,
        &[
            t.id.as_str().into(),
            t.hash.as_str().into(),
            t.env.as_ref().map(EnvSlug::as_str).into(),
            t.name.as_str().into(),
            t.created_by.as_deref().into(),
            t.created_at.into(),
        ],
    )
    .await?;
    audit::insert(db, record).await
}

static LIST: Sql = Sql::new(select_tokens!(
    "WHERE env IS NOT DISTINCT FROM ?1 ORDER BY id"
));

/// An environment's tokens, or (with `None`) the operator tokens.
pub(crate) async fn list<D: Db>(
    db: &mut D,
    env: Option<&EnvSlug>,
) -> StoreResult<Vec<ApiTokenRecord>> {
    db.all(&LIST, &[env.map(EnvSlug::as_str).into()], token)
        .await
}

static REVOKE: Sql = Sql::new(
    "UPDATE api_tokens SET revoked_at = ?3 \
     WHERE id = ?1 AND env IS NOT DISTINCT FROM ?2 AND revoked_at IS NULL",
);

/// Revoke a live token of `env`; whether there was one.
pub(crate) async fn revoke<D: Db>(
    db: &mut D,
    env: Option<&EnvSlug>,
    id: &str,
    now: i64,
    record: &AuditRecord,
) -> StoreResult<bool> {
    let revoked = db
        .exec(
            &REVOKE,
            &[id.into(), env.map(EnvSlug::as_str).into(), now.into()],
        )
        .await?;
    if revoked == 0 {
        return Ok(false);
    }
    audit::insert(db, record).await?;
    Ok(true)
}

static BY_HASH: Sql = Sql::new(select_tokens!(
    "WHERE token_hash = ?1 AND revoked_at IS NULL"
));

/// A live token by its hash.
pub(crate) async fn find<D: Db>(
    db: &mut D,
    hash: &TokenHash,
) -> StoreResult<Option<ApiTokenRecord>> {
    db.one(&BY_HASH, &[hash.as_str().into()], token).await
}

static MARK_USED: Sql = Sql::new("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1");

pub(crate) async fn mark_used<D: Db>(db: &mut D, id: &str, now: i64) -> StoreResult<()> {
    db.run(&MARK_USED, &[id.into(), now.into()]).await
}
