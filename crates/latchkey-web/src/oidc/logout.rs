//! `GET|POST {issuer}/oidc/logout` (RP-Initiated Logout 1.0). With a valid `id_token_hint`
//! the application proved the request is its own: the session it names ends at once. Without
//! one, the user confirms on a page (a form with its CSRF token) — a link on another site
//! cannot sign anyone out. Either way the browser goes back only to a registered
//! post-logout URI.

use askama::Template;
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::Response,
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{Actor, Caller, Store, oidc::logout::LogoutParams};
use serde::Deserialize;

use super::{browser_session, param, params};
use crate::{
    extract::Client,
    pages::{
        PageEnv,
        csrf::{Csrf, Form},
        frame::{Chrome, ContinuePage, found, message_page, render, see_other},
        problem_page,
    },
    state::AppState,
};

#[derive(Template)]
#[template(path = "oidc_logout.html")]
struct ConfirmPage {
    chrome: Chrome,
    client: Option<String>,
    client_id: String,
    uri: String,
    state: String,
}

fn refused(env: &EnvSlug, why: &str) -> Response {
    message_page(
        StatusCode::BAD_REQUEST,
        "This sign-out request cannot be completed",
        why,
        Some(env.as_str()),
    )
}

/// Clear the session cookie on `r`.
fn clear_session<S>(st: &AppState<S>, r: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&st.web.cookie(st.web.cookie_name(), "", 0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Where the browser goes once signed out: the application (a redirect, or the continue page
/// after our own form), else our signed-out page.
fn afterwards(env: &EnvSlug, then: Option<String>, after_form: bool) -> Response {
    match then {
        Some(next) if after_form => render(
            StatusCode::OK,
            &ContinuePage {
                chrome: Chrome::new(env.as_str(), "", None),
                next,
            },
        ),
        Some(next) => found(&next),
        None => see_other(&format!("/e/{env}/login?notice=signed_out")),
    }
}

async fn logout<S: Store>(
    st: AppState<S>,
    env: EnvSlug,
    origin: latchkey_service::Origin,
    csrf: Csrf,
    parts: Parts,
    raw: &[u8],
) -> Response {
    let p = match params(raw) {
        Ok(p) => p,
        Err(why) => return refused(&env, &why),
    };
    let request = LogoutParams {
        id_token_hint: param(&p, "id_token_hint"),
        post_logout_redirect_uri: param(&p, "post_logout_redirect_uri"),
        state: param(&p, "state"),
        client_id: param(&p, "client_id"),
    };
    let plan = match st.service.logout_plan(&env, &request).await {
        Ok(Ok(plan)) => plan,
        Ok(Err(why)) => return refused(&env, &why),
        Err(e) => return problem_page(&e.into(), st.service.now(), Some(env.as_str())),
    };
    let session = browser_session(&st, &parts, &env).await;
    if let Some((user_id, sid)) = &plan.hinted {
        let caller = Caller {
            actor: Actor::User(user_id.clone()),
            origin,
        };
        if let Err(e) = st
            .service
            .end_hinted_session(&env, user_id, sid, &caller)
            .await
        {
            return problem_page(&e.into(), st.service.now(), Some(env.as_str()));
        }
        let mut r = afterwards(&env, plan.then, false);
        if session.as_ref().is_some_and(|s| &s.session.id == sid) {
            clear_session(&st, &mut r);
        }
        return r;
    }
    if session.is_none() {
        // Nothing to end here.
        return afterwards(&env, plan.then, false);
    }
    let client_id = request.client_id.unwrap_or_default();
    let client = if client_id.is_empty() {
        None
    } else {
        st.service
            .client_name(&env, &client_id)
            .await
            .ok()
            .flatten()
    };
    let page = ConfirmPage {
        chrome: Chrome::new(env.as_str(), &csrf.token, None),
        client,
        client_id,
        uri: request.post_logout_redirect_uri.unwrap_or_default(),
        state: request.state.unwrap_or_default(),
    };
    csrf.page(&st, StatusCode::OK, &page)
}

pub async fn logout_get<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    csrf: Csrf,
    parts: Parts,
) -> Response {
    let query = parts.uri.query().unwrap_or_default().to_owned();
    logout(st, env, origin, csrf, parts, query.as_bytes()).await
}

pub async fn logout_post<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    csrf: Csrf,
    parts: Parts,
    body: Bytes,
) -> Response {
    logout(st, env, origin, csrf, parts, &body).await
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    post_logout_redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    client_id: String,
}

/// The user confirmed: their session ends, and the browser goes back to the application.
pub async fn confirm<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: Parts,
    form: Form<ConfirmForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    let request = LogoutParams {
        id_token_hint: None,
        post_logout_redirect_uri: nonempty(f.post_logout_redirect_uri),
        state: nonempty(f.state),
        client_id: nonempty(f.client_id),
    };
    let plan = match st.service.logout_plan(&env, &request).await {
        Ok(Ok(plan)) => plan,
        Ok(Err(why)) => return refused(&env, &why),
        Err(e) => return problem_page(&e.into(), st.service.now(), Some(env.as_str())),
    };
    if let Some(p) = browser_session(&st, &parts, &env).await {
        let caller = p.caller(origin);
        if let Err(e) = st.service.logout(&p, &caller).await {
            return problem_page(&e.into(), st.service.now(), Some(env.as_str()));
        }
    }
    let mut r = afterwards(&env, plan.then, true);
    clear_session(&st, &mut r);
    csrf.renewed(&st).set_on(&st, r.headers_mut());
    r
}
