//! Failure counters (SPEC §2), per user (password, second factor) and per client address:
//! claimed before evaluation, recorded after, reset on success. Every change is one statement
//! (an upsert, `… RETURNING` where the count is read), never read-then-write.

use latchkey_core::{
    model::{EnvSlug, LockoutSettings},
    policy,
};
use latchkey_service::store::{Claim, CounterKey, StoreResult};

use super::{Db, Sql, Value, audit, get};

/// The per-IP window: failures are counted per minute.
const IP_WINDOW: i64 = 60;

/// `base × 2^locks` for the row being updated, in SQL both databases read alike (a `BIGINT`
/// shifted by an `INTEGER`, the exponent capped at 32 as `policy::lock_seconds` caps it).
macro_rules! doubled {
    () => {
        "?6 * (CAST(1 AS BIGINT) << CAST(CASE WHEN failure_counters.locks < 32 \
         THEN failure_counters.locks ELSE 32 END AS INTEGER))"
    };
}

/// The claim's upsert. The lock it sets provisionally follows `policy::lock_seconds` (base ×
/// 2^locks, at most max): `the_claims_lock_is_the_policys` in the store suite ties the two.
static CLAIM: Sql = Sql::new(concat!(
    "INSERT INTO failure_counters (env, kind, subject, failures, locks, locked_until, updated_at) \
     VALUES (?1, ?2, ?3, 1, 0, CASE WHEN ?5 <= 1 THEN ?4 + ?6 END, ?4) \
     ON CONFLICT (env, kind, subject) DO UPDATE SET \
       failures = CASE WHEN failure_counters.locked_until IS NOT NULL THEN 1 \
         ELSE failure_counters.failures + 1 END, \
       locked_until = CASE \
         WHEN (CASE WHEN failure_counters.locked_until IS NOT NULL THEN 1 \
               ELSE failure_counters.failures + 1 END) \
              >= (CASE WHEN failure_counters.locks = 0 THEN ?5 ELSE 1 END) \
         THEN ?4 + CASE WHEN ?7 < ",
    doubled!(),
    " THEN ?7 ELSE ",
    doubled!(),
    " END END, \
       updated_at = ?4 \
     WHERE failure_counters.locked_until IS NULL OR failure_counters.locked_until <= ?4 \
     RETURNING failures, locks"
));

static LOCKED_UNTIL: Sql = Sql::new(
    "SELECT locked_until FROM failure_counters WHERE env = ?1 AND kind = ?2 AND subject = ?3",
);

fn key_args(key: &CounterKey) -> [Value<'_>; 3] {
    [
        key.env.as_str().into(),
        key.kind.as_str().into(),
        key.subject.as_str().into(),
    ]
}

/// Count an attempt before it is judged: allowed (its number in the round), or refused by a
/// live lock without counting.
pub(crate) async fn claim<D: Db>(
    db: &mut D,
    key: &CounterKey,
    settings: &LockoutSettings,
    now: i64,
) -> StoreResult<Claim> {
    // A lock that has expired starts a new round; a live lock refuses without counting.
    // The claim of the last attempt a round allows sets the lock at once, provisionally: the
    // attempt's success deletes the row, its failure confirms the lock, and an attempt that is
    // never settled (a client that hangs up, a busy pool, an outage) leaves an ordinary lock
    // that expires, never a counter stuck past its threshold.
    let [env, kind, subject] = key_args(key);
    let row = db
        .one(
            &CLAIM,
            &[
                env,
                kind,
                subject,
                now.into(),
                i64::from(settings.threshold.max(1)).into(),
                settings.base_lock.as_secs_i64().into(),
                settings.max_lock.as_secs_i64().into(),
            ],
            |r| Ok((get::<i64>(r, "failures")?, get::<i64>(r, "locks")?)),
        )
        .await?;
    Ok(if let Some((failures, locks)) = row {
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
        let until = locked_until_any(db, key).await?;
        Claim::Refused {
            retry_after: until.map_or(1, |u| (u - now).max(1)),
        }
    })
}

/// The counter's lock end, expired or not.
async fn locked_until_any<D: Db>(db: &mut D, key: &CounterKey) -> StoreResult<Option<i64>> {
    Ok(db
        .one(&LOCKED_UNTIL, &key_args(key), |r| {
            get::<Option<i64>>(r, "locked_until")
        })
        .await?
        .flatten())
}

/// When the counter's lock ends, if it is locked at `now`.
pub(crate) async fn locked_until<D: Db>(
    db: &mut D,
    key: &CounterKey,
    now: i64,
) -> StoreResult<Option<i64>> {
    Ok(locked_until_any(db, key).await?.filter(|u| *u > now))
}

static LOCK: Sql = Sql::new(
    "INSERT INTO failure_counters (env, kind, subject, failures, locks, locked_until, updated_at) \
     VALUES (?1, ?2, ?3, 0, 1, ?4, ?5) \
     ON CONFLICT (env, kind, subject) DO UPDATE SET locks = failure_counters.locks + 1, \
     locked_until = ?4, updated_at = ?5",
);

/// Lock the counter until `until`: one more lock in its series.
pub(crate) async fn lock<D: Db>(
    db: &mut D,
    key: &CounterKey,
    until: i64,
    now: i64,
) -> StoreResult<()> {
    let [env, kind, subject] = key_args(key);
    db.run(&LOCK, &[env, kind, subject, until.into(), now.into()])
        .await
}

static RESET: Sql =
    Sql::new("DELETE FROM failure_counters WHERE env = ?1 AND kind = ?2 AND subject = ?3");

/// A success: the counter starts again.
pub(crate) async fn reset<D: Db>(db: &mut D, key: &CounterKey) -> StoreResult<()> {
    db.run(&RESET, &key_args(key)).await
}

static COUNT_IP: Sql = Sql::new(
    "INSERT INTO failure_counters (env, kind, subject, failures, locks, window_start, updated_at) \
     VALUES (?1, 'ip', ?2, 1, 0, ?3, ?3) \
     ON CONFLICT (env, kind, subject) DO UPDATE SET \
       failures = CASE WHEN failure_counters.window_start IS NULL \
         OR failure_counters.window_start <= ?3 - ?4 THEN 1 ELSE failure_counters.failures + 1 END, \
       window_start = CASE WHEN failure_counters.window_start IS NULL \
         OR failure_counters.window_start <= ?3 - ?4 THEN ?3 ELSE failure_counters.window_start END, \
       updated_at = ?3",
);

/// Count a failure from a client address in its one-minute window.
pub(crate) async fn count_ip<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    ip: &str,
    now: i64,
) -> StoreResult<()> {
    db.run(
        &COUNT_IP,
        &[env.as_str().into(), ip.into(), now.into(), IP_WINDOW.into()],
    )
    .await
}

static IP_FAILURES: Sql = Sql::new(
    "SELECT failures, window_start FROM failure_counters \
     WHERE env = ?1 AND kind = 'ip' AND subject = ?2",
);

/// A client address's failures in its current window, and when the window ends.
pub(crate) async fn ip_failures<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    ip: &str,
    now: i64,
) -> StoreResult<(u32, i64)> {
    let row = db
        .one(&IP_FAILURES, &[env.as_str().into(), ip.into()], |r| {
            Ok((
                get::<i64>(r, "failures")?,
                get::<Option<i64>>(r, "window_start")?,
            ))
        })
        .await?;
    Ok(match row {
        Some((failures, Some(start))) if start > now - IP_WINDOW => (
            u32::try_from(failures).unwrap_or(u32::MAX),
            start + IP_WINDOW,
        ),
        _ => (0, now),
    })
}

/// A failure from a client address outside any account's counter (an unknown email, a bad
/// setup link), with the `login.throttled` record when it is the first refusal of a window.
pub(crate) async fn record_ip_failure<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    ip: &str,
    now: i64,
    record: Option<&latchkey_service::AuditRecord>,
) -> StoreResult<()> {
    count_ip(db, env, ip, now).await?;
    if let Some(r) = record {
        audit::insert(db, r).await?;
    }
    Ok(())
}
