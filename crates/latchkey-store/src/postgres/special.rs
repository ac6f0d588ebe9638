//! The methods PostgreSQL runs its own way; every other one is a line of `stores.rs`' table.

use std::path::Path;

use latchkey_core::token::TokenHash;
use latchkey_service::{
    StoreError,
    store::{ApiTokenRecord, SessionView, StepAttempt, StepOutcome, StoreResult, composed},
};

use super::{PgStore, exec::Pg};
use crate::{map_err, sql};

pub(crate) async fn session_by_token(
    store: &PgStore,
    token_hash: &TokenHash,
) -> StoreResult<Option<SessionView>> {
    sql::sessions::by_token(&mut Pg(&mut *store.read().await?), token_hash.as_str()).await
}

/// Claim, judge and settle as three transactions: the store's other methods, composed.
pub(crate) async fn attempt_step(
    store: &PgStore,
    attempt: StepAttempt,
) -> StoreResult<StepOutcome> {
    composed(store, attempt).await
}

/// A live token, its use recorded in a transaction only when the last record is stale.
pub(crate) async fn use_api_token(
    store: &PgStore,
    hash: &TokenHash,
    now: i64,
) -> StoreResult<Option<ApiTokenRecord>> {
    let found = sql::api_tokens::find(&mut Pg(&mut *store.read().await?), hash, now).await?;
    let Some((record, stale)) = found else {
        return Ok(None);
    };
    if stale {
        let mut tx = store.begin().await?;
        sql::api_tokens::mark_used(&mut Pg(&mut tx), &record.id, now).await?;
        tx.commit().await.map_err(map_err)?;
    }
    Ok(Some(record))
}

pub(crate) async fn backup_to(_store: &PgStore, _path: &Path) -> StoreResult<()> {
    // A consistent copy of a PostgreSQL database is pg_dump's job (docs/OPERATIONS.md).
    Err(StoreError::Unsupported(
        "backups of a PostgreSQL database are made with pg_dump (see docs/OPERATIONS.md)",
    ))
}
