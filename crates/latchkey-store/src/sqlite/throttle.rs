//! Failure counters (SPEC §2), per user (password, second factor) and per client address:
//! claimed before evaluation, recorded after, reset on success. Every change is one statement
//! (an upsert, `… RETURNING` where the count is read), never read-then-write.

use latchkey_core::{
    model::{EnvSlug, LockoutSettings},
    policy,
};
use latchkey_service::store::{
    Claim, CounterKey, CounterKind, Failure, FailureOutcome, StoreResult,
};
use rusqlite::{Connection, params};

use super::{audit, lite, logins};

/// The per-IP window: failures are counted per minute.
const IP_WINDOW: i64 = 60;

const LOCKED_UNTIL: &str =
    "SELECT locked_until FROM failure_counters WHERE env = ?1 AND kind = ?2 AND subject = ?3";

pub(super) fn claim(
    tx: &Connection,
    key: &CounterKey,
    settings: &LockoutSettings,
    now: i64,
) -> StoreResult<Claim> {
    // A lock that has expired starts a new round; a live lock refuses without counting.
    // The claim of the last attempt a round allows sets the lock at once, provisionally: the
    // attempt's success deletes the row, its failure confirms the lock, and an attempt that is
    // never settled (a client that hangs up, a busy pool, an outage) leaves an ordinary lock
    // that expires, never a counter stuck past its threshold.
    let row = lite::one(
        tx,
        "INSERT INTO failure_counters (env, kind, subject, failures, locks, locked_until, updated_at) \
         VALUES (?1, ?2, ?3, 1, 0, CASE WHEN ?5 <= 1 THEN ?4 + ?6 END, ?4) \
         ON CONFLICT (env, kind, subject) DO UPDATE SET \
           failures = CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failures + 1 END, \
           locked_until = CASE \
             WHEN (CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failures + 1 END) \
                  >= (CASE WHEN locks = 0 THEN ?5 ELSE 1 END) \
             THEN ?4 + min(?7, ?6 * (1 << min(locks, 32))) END, \
           updated_at = ?4 \
         WHERE locked_until IS NULL OR locked_until <= ?4 \
         RETURNING failures, locks",
        params![
            key.env.as_str(),
            key.kind.as_str(),
            key.subject,
            now,
            i64::from(settings.threshold.max(1)),
            settings.base_lock.as_secs_i64(),
            settings.max_lock.as_secs_i64(),
        ],
        |r| {
            Ok((
                lite::get::<i64>(r, "failures")?,
                lite::get::<i64>(r, "locks")?,
            ))
        },
    )?;
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
        let until = locked_until_any(tx, key)?;
        Claim::Refused {
            retry_after: until.map_or(1, |u| (u - now).max(1)),
        }
    })
}

/// The counter's lock end, expired or not.
fn locked_until_any(conn: &Connection, key: &CounterKey) -> StoreResult<Option<i64>> {
    Ok(lite::one(
        conn,
        LOCKED_UNTIL,
        params![key.env.as_str(), key.kind.as_str(), key.subject],
        lite::first::<Option<i64>>,
    )?
    .flatten())
}

/// When the counter's lock ends, if it is locked at `now`.
pub(super) fn locked_until(
    conn: &Connection,
    key: &CounterKey,
    now: i64,
) -> StoreResult<Option<i64>> {
    Ok(locked_until_any(conn, key)?.filter(|u| *u > now))
}

/// Record a failed attempt claimed under `f.claim`: the last attempt a round allows locks the
/// counter and ends the user's pending logins (SECURITY L4); the client's IP is counted; the
/// `login.locked` record is kept only with a lock.
pub(super) fn record_failure(tx: &Connection, f: &Failure<'_>) -> StoreResult<FailureOutcome> {
    let mut locked_until = None;
    if let Claim::Allowed { attempt, locks } = f.claim
        && attempt >= policy::attempts_allowed(f.settings, locks)
    {
        locked_until = Some(lock(tx, f.key, locks, f.settings, f.now)?);
        // A lock ends the pending logins (SECURITY L4): after it, the password again.
        let user = match (f.key.kind, f.user_id) {
            (_, Some(id)) => Some(id),
            (CounterKind::Password, None) => None,
            (CounterKind::SecondFactor, None) => Some(f.key.subject.as_str()),
        };
        if let Some(user) = user {
            logins::expire_all(tx, user, f.now)?;
        }
    }
    if let Some(ip) = f.ip {
        count_ip(tx, &f.key.env, ip, f.now)?;
    }
    for record in f.audit {
        if locked_until.is_some() || record.kind != "login.locked" {
            audit::insert(tx, record)?;
        }
    }
    Ok(FailureOutcome { locked_until })
}

/// Lock the counter for the length its history asks; returns when the lock ends.
pub(super) fn lock(
    tx: &Connection,
    key: &CounterKey,
    locks: u32,
    settings: &LockoutSettings,
    now: i64,
) -> StoreResult<i64> {
    let until = now.saturating_add(policy::lock_seconds(settings, locks));
    lite::exec(
        tx,
        "INSERT INTO failure_counters (env, kind, subject, failures, locks, locked_until, updated_at) \
         VALUES (?1, ?2, ?3, 0, 1, ?4, ?5) \
         ON CONFLICT (env, kind, subject) DO UPDATE SET locks = locks + 1, locked_until = ?4, updated_at = ?5",
        params![key.env.as_str(), key.kind.as_str(), key.subject, until, now],
    )?;
    Ok(until)
}

pub(super) fn reset(tx: &Connection, key: &CounterKey) -> StoreResult<()> {
    lite::exec(
        tx,
        "DELETE FROM failure_counters WHERE env = ?1 AND kind = ?2 AND subject = ?3",
        params![key.env.as_str(), key.kind.as_str(), key.subject],
    )?;
    Ok(())
}

pub(super) fn count_ip(tx: &Connection, env: &EnvSlug, ip: &str, now: i64) -> StoreResult<()> {
    lite::exec(
        tx,
        "INSERT INTO failure_counters (env, kind, subject, failures, locks, window_start, updated_at) \
         VALUES (?1, 'ip', ?2, 1, 0, ?3, ?3) \
         ON CONFLICT (env, kind, subject) DO UPDATE SET \
           failures = CASE WHEN window_start IS NULL OR window_start <= ?3 - ?4 THEN 1 ELSE failures + 1 END, \
           window_start = CASE WHEN window_start IS NULL OR window_start <= ?3 - ?4 THEN ?3 ELSE window_start END, \
           updated_at = ?3",
        params![env.as_str(), ip, now, IP_WINDOW],
    )?;
    Ok(())
}

pub(super) fn ip_failures(
    conn: &Connection,
    env: &EnvSlug,
    ip: &str,
    now: i64,
) -> StoreResult<(u32, i64)> {
    let row = lite::one(
        conn,
        "SELECT failures, window_start FROM failure_counters WHERE env = ?1 AND kind = 'ip' AND subject = ?2",
        params![env.as_str(), ip],
        |r| {
            Ok((
                lite::get::<i64>(r, "failures")?,
                lite::get::<Option<i64>>(r, "window_start")?,
            ))
        },
    )?;
    Ok(match row {
        Some((failures, Some(start))) if start > now - IP_WINDOW => (
            u32::try_from(failures).unwrap_or(u32::MAX),
            start + IP_WINDOW,
        ),
        _ => (0, now),
    })
}
