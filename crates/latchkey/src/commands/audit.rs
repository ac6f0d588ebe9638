//! `latchkey audit ENV [--user EMAIL] [--type TYPE] [--since DURATION] [--limit N]`: an
//! environment's audit log, newest first, as a table.

use latchkey_core::model::Email;
use latchkey_service::store::AuditQuery;

use super::{fail, time};
use crate::context::Context;

pub async fn run(
    ctx: &Context,
    env: &latchkey_core::model::EnvSlug,
    user: Option<String>,
    kind: Option<String>,
    since: Option<latchkey_core::HumanDuration>,
    limit: u32,
) -> anyhow::Result<()> {
    let service = &ctx.service;
    let admin = service.cli_admin(env).await.map_err(fail)?;
    let user = match user {
        Some(email) => {
            let parsed =
                Email::from_stored(&email).map_err(|e| anyhow::anyhow!("`{email}`: {e}"))?;
            Some(
                service
                    .user_by_email(env, &parsed)
                    .await
                    .map_err(|_| anyhow::anyhow!("no user {email} in `{env}`"))?
                    .id,
            )
        }
        None => None,
    };
    let query = AuditQuery {
        user,
        kind,
        since: since.map(|d| service.now() - d.as_secs_i64()),
        until: None,
        before: None,
        limit: 0,
    };
    let page = service
        .audit_log(&admin, query, Some(limit))
        .await
        .map_err(fail)?;
    println!(
        "{:<20} {:<26} {:<8} {:<44} {:<38} DETAIL",
        "AT", "TYPE", "OUTCOME", "ACTOR", "TARGET"
    );
    for e in &page.events {
        println!(
            "{:<20} {:<26} {:<8} {:<44} {:<38} {}",
            time(Some(e.at)),
            e.kind,
            e.outcome.as_str(),
            e.actor.as_deref().unwrap_or("-"),
            e.target.as_deref().unwrap_or("-"),
            e.detail.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
