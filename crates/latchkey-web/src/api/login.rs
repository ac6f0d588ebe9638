//! `POST /api/v1/environments/{env}/login…` and `…/setup-link` (SPEC §5.1). Each handler parses,
//! calls one use case, and renders; on `authenticated` it also sets the session cookie.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use latchkey_service::{Caller, Store, factors::FactorInput, login::LoginAnswer};

use super::user_bodies::{
    ConfirmSetupRequest, LoginRequest, LoginResponse, LoginTokenRequest, MfaRequest,
    MfaSetupResponse, NewPasswordRequest, SetupLinkRequest,
};
use crate::{
    extract::{ApiJson, Client, Env},
    problem::Problem,
    state::{AppState, WebConfig},
};

/// The JSON answer, with the session cookie when the login is complete (SPEC §5).
pub(crate) fn answer(web: &WebConfig, now: i64, a: &LoginAnswer) -> Response {
    let mut response = Json(LoginResponse::from(a)).into_response();
    if let Some(s) = &a.session {
        let max_age = (s.expires_at - now).max(0);
        if let Ok(v) = HeaderValue::from_str(&session_cookie(web, s.token.expose(), max_age)) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if let (Some(d), Some(u)) = (&a.device, &a.user)
        && let Ok(v) = HeaderValue::from_str(&web.device_cookie(u.env.as_str(), d.expose()))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `__Host-latchkey_session=…; Path=/; HttpOnly; SameSite=Lax; Secure` (no prefix and no
/// `Secure` in loopback development).
pub(crate) fn session_cookie(web: &WebConfig, token: &str, max_age: i64) -> String {
    web.cookie(web.cookie_name(), token, max_age)
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/login", tag = "login",
    params(("env" = String, Path, description = "environment slug")),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "the next step", body = LoginResponse),
        (status = 400, description = "malformed input", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn login<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, Problem> {
    let a = st
        .service
        .login_password(
            &Caller::anonymous(origin),
            &env,
            &body.email,
            body.password.expose(),
        )
        .await?;
    Ok(answer(&st.web, st.service.now(), &a))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/login/password", tag = "login",
    params(("env" = String, Path, description = "environment slug")),
    request_body = NewPasswordRequest,
    responses(
        (status = 200, description = "the next step", body = LoginResponse),
        (status = 400, description = "`weak_password` or malformed input", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "`login_expired`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
        (status = 410, description = "`link_expired`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn new_password<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    ApiJson(body): ApiJson<NewPasswordRequest>,
) -> Result<Response, Problem> {
    let a = st
        .service
        .login_new_password(
            &Caller::anonymous(origin),
            &env,
            body.login_token.expose(),
            body.new_password.expose(),
        )
        .await?;
    Ok(answer(&st.web, st.service.now(), &a))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/login/mfa", tag = "login",
    params(("env" = String, Path, description = "environment slug")),
    request_body = MfaRequest,
    responses(
        (status = 200, description = "authenticated", body = LoginResponse),
        (status = 400, description = "not a code of the configured length", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_code` or `login_expired`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn mfa<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    ApiJson(body): ApiJson<MfaRequest>,
) -> Result<Response, Problem> {
    let factor = match (body.code, body.recovery_code) {
        (Some(code), None) => FactorInput::Code(code),
        (None, Some(code)) => FactorInput::RecoveryCode(code),
        _ => {
            return Err(Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_request",
                "give exactly one of `code` and `recovery_code`",
            ));
        }
    };
    let a = st
        .service
        .login_mfa(
            &Caller::anonymous(origin),
            &env,
            body.login_token.expose(),
            &factor,
        )
        .await?;
    Ok(answer(&st.web, st.service.now(), &a))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/login/mfa/setup", tag = "login",
    params(("env" = String, Path, description = "environment slug")),
    request_body = LoginTokenRequest,
    responses(
        (status = 200, description = "a secret to enrol", body = MfaSetupResponse),
        (status = 401, description = "`login_expired`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn mfa_setup<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    ApiJson(body): ApiJson<LoginTokenRequest>,
) -> Result<Json<MfaSetupResponse>, Problem> {
    let offer = st
        .service
        .login_mfa_setup(&Caller::anonymous(origin), &env, body.login_token.expose())
        .await?;
    Ok(Json(MfaSetupResponse::from(&offer)))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/login/mfa/setup/confirm", tag = "login",
    params(("env" = String, Path, description = "environment slug")),
    request_body = ConfirmSetupRequest,
    responses(
        (status = 200, description = "authenticated, with recovery codes shown once", body = LoginResponse),
        (status = 401, description = "`invalid_code` or `login_expired`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn mfa_confirm<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    ApiJson(body): ApiJson<ConfirmSetupRequest>,
) -> Result<Response, Problem> {
    let a = st
        .service
        .login_mfa_confirm(
            &Caller::anonymous(origin),
            &env,
            body.login_token.expose(),
            &body.code,
            &body.label,
        )
        .await?;
    Ok(answer(&st.web, st.service.now(), &a))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/setup-link", tag = "login",
    params(("env" = String, Path, description = "environment slug")),
    request_body = SetupLinkRequest,
    responses(
        (status = 200, description = "`password_change_required` with a login token", body = LoginResponse),
        (status = 410, description = "`link_expired`", body = super::user_bodies::ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn setup_link<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    ApiJson(body): ApiJson<SetupLinkRequest>,
) -> Result<Response, Problem> {
    let a = st
        .service
        .start_setup_link(&Caller::anonymous(origin), &env, body.token.expose())
        .await?;
    Ok(answer(&st.web, st.service.now(), &a))
}
