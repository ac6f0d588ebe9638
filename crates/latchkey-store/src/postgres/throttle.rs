//! Failure counters (SPEC §2), per user (password, second factor) and per client address:
//! claimed before evaluation, recorded after, reset on success. Every change is one statement
//! (an upsert, `… RETURNING` where the count is read), never read-then-write.

use latchkey_core::{
    model::{EnvSlug, LockoutSettings},
    policy,
};
use latchkey_service::store::{Claim, CounterKey, StoreResult};
use sqlx::{PgPool, Postgres, Transaction};

use crate::map_err;

/// The per-IP window: failures are counted per minute.
const IP_WINDOW: i64 = 60;

pub(super) async fn claim(
    pool: &PgPool,
    key: &CounterKey,
    settings: &LockoutSettings,
    now: i64,
) -> StoreResult<Claim> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    // A lock that has expired starts a new round; a live lock refuses without counting.
    // The claim of the last attempt a round allows sets the lock at once, provisionally: the
    // attempt's success deletes the row, its failure confirms the lock, and an attempt that is
    // never settled (a client that hangs up, a busy pool, an outage) leaves an ordinary lock
    // that expires, never a counter stuck past its threshold.
    let row: Option<(i64, i64)> = sqlx::query_as(
        "INSERT INTO failure_counters (env, kind, subject, failures, locks, locked_until, updated_at) \
         VALUES ($1, $2, $3, 1, 0, CASE WHEN $5 <= 1 THEN $4 + $6 END, $4) \
         ON CONFLICT (env, kind, subject) DO UPDATE SET \
           failures = CASE WHEN failure_counters.locked_until IS NOT NULL THEN 1 ELSE failure_counters.failures + 1 END, \
           locked_until = CASE \
             WHEN (CASE WHEN failure_counters.locked_until IS NOT NULL THEN 1 ELSE failure_counters.failures + 1 END) \
                  >= (CASE WHEN failure_counters.locks = 0 THEN $5 ELSE 1 END) \
             THEN $4 + LEAST($7, $6 * (1::bigint << LEAST(failure_counters.locks, 32)::integer)) END, \
           updated_at = $4 \
         WHERE failure_counters.locked_until IS NULL OR failure_counters.locked_until <= $4 \
         RETURNING failure_counters.failures, locks",
    )
    .bind(key.env.as_str())
    .bind(key.kind.as_str())
    .bind(&key.subject)
    .bind(now)
    .bind(i64::from(settings.threshold.max(1)))
    .bind(settings.base_lock.as_secs_i64())
    .bind(settings.max_lock.as_secs_i64())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    let claim = if let Some((failures, locks)) = row {
        let attempt = u32::try_from(failures).unwrap_or(u32::MAX);
        let locks = u32::try_from(locks).unwrap_or(u32::MAX);
        if attempt > policy::attempts_allowed(settings, locks) {
            Claim::Refused {
                retry_after: policy::lock_seconds(settings, locks),
            }
        } else {
            Claim::Allowed { attempt, locks }
        }
    } else {
        let until: Option<i64> = sqlx::query_scalar(
            "SELECT locked_until FROM failure_counters WHERE env = $1 AND kind = $2 AND subject = $3",
        )
        .bind(key.env.as_str())
        .bind(key.kind.as_str())
        .bind(&key.subject)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        Claim::Refused {
            retry_after: until.map_or(1, |u| (u - now).max(1)),
        }
    };
    tx.commit().await.map_err(map_err)?;
    Ok(claim)
}

pub(super) async fn locked_until(
    pool: &PgPool,
    key: &CounterKey,
    now: i64,
) -> StoreResult<Option<i64>> {
    let until: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT locked_until FROM failure_counters WHERE env = $1 AND kind = $2 AND subject = $3",
    )
    .bind(key.env.as_str())
    .bind(key.kind.as_str())
    .bind(&key.subject)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    Ok(until.flatten().filter(|u| *u > now))
}

/// Lock the counter for the length its history asks; returns when the lock ends.
pub(super) async fn lock(
    tx: &mut Transaction<'static, Postgres>,
    key: &CounterKey,
    locks: u32,
    settings: &LockoutSettings,
    now: i64,
) -> StoreResult<i64> {
    let until = now.saturating_add(policy::lock_seconds(settings, locks));
    sqlx::query(
        "INSERT INTO failure_counters (env, kind, subject, failures, locks, locked_until, updated_at) \
         VALUES ($1, $2, $3, 0, 1, $4, $5) \
         ON CONFLICT (env, kind, subject) DO UPDATE SET locks = failure_counters.locks + 1, locked_until = $4, updated_at = $5",
    )
    .bind(key.env.as_str())
    .bind(key.kind.as_str())
    .bind(&key.subject)
    .bind(until)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(until)
}

pub(super) async fn reset(
    tx: &mut Transaction<'static, Postgres>,
    key: &CounterKey,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM failure_counters WHERE env = $1 AND kind = $2 AND subject = $3")
        .bind(key.env.as_str())
        .bind(key.kind.as_str())
        .bind(&key.subject)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn count_ip(
    tx: &mut Transaction<'static, Postgres>,
    env: &EnvSlug,
    ip: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO failure_counters (env, kind, subject, failures, locks, window_start, updated_at) \
         VALUES ($1, 'ip', $2, 1, 0, $3, $3) \
         ON CONFLICT (env, kind, subject) DO UPDATE SET \
           failures = CASE WHEN failure_counters.window_start IS NULL OR failure_counters.window_start <= $3 - $4 THEN 1 ELSE failure_counters.failures + 1 END, \
           window_start = CASE WHEN failure_counters.window_start IS NULL OR failure_counters.window_start <= $3 - $4 THEN $3 ELSE failure_counters.window_start END, \
           updated_at = $3",
    )
    .bind(env.as_str())
    .bind(ip)
    .bind(now)
    .bind(IP_WINDOW)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn ip_failures(
    pool: &PgPool,
    env: &EnvSlug,
    ip: &str,
    now: i64,
) -> StoreResult<(u32, i64)> {
    let row: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT failures, window_start FROM failure_counters WHERE env = $1 AND kind = 'ip' AND subject = $2",
    )
    .bind(env.as_str())
    .bind(ip)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    Ok(match row {
        Some((failures, Some(start))) if start > now - IP_WINDOW => (
            u32::try_from(failures).unwrap_or(u32::MAX),
            start + IP_WINDOW,
        ),
        _ => (0, now),
    })
}
