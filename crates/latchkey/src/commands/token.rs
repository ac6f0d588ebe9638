//! `latchkey token create`.

use latchkey_service::authz::Operator;

use super::fail;
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
    }
    Ok(())
}
