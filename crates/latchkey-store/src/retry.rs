//! When a PostgreSQL operation that failed is run again (SECURITY R2, `docs/OPERATIONS.md`).
//!
//! Every storage operation is one unit of work: one transaction, or one statement. Two kinds
//! of failure are transient:
//! - the database aborted the transaction to break a deadlock or a serialization conflict
//!   ([`StoreError::Contended`]): nothing was applied, so any operation may run again, a few
//!   times, with a short randomised pause so two contenders do not meet again;
//! - the connection broke ([`StoreError::Disconnected`]): a read runs again once, on another
//!   connection from the pool; a write does not, because the break may have come after its
//!   commit and running it twice could apply it twice. It answers 503 and the client decides.
//!
//! A database that is down is neither: the pool's acquire timeout answers 503 within 2 s, and
//! retrying would only make the client wait longer.

use std::time::Duration;

use latchkey_service::StoreError;

/// Runs of an operation after the first, at most, when the database aborts it for a conflict.
pub const CONTENDED_RETRIES: u32 = 3;

/// How long to wait before running an operation again after `error`, on its attempt number
/// `attempt` (0 for the first run); `None` when it must not run again. `reads`: whether the
/// operation only reads (its kind in `stores.rs`' table).
pub fn delay(reads: bool, error: &StoreError, attempt: u32) -> Option<Duration> {
    match error {
        StoreError::Contended(_) if attempt < CONTENDED_RETRIES => {
            // 5, 10, 20 ms, each plus up to as much again at random.
            let base = 5u64 << attempt;
            let jitter = jitter_below(base);
            Some(Duration::from_millis(base + jitter))
        }
        StoreError::Disconnected(_) if attempt == 0 && reads => Some(Duration::ZERO),
        _ => None,
    }
}

/// A number in `0..limit` from the OS's random source (0 if it fails: no jitter then).
fn jitter_below(limit: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() || limit == 0 {
        return 0;
    }
    u64::from_le_bytes(bytes) % limit
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_is_run_again_three_times_with_growing_pauses() {
        let e = StoreError::Contended("deadlock detected".into());
        let waits: Vec<Option<Duration>> = (0..5).map(|a| delay(false, &e, a)).collect();
        for (attempt, wait) in waits.iter().take(3).enumerate() {
            let base = 5u64 << attempt;
            let wait = wait.expect("a conflict is retried");
            assert!(
                wait >= Duration::from_millis(base) && wait < Duration::from_millis(2 * base),
                "attempt {attempt}: {wait:?}"
            );
        }
        assert_eq!(waits[3], None, "no fourth retry");
        assert_eq!(waits[4], None);
    }

    #[test]
    fn a_broken_connection_repeats_a_read_once_and_nothing_else_is_retried() {
        let e = StoreError::Disconnected("terminating connection".into());
        assert_eq!(delay(true, &e, 0), Some(Duration::ZERO));
        assert_eq!(delay(true, &e, 1), None);
        assert_eq!(delay(false, &e, 0), None, "a write is not repeated");
        for e in [
            StoreError::Unavailable("pool timed out".into()),
            StoreError::Corrupt("bad row".into()),
            StoreError::Conflict("already exists"),
            StoreError::NotFound,
        ] {
            assert_eq!(
                delay(true, &e, 0),
                None,
                "an outage or a bug is not retried: {e}"
            );
        }
    }
}
