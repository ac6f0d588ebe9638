//! Audit rows in a transaction: the unit of work is `sql::audit`'s.

use latchkey_service::{AuditRecord, store::StoreResult};
use sqlx::{Postgres, Transaction};

use super::exec::Pg;
use crate::sql;

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    r: &AuditRecord,
) -> StoreResult<()> {
    sql::audit::insert(&mut Pg(tx), r).await
}
