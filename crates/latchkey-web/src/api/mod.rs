//! The JSON API under `/api/v1` and its OpenAPI 3.1 document, both built from the same list of
//! routes so that the document cannot describe a route the server lacks or miss one it has.

pub mod admin;
pub mod admin_bodies;
pub mod clients;
pub mod login;
pub mod me;
mod openapi;
pub mod user_bodies;

pub use openapi::document;

use axum::{
    Json, Router,
    routing::{MethodRouter, delete, get, post},
};
use latchkey_service::Store;
use utoipa::OpenApi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Latchkey API", description = "Password login with TOTP multi-factor authentication, per environment.", license(name = "Apache-2.0")),
    paths(
        login::login, login::new_password, login::mfa, login::mfa_setup, login::mfa_confirm, login::setup_link,
        me::session, me::logout, me::sessions, me::end_session, me::change_password, me::mfa_status,
                me::begin_enrolment, me::confirm_enrolment, me::remove_authenticator, me::recovery_codes,
                openapi,
        admin::list_environments, admin::create_environment, admin::get_environment, admin::update_environment,
        admin::stats, admin::list_users, admin::create_user, admin::get_user, admin::update_user, admin::delete_user,
        admin::reset_password, admin::reset_mfa, admin::sign_out, admin::clear_lockout, admin::enforce_mfa,
        admin::audit, admin::list_tokens, admin::create_token, admin::revoke_token,
        clients::list_clients, clients::create_client, clients::get_client, clients::update_client,
        clients::delete_client, clients::rotate_secret,
    ),
    tags((name = "login", description = "SPEC §3, §5.1"), (name = "session", description = "checking and ending a session"), (name = "me", description = "the user's own account"), (name = "meta", description = "this document"), (name = "admin", description = "SPEC §5.3: environments, users, resets, enforcement, audit, API tokens; SPEC §9: applications (OpenID Connect clients)"))
)]
pub struct ApiDoc;

/// A route: its path, its methods (as the document names them), and its handlers.
pub type Route<S> = (
    &'static str,
    &'static [&'static str],
    MethodRouter<AppState<S>>,
);

/// The API's routes: `(path, methods, handlers)`. The OpenAPI test checks this list against
/// the document in both directions.
#[allow(clippy::too_many_lines)] // one table, one line a route
pub fn routes<S: Store>() -> Vec<Route<S>> {
    vec![
        (
            "/api/v1/environments/{env}/login",
            &["POST"],
            post(login::login::<S>),
        ),
        (
            "/api/v1/environments/{env}/login/password",
            &["POST"],
            post(login::new_password::<S>),
        ),
        (
            "/api/v1/environments/{env}/login/mfa",
            &["POST"],
            post(login::mfa::<S>),
        ),
        (
            "/api/v1/environments/{env}/login/mfa/setup",
            &["POST"],
            post(login::mfa_setup::<S>),
        ),
        (
            "/api/v1/environments/{env}/login/mfa/setup/confirm",
            &["POST"],
            post(login::mfa_confirm::<S>),
        ),
        (
            "/api/v1/environments/{env}/setup-link",
            &["POST"],
            post(login::setup_link::<S>),
        ),
        ("/api/v1/session", &["GET"], get(me::session::<S>)),
        ("/api/v1/logout", &["POST"], post(me::logout::<S>)),
        ("/api/v1/me/sessions", &["GET"], get(me::sessions::<S>)),
        (
            "/api/v1/me/sessions/{id}",
            &["DELETE"],
            delete(me::end_session::<S>),
        ),
        (
            "/api/v1/me/password",
            &["POST"],
            post(me::change_password::<S>),
        ),
        ("/api/v1/me/mfa", &["GET"], get(me::mfa_status::<S>)),
        (
            "/api/v1/me/mfa/totp",
            &["POST"],
            post(me::begin_enrolment::<S>),
        ),
        (
            "/api/v1/me/mfa/totp/{enrollment_id}/confirm",
            &["POST"],
            post(me::confirm_enrolment::<S>),
        ),
        (
            "/api/v1/me/mfa/totp/{id}",
            &["DELETE"],
            delete(me::remove_authenticator::<S>),
        ),
        (
            "/api/v1/me/recovery-codes",
            &["POST"],
            post(me::recovery_codes::<S>),
        ),
        ("/api/v1/openapi.json", &["GET"], get(openapi)),
        (
            "/api/v1/environments",
            &["GET", "POST"],
            get(admin::list_environments::<S>).post(admin::create_environment::<S>),
        ),
        (
            "/api/v1/environments/{env}",
            &["GET", "PATCH"],
            get(admin::get_environment::<S>).patch(admin::update_environment::<S>),
        ),
        (
            "/api/v1/environments/{env}/stats",
            &["GET"],
            get(admin::stats::<S>),
        ),
        (
            "/api/v1/environments/{env}/users",
            &["GET", "POST"],
            get(admin::list_users::<S>).post(admin::create_user::<S>),
        ),
        (
            "/api/v1/environments/{env}/users/{id}",
            &["GET", "PATCH", "DELETE"],
            get(admin::get_user::<S>)
                .patch(admin::update_user::<S>)
                .delete(admin::delete_user::<S>),
        ),
        (
            "/api/v1/environments/{env}/users/{id}/reset-password",
            &["POST"],
            post(admin::reset_password::<S>),
        ),
        (
            "/api/v1/environments/{env}/users/{id}/reset-mfa",
            &["POST"],
            post(admin::reset_mfa::<S>),
        ),
        (
            "/api/v1/environments/{env}/users/{id}/sign-out",
            &["POST"],
            post(admin::sign_out::<S>),
        ),
        (
            "/api/v1/environments/{env}/users/{id}/clear-lockout",
            &["POST"],
            post(admin::clear_lockout::<S>),
        ),
        (
            "/api/v1/environments/{env}/enforce-mfa",
            &["POST"],
            post(admin::enforce_mfa::<S>),
        ),
        (
            "/api/v1/environments/{env}/audit",
            &["GET"],
            get(admin::audit::<S>),
        ),
        (
            "/api/v1/environments/{env}/api-tokens",
            &["GET", "POST"],
            get(admin::list_tokens::<S>).post(admin::create_token::<S>),
        ),
        (
            "/api/v1/environments/{env}/api-tokens/{id}",
            &["DELETE"],
            delete(admin::revoke_token::<S>),
        ),
        (
            "/api/v1/environments/{env}/clients",
            &["GET", "POST"],
            get(clients::list_clients::<S>).post(clients::create_client::<S>),
        ),
        (
            "/api/v1/environments/{env}/clients/{client_id}",
            &["GET", "PATCH", "DELETE"],
            get(clients::get_client::<S>)
                .patch(clients::update_client::<S>)
                .delete(clients::delete_client::<S>),
        ),
        (
            "/api/v1/environments/{env}/clients/{client_id}/secret",
            &["POST"],
            post(clients::rotate_secret::<S>),
        ),
    ]
}

/// The API router, with `GET /api/v1/openapi.json`.
pub fn router<S: Store>() -> Router<AppState<S>> {
    let mut router = Router::new();
    for (path, _, handler) in routes::<S>() {
        router = router.route(path, handler);
    }
    router
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi() -> Json<serde_json::Value> {
    Json(document())
}
