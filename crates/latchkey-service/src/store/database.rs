//! The database itself: whether it answers, the sealing key it was made with, its first start, its
//! housekeeping and backups.

use std::future::Future;

use super::{NewSetupToken, NewUser, StoreResult};
use crate::audit::AuditRecord;
use latchkey_core::model::Environment;

/// What the database said about the sealing key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The database had none; this key's is now recorded.
    Recorded,
    /// The database was made with this key.
    Matches,
    /// The database was made with another key, whose fingerprint this is.
    Mismatch { recorded: String },
}

impl KeyCheck {
    /// The answer of a claim that inserted `fingerprint` unless one was recorded (`inserted`
    /// tells whether it was), and then read back what is recorded.
    pub fn after_claim(inserted: bool, recorded: String, fingerprint: &str) -> Self {
        if inserted {
            Self::Recorded
        } else if recorded == fingerprint {
            Self::Matches
        } else {
            Self::Mismatch { recorded }
        }
    }
}

/// The database itself.
pub trait DatabaseStore: Clone + Send + Sync + 'static {
    /// The database answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// The latency of each storage operation, where the store measures it (`GET /metrics`).
    fn latency(&self) -> Option<&crate::metrics::StoreLatency> {
        None
    }

    /// Compare the sealing key's fingerprint with the one recorded, recording it when there is
    /// none yet.
    fn claim_key_fingerprint(
        &self,
        fingerprint: &str,
    ) -> impl Future<Output = StoreResult<KeyCheck>> + Send;

    /// Whether the key fingerprint has been recorded (the database has been initialised).
    fn key_fingerprint(&self) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// First start: create `system` and its first operator with a setup link, unless `system`
    /// exists. Returns whether it created them.
    fn bootstrap(
        &self,
        system: &Environment,
        operator: &NewUser,
        setup: &NewSetupToken,
        audit: &[AuditRecord],
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Delete what can no longer be used: ended logins and sessions, old setup links,
    /// abandoned enrolments, settled failure counters. Returns how many rows went.
    fn purge_expired(&self, now: i64) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Write a consistent copy of the whole database to `path` (which must not exist), while
    /// the database stays in use.
    fn backup_to(&self, path: &std::path::Path) -> impl Future<Output = StoreResult<()>> + Send;
}
