//! The web pages (SPEC §6): server-rendered HTML under `/e/{env}/` that works without
//! JavaScript. Each handler parses a form, calls the same use case as the JSON API, and renders
//! a compiled template (askama, escaped by default). Every form is CSRF-protected
//! ([`form`]); every answer carries the strict Content-Security-Policy (`app.rs`). Here: the
//! pages' routes, the stylesheet, and the extractors whose rejection is a page (`PageEnv`,
//! `PageQuery`, `PagePath`, `PageUser`, `PageAdmin`).
//!
//! Nothing here decides who may do what: that is the service's (`admin_of`, `operator`).

pub mod account;
pub mod admin;
pub mod admin_templates;
pub mod applications;
pub mod audit;
pub mod csrf;
pub mod enrol;
pub mod environments;
pub mod frame;
pub mod login;

use axum::{
    Router,
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{ServiceError, Store, session::Principal};

use self::frame::{Notice, error_page};
use crate::{
    extract::{Env, cookie, origin_of},
    problem::Problem,
    redirect,
    state::AppState,
};

/// The pages' routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/static/latchkey.css", get(stylesheet))
        .route("/e/{env}", get(home))
        .route("/e/{env}/", get(home))
        .route(
            "/e/{env}/login",
            get(login::form::<S>).post(login::submit::<S>),
        )
        .route(
            "/e/{env}/login/password",
            get(login::password_form::<S>).post(login::password_submit::<S>),
        )
        .route(
            "/e/{env}/login/mfa",
            get(login::mfa_form::<S>).post(login::mfa_submit::<S>),
        )
        .route(
            "/e/{env}/login/mfa/setup",
            get(login::setup_form::<S>).post(login::setup_submit::<S>),
        )
        .route(
            "/e/{env}/setup",
            get(login::link_form::<S>).post(login::link_submit::<S>),
        )
        .route("/e/{env}/logout", post(login::logout::<S>))
        .route("/e/{env}/account", get(account::page::<S>))
        .route("/e/{env}/account/password", post(account::password::<S>))
        .route(
            "/e/{env}/account/sessions/{id}/end",
            post(account::end_session::<S>),
        )
        .route("/e/{env}/account/mfa/add", post(account::add_begin::<S>))
        .route(
            "/e/{env}/account/mfa/{id}/confirm",
            post(account::add_confirm::<S>),
        )
        .route(
            "/e/{env}/account/mfa/{id}/remove",
            post(account::remove::<S>),
        )
        .route(
            "/e/{env}/account/recovery-codes",
            post(account::regenerate::<S>),
        )
        .route("/e/{env}/admin", get(admin::users::<S>))
        .route("/e/{env}/admin/users", post(admin::invite::<S>))
        .route("/e/{env}/admin/users/{id}", get(admin::user::<S>))
        .route(
            "/e/{env}/admin/users/{id}/{action}",
            get(admin::confirm::<S>).post(admin::act::<S>),
        )
        .route(
            "/e/{env}/admin/enforce-mfa",
            get(admin::enforce_confirm::<S>).post(admin::enforce::<S>),
        )
        .route("/e/{env}/admin/audit", get(audit::audit::<S>))
        .route(
            "/e/{env}/admin/applications",
            get(applications::list::<S>).post(applications::create::<S>),
        )
        .route(
            "/e/{env}/admin/applications/{client_id}/secret",
            post(applications::rotate::<S>),
        )
        .route(
            "/e/{env}/admin/applications/{client_id}/delete",
            post(applications::delete::<S>),
        )
        .route(
            "/e/{env}/admin/environments",
            post(environments::create_environment::<S>),
        )
        .route(
            "/e/{env}/admin/environments/{slug}",
            post(environments::update_environment::<S>),
        )
}

const STYLESHEET: &str = include_str!("../../static/latchkey.css");

async fn stylesheet() -> Response {
    let mut r = STYLESHEET.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// `/e/{env}/`: the account page, which sends a browser without a session to the login.
async fn home(Env(env): Env) -> Response {
    frame::see_other(&format!("/e/{env}/account"))
}

/// The environment in the path of a page; an unknown one is a 404 page.
pub struct PageEnv(pub EnvSlug);

/// The slug in the path, or the 404 page (no database read).
async fn path_slug<S: Store>(parts: &mut Parts, state: &AppState<S>) -> Result<EnvSlug, Response> {
    Env::from_request_parts(parts, state)
        .await
        .map(|Env(env)| env)
        .map_err(|_| error_page(StatusCode::NOT_FOUND, Notice::NotFound, None))
}

/// `Ok` when `env` exists; the 404 page when it does not. Asked only where no session of
/// `env` has already shown that it exists.
async fn known<S: Store>(state: &AppState<S>, env: &EnvSlug) -> Result<(), Response> {
    match state.service.environment(env).await {
        Ok(_) => Ok(()),
        Err(ServiceError::NotFound(_)) => {
            Err(error_page(StatusCode::NOT_FOUND, Notice::NotFound, None))
        }
        Err(e) => Err(problem_page(
            &e.into(),
            state.service.now(),
            Some(env.as_str()),
        )),
    }
}

impl<S: Store> FromRequestParts<AppState<S>> for PageEnv {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let env = path_slug(parts, state).await?;
        known(state, &env).await?;
        Ok(Self(env))
    }
}

/// Query parameters of a page; malformed ones are a 400 page, never a bare text answer.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> FromRequestParts<St> for PageQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, Notice::BadAddress, None))
    }
}

/// Path parameters of a page; malformed ones are a 404 page.
pub struct PagePath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, St: Send + Sync> FromRequestParts<St> for PagePath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|_| error_page(StatusCode::NOT_FOUND, Notice::NotFound, None))
    }
}

/// A page answer for a problem that has no form to go back to.
pub fn problem_page(p: &Problem, now: i64, env: Option<&str>) -> Response {
    let status = frame::status_of(p);
    let title = status.canonical_reason().unwrap_or("Error");
    frame::message_page(status, title, &frame::say(p, now), env)
}

/// A signed-in user of the environment in the path. A browser without such a session is sent
/// to the login page, which brings it back here afterwards.
pub struct PageUser {
    pub principal: Principal,
    pub origin: latchkey_service::Origin,
}

/// The session the browser presents, or the answer that sends it to the login page.
async fn signed_in<S: Store>(
    parts: &Parts,
    state: &AppState<S>,
    env: &EnvSlug,
) -> Result<(Principal, latchkey_service::Origin), Response> {
    let to_login = |ended: bool| {
        let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let back = if parts.method == axum::http::Method::GET {
            here.to_owned()
        } else {
            format!("/e/{env}/account")
        };
        frame::see_other(&format!(
            "/e/{env}/login?rd={}{}",
            redirect::encode(&back),
            if ended { "&notice=session_over" } else { "" }
        ))
    };
    let Some(token) = cookie(parts, state.web.cookie_name()).filter(|t| !t.is_empty()) else {
        known(state, env).await?;
        return Err(to_login(false));
    };
    let principal = match state.service.authenticate(&token).await {
        Ok(p) => p,
        Err(ServiceError::Unauthenticated) => {
            known(state, env).await?;
            return Err(to_login(true));
        }
        Err(e) => {
            return Err(problem_page(
                &e.into(),
                state.service.now(),
                Some(env.as_str()),
            ));
        }
    };
    if principal.environment.slug != *env
        && principal.environment.slug.as_str() != latchkey_core::model::SYSTEM
    {
        known(state, env).await?;
        return Err(to_login(false));
    }
    Ok((principal, origin_of(parts, &state.web)))
}

impl<S: Store> FromRequestParts<AppState<S>> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let env = path_slug(parts, state).await?;
        let (principal, origin) = signed_in(parts, state, &env).await?;
        if principal.environment.slug != env {
            // An operator's `system` session is not an account of this environment.
            known(state, &env).await?;
            return Err(frame::see_other(&format!("/e/{env}/login")));
        }
        Ok(Self { principal, origin })
    }
}

/// An admin of the environment in the path, or an operator (whose `system` session opens the
/// admin pages of every environment). Others get a 403 page.
pub struct PageAdmin {
    pub admin: latchkey_service::authz::EnvAdmin,
    pub principal: Principal,
    pub origin: latchkey_service::Origin,
}

impl<S: Store> FromRequestParts<AppState<S>> for PageAdmin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let env = path_slug(parts, state).await?;
        let (principal, origin) = signed_in(parts, state, &env).await?;
        let identity = latchkey_service::authz::Identity::User(Box::new(principal.clone()));
        match state
            .service
            .admin_of(&identity, origin.clone(), &env)
            .await
        {
            Ok(admin) => Ok(Self {
                admin,
                principal,
                origin,
            }),
            // `admin_of` reads the environment for those it lets through.
            Err(ServiceError::NotFound(_)) => {
                Err(error_page(StatusCode::NOT_FOUND, Notice::NotFound, None))
            }
            Err(e @ ServiceError::Forbidden(_)) => {
                known(state, &env).await?;
                crate::extract::refused(state, parts, &identity, origin, Some(&env), e).await;
                Err(error_page(
                    StatusCode::FORBIDDEN,
                    Notice::Forbidden,
                    Some(env.as_str()),
                ))
            }
            Err(e) => Err(problem_page(
                &e.into(),
                state.service.now(),
                Some(env.as_str()),
            )),
        }
    }
}
