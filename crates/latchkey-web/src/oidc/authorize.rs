//! `GET|POST {issuer}/oidc/authorize`, and `…/authorize/resume`, where the login pages send
//! the browser back. A code goes back to the application by a redirect when the browser came
//! straight from it; after our own login forms it goes through the continue page, because the
//! CSP's `form-action 'self'` would block a form's redirect chain that ends on another origin.

use axum::{
    body::Bytes,
    extract::State,
    http::{StatusCode, request::Parts},
    response::Response,
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{
    Store,
    oidc::authorize::{Authorization, AuthorizeParams},
};

use super::{browser_session, param, params};
use crate::{
    extract::Client,
    pages::{
        PageEnv,
        frame::{Chrome, ContinuePage, found, message_page, render, see_other},
        problem_page,
    },
    redirect,
    state::AppState,
};

fn authorize_params(p: &[(String, String)]) -> AuthorizeParams {
    AuthorizeParams {
        client_id: param(p, "client_id"),
        redirect_uri: param(p, "redirect_uri"),
        response_type: param(p, "response_type"),
        scope: param(p, "scope"),
        state: param(p, "state"),
        nonce: param(p, "nonce"),
        code_challenge: param(p, "code_challenge"),
        code_challenge_method: param(p, "code_challenge_method"),
        prompt: param(p, "prompt"),
        max_age: param(p, "max_age"),
        acr_values: param(p, "acr_values"),
        login_hint: param(p, "login_hint"),
    }
}

fn refused(env: &EnvSlug, why: &str) -> Response {
    message_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request cannot be completed",
        why,
        Some(env.as_str()),
    )
}

/// Where the browser goes for an answer. `continue_page`: it came from our own forms.
fn respond(env: &EnvSlug, a: Authorization, continue_page: bool) -> Response {
    match a {
        Authorization::Return(url) if continue_page => render(
            StatusCode::OK,
            &ContinuePage {
                chrome: Chrome::new(env.as_str(), "", None),
                next: url,
            },
        ),
        Authorization::Return(url) => found(&url),
        Authorization::Refuse(why) => refused(env, &why),
        Authorization::SignIn(s) => {
            let resume = format!(
                "/e/{env}/oidc/authorize/resume?handle={}",
                s.handle.expose()
            );
            let mut login = format!(
                "/e/{env}/login?rd={}&prompt=login",
                redirect::encode(&resume)
            );
            if s.mfa {
                login.push_str("&mfa=1");
            }
            if let Some(hint) = s.login_hint {
                login.push_str("&email=");
                login.push_str(&redirect::encode(&hint));
            }
            see_other(&login)
        }
    }
}

async fn authorize<S: Store>(
    st: AppState<S>,
    env: EnvSlug,
    parts: Parts,
    origin: latchkey_service::Origin,
    raw: &[u8],
) -> Response {
    let p = match params(raw) {
        Ok(p) => p,
        Err(why) => return refused(&env, &why),
    };
    let session = browser_session(&st, &parts, &env).await;
    let caller = latchkey_service::Caller::anonymous(origin);
    match st
        .service
        .authorize(&env, authorize_params(&p), session.as_ref(), &caller)
        .await
    {
        Ok(a) => respond(&env, a, false),
        Err(e) => problem_page(&e.into(), st.service.now(), Some(env.as_str())),
    }
}

pub async fn authorize_get<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: Parts,
) -> Response {
    let query = parts.uri.query().unwrap_or_default().to_owned();
    authorize(st, env, parts, origin, query.as_bytes()).await
}

pub async fn authorize_post<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: Parts,
    body: Bytes,
) -> Response {
    authorize(st, env, parts, origin, &body).await
}

/// The browser is back from the login pages with its request's handle.
pub async fn resume<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: Parts,
) -> Response {
    let p = params(parts.uri.query().unwrap_or_default().as_bytes()).unwrap_or_default();
    let handle = param(&p, "handle").unwrap_or_default();
    let session = browser_session(&st, &parts, &env).await;
    let caller = latchkey_service::Caller::anonymous(origin);
    match st
        .service
        .resume_authorization(&env, &handle, session.as_ref(), &caller)
        .await
    {
        Ok(a) => respond(&env, a, true),
        Err(e) => problem_page(&e.into(), st.service.now(), Some(env.as_str())),
    }
}
