//! The methods PostgreSQL runs its own way; every other one is a line of `stores.rs`' table.

use std::path::Path;

use latchkey_service::{
    StoreError,
    store::{StepAttempt, StepOutcome, StoreResult, composed},
};

use super::PgStore;

/// Claim, judge and settle as three transactions: the store's other methods, composed.
pub(crate) async fn attempt_step(
    store: &PgStore,
    attempt: StepAttempt,
) -> StoreResult<StepOutcome> {
    composed(store, attempt).await
}

pub(crate) async fn backup_to(_store: &PgStore, _path: &Path) -> StoreResult<()> {
    // A consistent copy of a PostgreSQL database is pg_dump's job (docs/OPERATIONS.md).
    Err(StoreError::Unsupported(
        "backups of a PostgreSQL database are made with pg_dump (see docs/OPERATIONS.md)",
    ))
}
