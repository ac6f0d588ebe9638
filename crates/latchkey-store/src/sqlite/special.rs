//! The methods SQLite runs its own way; every other one is a line of `stores.rs`' table.

use std::path::Path;

use latchkey_service::{
    StoreError,
    store::{StepAttempt, StepOutcome, StoreResult},
};

use super::{SqliteStore, exec::lite_err, logins};

/// Claim, judge and settle in one job and one synced commit: a code step costs one hand-off to
/// the writer and back, not two (`BENCHMARKS.md`).
pub(crate) async fn attempt_step(
    store: &SqliteStore,
    attempt: StepAttempt,
) -> StoreResult<StepOutcome> {
    store
        .writer
        .run_or_redo(
            move |tx| logins::attempt(tx, attempt),
            |tx, redo| logins::settle_after_rollback(tx, redo),
        )
        .await
}

/// A consistent, compacted copy by `VACUUM INTO`, from one read transaction while writers go
/// on. The file is created empty first, readable by its owner only (it holds what the database
/// holds), and is never an existing one.
pub(crate) async fn backup_to(store: &SqliteStore, path: &Path) -> StoreResult<()> {
    let target = path
        .to_str()
        .ok_or_else(|| crate::corrupt("backup path", "not UTF-8"))?;
    super::create_private(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => StoreError::Conflict("file exists"),
        _ => StoreError::Unavailable(format!("{}: {e}", path.display())),
    })?;
    // A connection of its own, so neither the writer nor a reader is held meanwhile.
    let (source, target) = (store.path.clone(), target.to_owned());
    let result = tokio::task::spawn_blocking(move || {
        rusqlite::Connection::open(source)
            .and_then(|c| {
                c.busy_timeout(std::time::Duration::from_secs(10))
                    .map(|()| c)
            })
            .and_then(|c| c.execute("VACUUM INTO ?1", [target]))
            .map(drop)
            .map_err(lite_err)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("the backup was cancelled: {e}")))
    .and_then(|copied| copied);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}
