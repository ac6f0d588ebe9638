//! The audit log: appended with each unit of work, read newest first.

use std::future::Future;

use super::StoreResult;
use crate::audit::AuditRecord;
use latchkey_core::model::EnvSlug;

/// A page of audit events, newest first, before the event id `before`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub kind: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<String>,
    pub limit: u32,
}

/// The audit log.
pub trait AuditStore: Clone + Send + Sync + 'static {
    fn append_audit(&self, record: &AuditRecord) -> impl Future<Output = StoreResult<()>> + Send;

    fn list_audit(
        &self,
        env: &EnvSlug,
        query: &AuditQuery,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;
}
