//! Audit rows: insert only (triggers refuse UPDATE and DELETE).

use latchkey_core::model::EnvSlug;
use latchkey_service::{
    AuditRecord, Outcome,
    store::{AuditQuery, StoreResult},
};
use rusqlite::{Connection, params};
use sqlx::SqlitePool;

use super::{lite, rows::get};
use crate::{corrupt, map_err};

pub(super) fn insert(tx: &Connection, r: &AuditRecord) -> StoreResult<()> {
    lite::exec(
        tx,
        "INSERT INTO audit_events (id, env, at, type, actor, target, ip, user_agent, outcome, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.id,
            r.env.as_str(),
            r.at,
            r.kind,
            r.actor,
            r.target,
            r.ip,
            r.user_agent,
            r.outcome.as_str(),
            r.detail,
        ],
    )?;
    Ok(())
}

pub(super) async fn list(
    pool: &SqlitePool,
    env: &EnvSlug,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditRecord>> {
    let found = sqlx::query(
        "SELECT id, env, at, type, actor, target, ip, user_agent, outcome, detail FROM audit_events \
         WHERE env = ?1 AND (?2 IS NULL OR target = ?2 OR actor = 'user:' || ?2) \
         AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) \
         AND (?6 IS NULL OR id < ?6) ORDER BY id DESC LIMIT ?7",
    )
    .bind(env.as_str())
    .bind(q.user.as_deref())
    .bind(q.kind.as_deref())
    .bind(q.since)
    .bind(q.until)
    .bind(q.before.as_deref())
    .bind(i64::from(q.limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    found
        .iter()
        .map(|row| {
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
        })
        .collect()
}
