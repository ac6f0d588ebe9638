//! `latchkey user create|list|check|update|reset-password|reset-mfa|sign-out|clear-lockout`:
//! invite a user (printing the setup link), list users with their MFA status, report emails and
//! names a new account could not have, and the per-user admin acts, through the same use cases
//! as the admin API.

use latchkey_core::model::{DisplayName, Email, Role};
use latchkey_service::{store::MfaFilter, users::UserFilter};

use super::{fail, time};
use crate::{
    cli::{MfaStatus, UserCommand},
    context::Context,
};

pub async fn run(ctx: &Context, command: UserCommand) -> anyhow::Result<()> {
    let service = &ctx.service;
    match command {
        UserCommand::Create {
            env,
            email,
            name,
            admin,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("`{email}`: {e}"))?;
            let name = name.map(|n| DisplayName::parse(&n)).transpose()?;
            let role = if admin { Role::Admin } else { Role::User };
            let (user, link) = service
                .create_user(
                    &service.cli_admin(&env).await.map_err(fail)?,
                    email,
                    name,
                    role,
                )
                .await
                .map_err(fail)?;
            println!(
                "Invited {} ({}) to {env} as {role}; the link is single-use.",
                user.email, user.id
            );
            println!("Setup link (valid {}): {}", link.valid_for, link.url);
        }
        UserCommand::List {
            env,
            mfa,
            role,
            state,
            q,
        } => {
            let filter = UserFilter {
                mfa: mfa.map(|m| match m {
                    MfaStatus::Enrolled => MfaFilter::Enrolled,
                    MfaStatus::NotEnrolled => MfaFilter::NotEnrolled,
                }),
                role,
                state,
                q,
            };
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            println!(
                "{:<36} {:<32} {:<6} {:<9} {:<12} LAST_LOGIN",
                "ID", "EMAIL", "ROLE", "STATE", "MFA"
            );
            let mut cursor = None;
            loop {
                let page = service
                    .list_users(&admin, filter.clone(), cursor, Some(500))
                    .await
                    .map_err(fail)?;
                for u in &page.users {
                    let mfa = match (u.mfa_enrolled, u.mfa_enforced) {
                        (true, _) => "enrolled",
                        (false, true) => "enforced",
                        (false, false) => "not-enrolled",
                    };
                    println!(
                        "{:<36} {:<32} {:<6} {:<9} {:<12} {}",
                        u.id,
                        u.email,
                        u.role,
                        u.state,
                        mfa,
                        time(u.last_login_at)
                    );
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        UserCommand::Check { env } => check(ctx, env).await?,
        other => admin_action(ctx, other).await?,
    }
    Ok(())
}

/// `user check [ENV]`: every user whose email or name would be refused as new today.
async fn check(ctx: &Context, env: Option<latchkey_core::model::EnvSlug>) -> anyhow::Result<()> {
    let service = &ctx.service;
    let envs = match env {
        Some(slug) => vec![slug],
        None => service
            .list_environments()
            .await
            .map_err(fail)?
            .into_iter()
            .map(|e| e.slug)
            .collect(),
    };
    let mut found = 0usize;
    for env in envs {
        let admin = service.cli_admin(&env).await.map_err(fail)?;
        let mut cursor = None;
        loop {
            let page = service
                .list_users(&admin, UserFilter::default(), cursor, Some(500))
                .await
                .map_err(fail)?;
            for u in &page.users {
                for issue in latchkey_service::users::identity_issues(u) {
                    found += 1;
                    // Debug form: escapes show what the characters are.
                    println!("{env} {} {:?}: {issue}", u.id, u.email.as_str());
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    if found > 0 {
        anyhow::bail!(
            "{found} finding(s): rename such users (`latchkey user update ENV EMAIL --name …`) or \
             invite them again under the plain address and delete the old account"
        );
    }
    println!("No user has an email or name that a new account could not have.");
    Ok(())
}

/// The per-user admin acts: reset password or MFA, sign out, clear a lockout.
async fn admin_action(ctx: &Context, command: UserCommand) -> anyhow::Result<()> {
    let service = &ctx.service;
    match command {
        UserCommand::ResetPassword { env, email } => {
            let (admin, user) = admin_and_user(ctx, &env, &email).await?;
            let reset = service
                .reset_password(&admin, &user.id)
                .await
                .map_err(fail)?;
            println!(
                "Reset the password of {} in {env}; {} session(s) ended.",
                user.email, reset.sessions_ended
            );
            println!(
                "Setup link (valid {}): {}",
                reset.link.valid_for, reset.link.url
            );
        }
        UserCommand::ResetMfa { env, email } => {
            let (admin, user) = admin_and_user(ctx, &env, &email).await?;
            let (sessions, removed) = service.reset_mfa(&admin, &user.id).await.map_err(fail)?;
            println!(
                "Removed {removed} authenticator(s) of {} in {env}; {sessions} session(s) ended.",
                user.email
            );
        }
        UserCommand::SignOut { env, email } => {
            let (admin, user) = admin_and_user(ctx, &env, &email).await?;
            let sessions = service.sign_out(&admin, &user.id).await.map_err(fail)?;
            println!(
                "Signed {} out of {env}: {sessions} session(s) ended.",
                user.email
            );
        }
        UserCommand::ClearLockout { env, email } => {
            let (admin, user) = admin_and_user(ctx, &env, &email).await?;
            let cleared = service
                .clear_lockout(&admin, &user.id)
                .await
                .map_err(fail)?;
            println!(
                "{} {} in {env}.",
                if cleared {
                    "Cleared the failed attempts of"
                } else {
                    "No failed attempts to clear for"
                },
                user.email
            );
        }
        UserCommand::Update {
            env,
            email,
            role,
            disable,
            enable,
            name,
        } => {
            let (admin, user) = admin_and_user(ctx, &env, &email).await?;
            let patch = latchkey_service::admin::UserPatch {
                name: name.map(|n| DisplayName::parse(&n)).transpose()?,
                role,
                disabled: if disable {
                    Some(true)
                } else if enable {
                    Some(false)
                } else {
                    None
                },
                mfa_enforced: None,
            };
            let user = service
                .update_user(&admin, &user.id, patch)
                .await
                .map_err(fail)?;
            println!(
                "Updated {} in {env}: role {}, state {}.",
                user.email, user.role, user.state
            );
        }
        UserCommand::Create { .. } | UserCommand::List { .. } | UserCommand::Check { .. } => {}
    }
    Ok(())
}

/// The CLI acts as an operator on `env`, on the user with `email` there.
async fn admin_and_user(
    ctx: &Context,
    env: &latchkey_core::model::EnvSlug,
    email: &str,
) -> anyhow::Result<(
    latchkey_service::authz::EnvAdmin,
    latchkey_core::model::User,
)> {
    let admin = ctx.service.cli_admin(env).await.map_err(fail)?;
    let email = Email::from_stored(email).map_err(|e| anyhow::anyhow!("`{email}`: {e}"))?;
    let user = ctx
        .service
        .user_by_email(env, &email)
        .await
        .map_err(|_| anyhow::anyhow!("no user {email} in `{env}`"))?;
    Ok((admin, user))
}
