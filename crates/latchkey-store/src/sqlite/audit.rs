//! Audit rows on the writer's transaction: the unit of work is `sql::audit`'s.

use latchkey_service::{AuditRecord, store::StoreResult};
use rusqlite::Connection;

use super::exec::Lite;
use crate::sql::{self, run_now};

pub(super) fn insert(tx: &Connection, r: &AuditRecord) -> StoreResult<()> {
    run_now(sql::audit::insert(&mut Lite(tx), r))
}
