//! The methods SQLite runs its own way; every other one is a line of `stores.rs`' table.

use std::path::Path;

use latchkey_core::token::TokenHash;
use latchkey_service::{
    StoreError,
    store::{ApiTokenRecord, SessionView, StepAttempt, StepOutcome, StoreResult},
};

use super::{
    SqliteStore,
    exec::{Lite, lite_err},
    logins,
};
use crate::sql::{self, run_now};

/// The session check: from the cache while nothing was written since (`cache.rs`).
pub(crate) async fn session_by_token(
    store: &SqliteStore,
    token_hash: &TokenHash,
) -> StoreResult<Option<SessionView>> {
    store.fast.session_by_token(token_hash.as_str())
}

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

/// A live token, its use recorded on the writer only when the last record is stale.
pub(crate) async fn use_api_token(
    store: &SqliteStore,
    hash: &TokenHash,
    now: i64,
) -> StoreResult<Option<ApiTokenRecord>> {
    let found = store
        .fast
        .read(|c| run_now(sql::api_tokens::find(&mut Lite(c), hash, now)))?;
    let Some((record, stale)) = found else {
        return Ok(None);
    };
    if stale {
        let id = record.id.clone();
        store
            .writer
            .run(move |tx| run_now(sql::api_tokens::mark_used(&mut Lite(tx), &id, now)))
            .await?;
    }
    Ok(Some(record))
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
