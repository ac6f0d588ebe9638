//! Authenticator rows in a transaction: the units of work are `sql::authenticators`'.

use latchkey_service::store::{NewAuthenticator, StoreResult};
use sqlx::{Postgres, Transaction};

use super::exec::Pg;
use crate::sql;

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    a: &NewAuthenticator,
) -> StoreResult<()> {
    sql::authenticators::insert(&mut Pg(tx), a).await
}

pub(super) async fn advance_step(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
    step: u64,
    now: i64,
) -> StoreResult<bool> {
    sql::authenticators::advance_step(&mut Pg(tx), id, step, now).await
}
