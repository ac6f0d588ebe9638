//! `latchkey client create|list|update|delete|rotate-secret ENV …`: the applications that sign
//! in through an environment (OpenID Connect clients, SPEC §9). A secret is printed once.

use latchkey_core::HumanDuration;
use latchkey_service::{
    oidc::clients::{ClientPatch, ClientSpec},
    store::{ClientRecord, ClientType},
};

use super::fail;
use crate::{
    cli::{ClientCommand, ClientKind, ClientSettings},
    context::Context,
};

fn show(c: &ClientRecord) {
    println!("client_id:   {}", c.client_id);
    println!("name:        {}", c.name);
    println!("type:        {}", c.client_type.as_str());
    println!("redirects:   {}", c.redirect_uris.join(" "));
    if !c.post_logout_redirect_uris.is_empty() {
        println!("after logout: {}", c.post_logout_redirect_uris.join(" "));
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        println!("back-channel: {uri}");
    }
    println!(
        "require_pkce: {}, require_mfa: {}, refresh_token: {}, access_token_ttl: {}s",
        c.require_pkce, c.require_mfa, c.refresh_token, c.access_token_ttl
    );
}

/// `none` removes the back-channel URI.
#[allow(clippy::option_option)] // unchanged, removed, or set
fn backchannel(value: Option<String>) -> Option<Option<String>> {
    value.map(|v| (!v.eq_ignore_ascii_case("none")).then_some(v))
}

pub async fn run(ctx: &Context, command: ClientCommand) -> anyhow::Result<()> {
    let service = &ctx.service;
    match command {
        ClientCommand::Create {
            env,
            id,
            kind,
            settings,
        } => {
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            let ClientSettings {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                require_mfa,
                require_pkce,
                access_token_ttl,
                refresh_token,
            } = settings;
            let spec = ClientSpec {
                name: name
                    .or_else(|| id.clone())
                    .unwrap_or_else(|| "Application".into()),
                client_id: id,
                client_type: Some(match kind {
                    ClientKind::Confidential => ClientType::Confidential,
                    ClientKind::Public => ClientType::Public,
                }),
                require_pkce,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri: backchannel(backchannel_logout_uri).flatten(),
                require_mfa,
                access_token_ttl: access_token_ttl.map(HumanDuration::as_secs_i64),
                refresh_token,
            };
            let issued = service.create_client(&admin, spec).await.map_err(fail)?;
            println!("Registered application in {env}:");
            show(&issued.client);
            println!(
                "issuer:      {}",
                latchkey_service::oidc::issuer(&service.config().public_url, env.as_str())
            );
            if let Some(secret) = issued.secret {
                println!("client_secret (shown once): {}", secret.expose());
            }
        }
        ClientCommand::List { env } => {
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            let clients = service.list_clients(&admin).await.map_err(fail)?;
            if clients.is_empty() {
                println!("No applications in {env}.");
            }
            for c in &clients {
                show(c);
                println!();
            }
        }
        ClientCommand::Update { env, id, settings } => {
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            let s = settings;
            let patch = ClientPatch {
                name: s.name,
                require_pkce: s.require_pkce,
                redirect_uris: (!s.redirect_uris.is_empty()).then_some(s.redirect_uris),
                post_logout_redirect_uris: (!s.post_logout_redirect_uris.is_empty())
                    .then_some(s.post_logout_redirect_uris),
                backchannel_logout_uri: backchannel(s.backchannel_logout_uri),
                require_mfa: s.require_mfa,
                access_token_ttl: s.access_token_ttl.map(HumanDuration::as_secs_i64),
                refresh_token: s.refresh_token,
            };
            let client = service
                .update_client(&admin, &id, patch)
                .await
                .map_err(fail)?;
            println!("Updated application in {env}:");
            show(&client);
        }
        ClientCommand::Delete { env, id } => {
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            service.delete_client(&admin, &id).await.map_err(fail)?;
            println!("Deleted application {id} from {env}; its tokens no longer work.");
        }
        ClientCommand::RotateSecret { env, id } => {
            let admin = service.cli_admin(&env).await.map_err(fail)?;
            let secret = service
                .rotate_client_secret(&admin, &id)
                .await
                .map_err(fail)?;
            println!("New secret for {id} in {env} (shown once; the old one no longer works):");
            println!("{}", secret.expose());
        }
    }
    Ok(())
}
