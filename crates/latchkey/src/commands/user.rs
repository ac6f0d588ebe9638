//! `latchkey user create|list`.

use latchkey_core::model::{DisplayName, Email, Role};
use latchkey_service::{Caller, store::MfaFilter, users::UserFilter};

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
                .create_user(&Caller::cli(), &env, email, name, role)
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
            println!(
                "{:<36} {:<32} {:<6} {:<9} {:<12} LAST_LOGIN",
                "ID", "EMAIL", "ROLE", "STATE", "MFA"
            );
            let mut cursor = None;
            loop {
                let page = service
                    .list_users(&env, filter.clone(), cursor, Some(500))
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
    }
    Ok(())
}
