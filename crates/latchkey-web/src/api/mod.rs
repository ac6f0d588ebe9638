//! The JSON API under `/api/v1` and its OpenAPI 3.1 document, both built from the same list of
//! routes so that the document cannot describe a route the server lacks or miss one it has.

pub mod admin;
pub mod admin_dto;
pub mod dto;
pub mod login;
pub mod me;

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
    ),
    tags((name = "login", description = "SPEC §3, §5.1"), (name = "session", description = "checking and ending a session"), (name = "me", description = "the user's own account"), (name = "meta", description = "this document"), (name = "admin", description = "SPEC §5.3: environments, users, resets, enforcement, audit, API tokens"))
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

/// The OpenAPI 3.1 document.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    // The answers every operation of a kind can give, added where a handler's annotation does
    // not name them already (so a client generator or a fuzzer expects what the server says),
    // and the constraints the derive cannot say, edited as JSON.
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return serde_json::Value::Null;
    };
    complete_responses(&mut value);
    // "Exactly one of `code` and `recovery_code`", in the words of JSON Schema.
    if let Some(schema) = value.pointer_mut("/components/schemas/MfaRequest")
        && let Some(schema) = schema.as_object_mut()
    {
        schema.insert(
            "oneOf".into(),
            serde_json::json!([
                {"required": ["code"], "properties": {"code": {"type": "string"}}},
                {"required": ["recovery_code"], "properties": {"recovery_code": {"type": "string"}}}
            ]),
        );
    }
    value
}

/// Add the problem answers that the layers around every handler give: 503 everywhere (the
/// database or the hashing pool), 400 for malformed input, 404 where a path names something,
/// 401 and 403 where the caller must be someone, and for a body 408, 413 and 415.
fn complete_responses(doc: &mut serde_json::Value) {
    use serde_json::json;
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/problem+json": {
                "schema": {"$ref": "#/components/schemas/ProblemSchema"}
            }}
        })
    };
    for (path, item) in paths.iter_mut() {
        if path == "/api/v1/openapi.json" {
            continue;
        }
        let login = path.contains("/login") || path.ends_with("/setup-link");
        let anonymous = login || path == "/api/v1/openapi.json";
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            add(
                "400",
                "`invalid_request`: malformed input (body, query or path)",
            );
            if path.contains('{') {
                add("404", "`not_found`: no such environment or item");
            }
            if !anonymous {
                add("401", "`unauthenticated`: no valid session or token");
                add(
                    "403",
                    "`forbidden`: not allowed to the caller, or a cookie-authenticated write \
                     from another origin",
                );
            }
            if has_body {
                add("408", "`request_timeout`: the body did not arrive in time");
                add("413", "`payload_too_large`: a body over 64 KiB");
                add("415", "`unsupported_media_type`: a body that is not JSON");
            }
            if login || path.starts_with("/api/v1/me/") {
                add(
                    "429",
                    "`too_many_attempts`: locked or throttled, with `Retry-After`",
                );
            }
            add(
                "503",
                "`unavailable` (the database) or `busy` (the hashing pool), with `Retry-After`",
            );
            constrain_parameters(op);
        }
    }
}

/// What the server accepts for the parameters every listing and path shares, by name.
fn constrain_parameters(op: &mut serde_json::Value) {
    use serde_json::json;
    let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
        return;
    };
    for param in params {
        let name = param
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        let constraint = match name.as_str() {
            "env" => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}),
            "mfa" => json!({"type": "string", "enum": ["enrolled", "not_enrolled"]}),
            "role" => json!({"type": "string", "enum": ["user", "admin"]}),
            "state" => json!({"type": "string", "enum": ["invited", "active", "disabled"]}),
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": 500}),
            "since" | "until" => json!({"type": "string", "format": "date-time"}),
            "type" => json!({
                "type": "string",
                "enum": latchkey_service::AuditType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
            }),
            _ => continue,
        };
        if let Some(p) = param.as_object_mut() {
            p.insert("schema".into(), constraint);
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi() -> Json<serde_json::Value> {
    Json(document())
}
