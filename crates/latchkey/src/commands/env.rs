//! `latchkey env create|list|set|enforce-mfa`: create, list and configure environments (as the
//! operator), and enforce MFA on an environment's users.

use latchkey_core::model::DisplayName;
use latchkey_service::{authz::Operator, environments::EnvironmentPatch};

use super::fail;
use crate::{cli::EnvCommand, context::Context};

pub async fn run(ctx: &Context, command: EnvCommand) -> anyhow::Result<()> {
    let service = &ctx.service;
    match command {
        EnvCommand::Create { slug, name, mfa } => {
            let name = name.map(|n| DisplayName::parse(&n)).transpose()?;
            let env = service
                .create_environment(&Operator::local_cli(), slug, name, mfa)
                .await
                .map_err(fail)?;
            println!(
                "Created environment {} ({}), MFA {}.",
                env.slug, env.name, env.mfa_policy
            );
        }
        EnvCommand::List => {
            let envs = service.list_environments().await.map_err(fail)?;
            println!(
                "{:<24} {:<9} {:<8} {:<6} NAME",
                "SLUG", "MFA", "MAX_AGE", "IDLE"
            );
            for e in envs {
                let idle = e
                    .session_idle_timeout
                    .map_or_else(|| "none".to_owned(), |d| d.to_string());
                println!(
                    "{:<24} {:<9} {:<8} {:<6} {}",
                    e.slug, e.mfa_policy, e.session_max_age, idle, e.name
                );
            }
        }
        EnvCommand::Set {
            slug,
            name,
            mfa,
            session_max_age,
            session_idle_timeout,
            totp_window,
            issuer,
            lockout_threshold,
            lockout_base,
            lockout_max,
            ip_failures_per_minute,
        } => {
            let patch = EnvironmentPatch {
                name: name.map(|n| DisplayName::parse(&n)).transpose()?,
                mfa_policy: mfa,
                session_max_age,
                session_idle_timeout: session_idle_timeout.map(|d| d.0),
                totp_window,
                issuer: issuer.map(|i| Some(i).filter(|i| !i.eq_ignore_ascii_case("none"))),
                lockout_threshold,
                lockout_base,
                lockout_max,
                ip_failures_per_minute,
            };
            let env = service
                .update_environment(&Operator::local_cli(), &slug, patch)
                .await
                .map_err(fail)?;
            let idle = env
                .session_idle_timeout
                .map_or_else(|| "none".to_owned(), |d| d.to_string());
            println!(
                "Updated {}: MFA {}, session max age {}, idle timeout {idle}, TOTP window ±{}.",
                env.slug, env.mfa_policy, env.session_max_age, env.totp_window
            );
        }
        EnvCommand::EnforceMfa { slug, all } => {
            let admin = service.cli_admin(&slug).await.map_err(fail)?;
            let c = service.enforce_mfa(&admin, all).await.map_err(fail)?;
            println!(
                "Enforced MFA in {slug}: {} user(s) newly marked, {} user(s) signed out, {} session(s) ended.",
                c.users_marked, c.users_signed_out, c.sessions_ended
            );
        }
        EnvCommand::RotateSigningKey { slug, delay } => {
            let delay_secs = delay.as_secs_i64();
            let kid = service
                .rotate_signing_key(&slug, delay_secs, &latchkey_service::Caller::cli())
                .await
                .map_err(fail)?;
            println!(
                "Published signing key {kid} for {slug}; it signs from {} (in {delay}).",
                super::time(Some(service.now() + delay_secs))
            );
        }
    }
    Ok(())
}
