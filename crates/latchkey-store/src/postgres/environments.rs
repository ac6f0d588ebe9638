//! Environment rows.

use latchkey_core::model::{EnvSlug, Environment};
use latchkey_service::{StoreError, store::StoreResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::rows;
use crate::map_err;

const COLUMNS: &str = "slug, name, mfa_policy, session_max_age, session_idle_timeout, totp_window, \
     lockout_threshold, lockout_base_seconds, lockout_max_seconds, ip_failures_per_minute, issuer, \
     created_at, updated_at";

fn secs(d: latchkey_core::HumanDuration) -> i64 {
    d.as_secs_i64()
}

/// The ten settings, in the order both statements list them: name, policy, max age, idle
/// timeout, window, lockout threshold, base, max, per-IP limit, issuer.
fn bind_settings<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    e: &'q Environment,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(e.name.as_str())
        .bind(e.mfa_policy.as_str())
        .bind(secs(e.session_max_age))
        .bind(e.session_idle_timeout.map(secs))
        .bind(i64::from(e.totp_window))
        .bind(i64::from(e.lockout.threshold))
        .bind(secs(e.lockout.base_lock))
        .bind(secs(e.lockout.max_lock))
        .bind(i64::from(e.lockout.ip_failures_per_minute))
        .bind(e.issuer.as_deref())
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    env: &Environment,
) -> StoreResult<()> {
    let query = sqlx::query(
        "INSERT INTO environments (slug, name, mfa_policy, session_max_age, session_idle_timeout, \
         totp_window, lockout_threshold, lockout_base_seconds, lockout_max_seconds, \
         ip_failures_per_minute, issuer, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    );
    bind_settings(query.bind(env.slug.as_str()), env)
        .bind(env.created_at)
        .bind(env.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Replace the settings, provided the row is still exactly `previous` (what the caller read):
/// two concurrent changes cannot silently undo each other. `Conflict` if it changed meanwhile.
pub(super) async fn update(
    tx: &mut Transaction<'static, Postgres>,
    env: &Environment,
    previous: &Environment,
) -> StoreResult<()> {
    let p = previous;
    let query = sqlx::query(
        "UPDATE environments SET name = $2, mfa_policy = $3, session_max_age = $4, \
         session_idle_timeout = $5, totp_window = $6, lockout_threshold = $7, \
         lockout_base_seconds = $8, lockout_max_seconds = $9, ip_failures_per_minute = $10, \
         issuer = $11, updated_at = $12 \
         WHERE slug = $1 AND name = $13 AND mfa_policy = $14 AND session_max_age = $15 \
         AND session_idle_timeout IS NOT DISTINCT FROM $16 AND totp_window = $17 AND lockout_threshold = $18 \
         AND lockout_base_seconds = $19 AND lockout_max_seconds = $20 \
         AND ip_failures_per_minute = $21 AND issuer IS NOT DISTINCT FROM $22 AND updated_at = $23",
    );
    let query = bind_settings(query.bind(env.slug.as_str()), env).bind(env.updated_at);
    let changed = bind_settings(query, p)
        .bind(p.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    if changed == 1 {
        return Ok(());
    }
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1::bigint FROM environments WHERE slug = $1")
            .bind(env.slug.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
    Err(if exists.is_some() {
        StoreError::Conflict("environment changed concurrently")
    } else {
        StoreError::NotFound
    })
}

pub(super) async fn get(pool: &PgPool, slug: &EnvSlug) -> StoreResult<Option<Environment>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM environments WHERE slug = $1"
    ));
    let row = sqlx::query(sql)
        .bind(slug.as_str())
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(rows::environment).transpose()
}

pub(super) async fn list(pool: &PgPool) -> StoreResult<Vec<Environment>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM environments ORDER BY slug"));
    let found = sqlx::query(sql).fetch_all(pool).await.map_err(map_err)?;
    found.iter().map(rows::environment).collect()
}
