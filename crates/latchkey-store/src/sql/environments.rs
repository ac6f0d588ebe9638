//! Environment rows.

use latchkey_core::model::{EnvSlug, Environment};
use latchkey_service::{StoreError, store::StoreResult};

use latchkey_service::AuditRecord;

use super::{Db, Sql, Value, audit, exists, rows};

fn secs(d: latchkey_core::HumanDuration) -> i64 {
    d.as_secs_i64()
}

/// The ten settings, in the order both statements list them: name, policy, max age, idle
/// timeout, window, lockout threshold, base, max, per-IP limit, issuer.
fn settings(e: &Environment) -> [Value<'_>; 10] {
    [
        e.name.as_str().into(),
        e.mfa_policy.as_str().into(),
        secs(e.session_max_age).into(),
        e.session_idle_timeout.map(secs).into(),
        i64::from(e.totp_window).into(),
        i64::from(e.lockout.threshold).into(),
        secs(e.lockout.base_lock).into(),
        secs(e.lockout.max_lock).into(),
        i64::from(e.lockout.ip_failures_per_minute).into(),
        e.issuer.as_deref().into(),
    ]
}

static INSERT: Sql = Sql::new(
    "INSERT INTO environments (slug, name, mfa_policy, session_max_age, session_idle_timeout, \
     totp_window, lockout_threshold, lockout_base_seconds, lockout_max_seconds, \
     ip_failures_per_minute, issuer, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
);

pub(crate) async fn insert<D: Db>(db: &mut D, env: &Environment) -> StoreResult<()> {
    let mut args: Vec<Value<'_>> = vec![env.slug.as_str().into()];
    args.extend(settings(env));
    args.extend([Value::from(env.created_at), Value::from(env.updated_at)]);
    db.run(&INSERT, &args).await
}

static UPDATE: Sql = Sql::new(
    "UPDATE environments SET name = ?2, mfa_policy = ?3, session_max_age = ?4, \
     session_idle_timeout = ?5, totp_window = ?6, lockout_threshold = ?7, \
     lockout_base_seconds = ?8, lockout_max_seconds = ?9, ip_failures_per_minute = ?10, \
     issuer = ?11, updated_at = ?12 \
     WHERE slug = ?1 AND name = ?13 AND mfa_policy = ?14 AND session_max_age = ?15 \
     AND session_idle_timeout IS NOT DISTINCT FROM ?16 AND totp_window = ?17 \
     AND lockout_threshold = ?18 AND lockout_base_seconds = ?19 AND lockout_max_seconds = ?20 \
     AND ip_failures_per_minute = ?21 AND issuer IS NOT DISTINCT FROM ?22 AND updated_at = ?23",
);

static EXISTS: Sql = Sql::new("SELECT 1 FROM environments WHERE slug = ?1");

/// Replace the settings, provided the row is still exactly `previous` (what the caller read):
/// two concurrent changes cannot silently undo each other. `Conflict` if it changed meanwhile.
pub(crate) async fn update<D: Db>(
    db: &mut D,
    env: &Environment,
    previous: &Environment,
) -> StoreResult<()> {
    let mut args: Vec<Value<'_>> = vec![env.slug.as_str().into()];
    args.extend(settings(env));
    args.push(env.updated_at.into());
    args.extend(settings(previous));
    args.push(previous.updated_at.into());
    if db.exec(&UPDATE, &args).await? == 1 {
        return Ok(());
    }
    Err(if exists_slug(db, &env.slug).await? {
        StoreError::Conflict("environment changed concurrently")
    } else {
        StoreError::NotFound
    })
}

/// Whether an environment of this slug exists.
pub(crate) async fn exists_slug<D: Db>(db: &mut D, slug: &EnvSlug) -> StoreResult<bool> {
    exists(db, &EXISTS, &[slug.as_str().into()]).await
}

static GET: Sql = Sql::new(concat!(
    "SELECT ",
    env_columns!(),
    " FROM environments e WHERE e.slug = ?1"
));

pub(crate) async fn get<D: Db>(db: &mut D, slug: &EnvSlug) -> StoreResult<Option<Environment>> {
    db.one(&GET, &[slug.as_str().into()], rows::environment)
        .await
}

static LIST: Sql = Sql::new(concat!(
    "SELECT ",
    env_columns!(),
    " FROM environments e ORDER BY e.slug"
));

pub(crate) async fn list<D: Db>(db: &mut D) -> StoreResult<Vec<Environment>> {
    db.all(&LIST, &[], rows::environment).await
}

/// An operator creates an environment.
pub(crate) async fn create<D: Db>(
    db: &mut D,
    env: &Environment,
    record: &AuditRecord,
) -> StoreResult<()> {
    insert(db, env).await?;
    audit::insert(db, record).await
}

/// An operator changes an environment's settings, provided no one changed them meanwhile.
pub(crate) async fn change<D: Db>(
    db: &mut D,
    env: &Environment,
    previous: &Environment,
    record: &AuditRecord,
) -> StoreResult<()> {
    update(db, env, previous).await?;
    audit::insert(db, record).await
}
