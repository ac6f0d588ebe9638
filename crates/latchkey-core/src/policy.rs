//! The rules of SPEC §2 as pure functions of (settings, counters, now): the lockout schedule
//! and session lifetime. The store applies them atomically; nothing here reads the clock.

use crate::model::{Environment, LockoutSettings};

/// How many attempts of one kind a round allows before it locks: `threshold` for the first
/// round, then one per round (each failure after a lock expires locks again, twice as long).
pub fn attempts_allowed(settings: &LockoutSettings, locks_so_far: u32) -> u32 {
    if locks_so_far == 0 {
        settings.threshold.max(1)
    } else {
        1
    }
}

/// The length of the lock that starts now, given the locks that came before it in this series:
/// base, 2 × base, 4 × base, …, capped at the maximum.
pub fn lock_seconds(settings: &LockoutSettings, locks_so_far: u32) -> i64 {
    let base = settings.base_lock.as_secs_i64();
    let max = settings.max_lock.as_secs_i64().max(base);
    let factor = 1_i64.checked_shl(locks_so_far.min(32)).unwrap_or(i64::MAX);
    base.saturating_mul(factor).min(max)
}

/// When a session ends: `authenticated_at + session_max_age`, whatever the activity (S5),
/// or earlier when unused for the idle timeout. Returns `None` while it is valid.
pub fn session_end(
    env: &Environment,
    authenticated_at: i64,
    last_seen_at: i64,
    now: i64,
) -> Option<SessionEnd> {
    let absolute = authenticated_at.saturating_add(env.session_max_age.as_secs_i64());
    if now >= absolute {
        return Some(SessionEnd::MaxAge);
    }
    if let Some(idle) = env.session_idle_timeout
        && now >= last_seen_at.saturating_add(idle.as_secs_i64())
    {
        return Some(SessionEnd::Idle);
    }
    None
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    MaxAge,
    Idle,
}

/// The absolute end of a session: what `expires_at` reports.
pub fn session_expires_at(env: &Environment, authenticated_at: i64) -> i64 {
    authenticated_at.saturating_add(env.session_max_age.as_secs_i64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        HumanDuration,
        model::{DisplayName, EnvSlug, MfaPolicy},
    };

    fn env() -> Environment {
        Environment::new(
            EnvSlug::parse("prod").unwrap_or_else(|e| panic!("{e}")),
            DisplayName::parse("Prod").unwrap_or_else(|e| panic!("{e}")),
            Some(MfaPolicy::Required),
            0,
        )
    }

    #[test]
    fn lock_doubles_and_caps() {
        let s = LockoutSettings::default();
        let lengths: Vec<i64> = (0..9).map(|n| lock_seconds(&s, n)).collect();
        assert_eq!(lengths, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(lock_seconds(&s, u32::MAX), 3600);
        assert_eq!(attempts_allowed(&s, 0), 5);
        assert_eq!(attempts_allowed(&s, 1), 1);
    }

    #[test]
    fn sessions_end_at_max_age_whatever_the_activity() {
        let e = env();
        let max = 30 * 86_400;
        assert_eq!(session_end(&e, 1000, 1000 + max - 1, 1000 + max - 1), None);
        assert_eq!(
            session_end(&e, 1000, 1000 + max, 1000 + max),
            Some(SessionEnd::MaxAge)
        );
        assert_eq!(session_expires_at(&e, 1000), 1000 + max);
    }

    #[test]
    fn idle_timeout_applies_when_set() {
        let mut e = env();
        e.session_idle_timeout =
            Some(HumanDuration::from_secs(3600).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(session_end(&e, 0, 100, 100 + 3599), None);
        assert_eq!(session_end(&e, 0, 100, 100 + 3600), Some(SessionEnd::Idle));
    }
}
