//! Environment rows.

use latchkey_core::model::{EnvSlug, Environment};
use latchkey_service::{StoreError, store::StoreResult};
use std::sync::LazyLock;

use rusqlite::{Connection, params_from_iter, types::Value};
use sqlx::SqlitePool;

use super::{lite, rows};
use crate::map_err;

const COLUMNS: &str = "slug, name, mfa_policy, session_max_age, session_idle_timeout, totp_window, \
     lockout_threshold, lockout_base_seconds, lockout_max_seconds, ip_failures_per_minute, issuer, \
     created_at, updated_at";

fn secs(d: latchkey_core::HumanDuration) -> i64 {
    d.as_secs_i64()
}

/// The ten settings, in the order both statements list them: name, policy, max age, idle
/// timeout, window, lockout threshold, base, max, per-IP limit, issuer.
fn settings(e: &Environment) -> [Value; 10] {
    [
        Value::Text(e.name.as_str().to_owned()),
        Value::Text(e.mfa_policy.as_str().to_owned()),
        Value::Integer(secs(e.session_max_age)),
        e.session_idle_timeout
            .map_or(Value::Null, |d| Value::Integer(secs(d))),
        Value::Integer(i64::from(e.totp_window)),
        Value::Integer(i64::from(e.lockout.threshold)),
        Value::Integer(secs(e.lockout.base_lock)),
        Value::Integer(secs(e.lockout.max_lock)),
        Value::Integer(i64::from(e.lockout.ip_failures_per_minute)),
        e.issuer.clone().map_or(Value::Null, Value::Text),
    ]
}

pub(super) fn insert(tx: &Connection, env: &Environment) -> StoreResult<()> {
    let mut values = vec![Value::Text(env.slug.as_str().to_owned())];
    values.extend(settings(env));
    values.extend([
        Value::Integer(env.created_at),
        Value::Integer(env.updated_at),
    ]);
    lite::exec(
        tx,
        "INSERT INTO environments (slug, name, mfa_policy, session_max_age, session_idle_timeout, \
         totp_window, lockout_threshold, lockout_base_seconds, lockout_max_seconds, \
         ip_failures_per_minute, issuer, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params_from_iter(values),
    )?;
    Ok(())
}

/// Replace the settings, provided the row is still exactly `previous` (what the caller read):
/// two concurrent changes cannot silently undo each other. `Conflict` if it changed meanwhile.
pub(super) fn update(
    tx: &Connection,
    env: &Environment,
    previous: &Environment,
) -> StoreResult<()> {
    let mut values = vec![Value::Text(env.slug.as_str().to_owned())];
    values.extend(settings(env));
    values.push(Value::Integer(env.updated_at));
    values.extend(settings(previous));
    values.push(Value::Integer(previous.updated_at));
    let changed = lite::exec(
        tx,
        "UPDATE environments SET name = ?2, mfa_policy = ?3, session_max_age = ?4, \
         session_idle_timeout = ?5, totp_window = ?6, lockout_threshold = ?7, \
         lockout_base_seconds = ?8, lockout_max_seconds = ?9, ip_failures_per_minute = ?10, \
         issuer = ?11, updated_at = ?12 \
         WHERE slug = ?1 AND name = ?13 AND mfa_policy = ?14 AND session_max_age = ?15 \
         AND session_idle_timeout IS ?16 AND totp_window = ?17 AND lockout_threshold = ?18 \
         AND lockout_base_seconds = ?19 AND lockout_max_seconds = ?20 \
         AND ip_failures_per_minute = ?21 AND issuer IS ?22 AND updated_at = ?23",
        params_from_iter(values),
    )?;
    if changed == 1 {
        return Ok(());
    }
    let exists = lite::exists(
        tx,
        "SELECT 1 FROM environments WHERE slug = ?1",
        [env.slug.as_str()],
    )?;
    Err(if exists {
        StoreError::Conflict("environment changed concurrently")
    } else {
        StoreError::NotFound
    })
}

static GET: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM environments WHERE slug = ?1"));

pub(super) fn get(conn: &Connection, slug: &EnvSlug) -> StoreResult<Option<Environment>> {
    lite::one(conn, &GET, [slug.as_str()], lite::environment)
}

pub(super) async fn list(pool: &SqlitePool) -> StoreResult<Vec<Environment>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM environments ORDER BY slug"));
    let found = sqlx::query(sql).fetch_all(pool).await.map_err(map_err)?;
    found.iter().map(rows::environment).collect()
}
