//! Audit rows: insert only (triggers refuse UPDATE and DELETE).

use latchkey_core::model::EnvSlug;
use latchkey_service::{
    AuditRecord, Outcome,
    store::{AuditQuery, StoreResult},
};

use super::{Db, Row, Sql, get};
use crate::corrupt;

static INSERT: Sql = Sql::new(
    "INSERT INTO audit_events (id, env, at, type, actor, target, ip, user_agent, outcome, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
);

pub(crate) async fn insert<D: Db>(db: &mut D, r: &AuditRecord) -> StoreResult<()> {
    db.run(
        &INSERT,
        &[
            r.id.as_str().into(),
            r.env.as_str().into(),
            r.at.into(),
            r.kind.as_str().into(),
            r.actor.as_deref().into(),
            r.target.as_deref().into(),
            r.ip.as_deref().into(),
            r.user_agent.as_deref().into(),
            r.outcome.as_str().into(),
            r.detail.as_deref().into(),
        ],
    )
    .await
}

static LIST: Sql = Sql::new(
    "SELECT id, env, at, type, actor, target, ip, user_agent, outcome, detail FROM audit_events \
     WHERE env = ?1 AND (?2 IS NULL OR target = ?2 OR actor = 'user:' || ?2) \
     AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) \
     AND (?6 IS NULL OR id < ?6) ORDER BY id DESC LIMIT ?7",
);

/// A page of an environment's events, newest first.
pub(crate) async fn list<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditRecord>> {
    db.all(
        &LIST,
        &[
            env.as_str().into(),
            q.user.as_deref().into(),
            q.kind.as_deref().into(),
            q.since.into(),
            q.until.into(),
            q.before.as_deref().into(),
            i64::from(q.limit).into(),
        ],
        |row| record(row, env),
    )
    .await
}

fn record(row: &dyn Row, env: &EnvSlug) -> StoreResult<AuditRecord> {
    let outcome: String = get(row, "outcome")?;
    Ok(AuditRecord {
        id: get(row, "id")?,
        env: env.clone(),
        at: get(row, "at")?,
        kind: get(row, "type")?,
        actor: get(row, "actor")?,
        target: get(row, "target")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
        outcome: match outcome.as_str() {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            other => return Err(corrupt("outcome", other)),
        },
        detail: get(row, "detail")?,
    })
}
