//! Authenticator rows and the replay guard.

use latchkey_service::store::{AuthenticatorRecord, NewAuthenticator, StoreResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::rows;
use crate::{corrupt, map_err};

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    a: &NewAuthenticator,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO authenticators (id, user_id, label, secret_sealed, algorithm, digits, period, \
         confirmed_at, created_at, last_step) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&a.id)
    .bind(&a.user_id)
    .bind(&a.label)
    .bind(&a.secret_sealed)
    .bind(a.params.algorithm().as_str())
    .bind(i64::try_from(a.params.digits().count()).unwrap_or(6))
    .bind(i64::from(a.params.period()))
    .bind(a.confirmed_at)
    .bind(a.created_at)
    .bind(
        a.last_step
            .map(|s| i64::try_from(s).map_err(|_| corrupt("time step", s)))
            .transpose()?,
    )
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn list(pool: &PgPool, user_id: &str) -> StoreResult<Vec<AuthenticatorRecord>> {
    let found = sqlx::query(
        "SELECT id, user_id, label, secret_sealed, algorithm, digits, period, confirmed_at, \
         last_step, created_at, last_used_at FROM authenticators WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    found.iter().map(rows::authenticator).collect()
}

/// The conditional update that makes "never twice" hold across requests and nodes: it changes
/// exactly one row when `step` is later than the recorded one, and none otherwise.
pub(super) async fn advance_step(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
    step: u64,
    now: i64,
) -> StoreResult<bool> {
    let step = i64::try_from(step).map_err(|_| corrupt("time step", step))?;
    let changed = sqlx::query(
        "UPDATE authenticators SET last_step = $2, last_used_at = $3 \
         WHERE id = $1 AND (last_step IS NULL OR last_step < $2)",
    )
    .bind(id)
    .bind(step)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    Ok(changed == 1)
}
