//! Authenticator rows and the replay guard.

use latchkey_service::store::{AuthenticatorRecord, NewAuthenticator, StoreResult};

use super::{Db, Sql, exists, rows};
use crate::corrupt;

fn step_value(step: u64) -> StoreResult<i64> {
    i64::try_from(step).map_err(|_| corrupt("time step", step))
}

static INSERT: Sql = Sql::new(
    "INSERT INTO authenticators (id, user_id, label, secret_sealed, algorithm, digits, period, \
     confirmed_at, created_at, last_step) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
);

pub(crate) async fn insert<D: Db>(db: &mut D, a: &NewAuthenticator) -> StoreResult<()> {
    let last_step = a.last_step.map(step_value).transpose()?;
    db.run(
        &INSERT,
        &[
            a.id.as_str().into(),
            a.user_id.as_str().into(),
            a.label.as_str().into(),
            a.secret_sealed.as_slice().into(),
            a.params.algorithm().as_str().into(),
            i64::try_from(a.params.digits().count()).unwrap_or(6).into(),
            i64::from(a.params.period()).into(),
            a.confirmed_at.into(),
            a.created_at.into(),
            last_step.into(),
        ],
    )
    .await
}

static LIST: Sql = Sql::new(
    "SELECT id, user_id, label, secret_sealed, algorithm, digits, period, confirmed_at, \
     last_step, created_at, last_used_at FROM authenticators WHERE user_id = ?1 ORDER BY id",
);

pub(crate) async fn list<D: Db>(
    db: &mut D,
    user_id: &str,
) -> StoreResult<Vec<AuthenticatorRecord>> {
    db.all(&LIST, &[user_id.into()], rows::authenticator).await
}

static HAS_CONFIRMED: Sql =
    Sql::new("SELECT 1 FROM authenticators WHERE user_id = ?1 AND confirmed_at IS NOT NULL");

/// Whether the user has a confirmed authenticator.
pub(crate) async fn has_confirmed<D: Db>(db: &mut D, user_id: &str) -> StoreResult<bool> {
    exists(db, &HAS_CONFIRMED, &[user_id.into()]).await
}

static ADVANCE: Sql = Sql::new(
    "UPDATE authenticators SET last_step = ?2, last_used_at = ?3 \
     WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
);

/// The conditional update that makes "never twice" hold across requests and nodes: it changes
/// exactly one row when `step` is later than the recorded one, and none otherwise.
pub(crate) async fn advance_step<D: Db>(
    db: &mut D,
    id: &str,
    step: u64,
    now: i64,
) -> StoreResult<bool> {
    let changed = db
        .exec(&ADVANCE, &[id.into(), step_value(step)?.into(), now.into()])
        .await?;
    Ok(changed == 1)
}
