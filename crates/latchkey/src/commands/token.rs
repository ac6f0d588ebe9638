//! `latchkey token create|list|revoke`: API tokens of an environment, or with `--operator` for
//! every environment. A new token is printed once; the list never shows one.

use latchkey_service::authz::Operator;

use super::{fail, time};
use crate::{cli::TokenCommand, context::Context};

pub async fn run(ctx: &Context, command: TokenCommand) -> anyhow::Result<()> {
    let service = &ctx.service;
    match command {
        TokenCommand::Create {
            env: Some(env),
            name,
            operator: None,
        } => {
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            let name = name.ok_or_else(|| {
                anyhow::anyhow!("give the token a NAME: latchkey token create {env} NAME")
            })?;
            let issued = service
                .create_env_token(&admin, &name)
                .await
                .map_err(fail)?;
            println!(
                "Created API token {} ({}) for {env}; it is shown once:",
                issued.record.name, issued.record.id
            );
            println!("{}", issued.bearer());
        }
        TokenCommand::Create {
            operator: Some(name),
            ..
        } => {
            let issued = service
                .create_operator_token(&Operator::local_cli(), &name)
                .await
                .map_err(fail)?;
            println!(
                "Created operator API token {} ({}); it is shown once:",
                issued.record.name, issued.record.id
            );
            println!("{}", issued.bearer());
        }
        TokenCommand::Create { .. } => {
            anyhow::bail!("give an environment and a name, or --operator NAME")
        }
        TokenCommand::List { env, operator: _ } => {
            let tokens = match env {
                Some(env) => {
                    service
                        .list_env_tokens(&service.cli_admin(&env).await.map_err(fail)?)
                        .await
                }
                None => service.list_operator_tokens(&Operator::local_cli()).await,
            }
            .map_err(fail)?;
            println!(
                "{:<36} {:<24} {:<20} {:<20} REVOKED",
                "ID", "NAME", "CREATED", "LAST_USED"
            );
            for t in tokens {
                println!(
                    "{:<36} {:<24} {:<20} {:<20} {}",
                    t.id,
                    t.name,
                    time(Some(t.created_at)),
                    time(t.last_used_at),
                    time(t.revoked_at)
                );
            }
        }
        TokenCommand::Revoke {
            id,
            env,
            operator: _,
        } => {
            match env {
                Some(env) => {
                    service
                        .revoke_env_token(&service.cli_admin(&env).await.map_err(fail)?, &id)
                        .await
                }
                None => {
                    service
                        .revoke_operator_token(&Operator::local_cli(), &id)
                        .await
                }
            }
            .map_err(fail)?;
            println!("Revoked API token {id}.");
        }
    }
    Ok(())
}
