//! The current session (`GET /api/v1/session`, logout) and the user's own account under
//! `/api/v1/me` (SPEC §5.2): sessions, password, authenticators and recovery codes.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use latchkey_service::{Store, account::Reauth, factors::FactorInput};

use super::user_bodies::{
    ChangePasswordRequest, ConfirmEnrolmentRequest, CurrentSession, EnrolmentConfirmed,
    EnrolmentResponse, FactorRequest, MfaSetupResponse, MfaStatusResponse, ProblemSchema,
    ReauthRequest, RecoveryCodesResponse, SessionList, SessionsEnded, codes,
};
use crate::{
    extract::{ApiJson, ApiPath, SessionOnly, SignedIn},
    problem::Problem,
    state::AppState,
};

fn factor(r: FactorRequest) -> Result<FactorInput, Problem> {
    match (r.code, r.recovery_code) {
        (Some(c), None) => Ok(FactorInput::Code(c)),
        (None, Some(c)) => Ok(FactorInput::RecoveryCode(c)),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give exactly one of `code` and `recovery_code`",
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses(
        (status = 200, description = "the session is live", body = CurrentSession),
        (status = 401, description = "`unauthenticated`", body = ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn session<S: Store>(SessionOnly(principal): SessionOnly) -> Json<CurrentSession> {
    Json(CurrentSession::from(&principal))
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "session",
    responses((status = 204, description = "the session has ended"), (status = 401, description = "`unauthenticated`", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn logout<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
) -> Result<Response, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    st.service.logout(&auth.principal, &caller).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&super::login::session_cookie(&st.web, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "me",
    responses((status = 200, body = SessionList), (status = 401, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn sessions<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
) -> Result<Json<SessionList>, Problem> {
    let list = st.service.my_sessions(&auth.principal).await?;
    Ok(Json(SessionList::new(&list, &auth.principal.session.id)))
}

#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "me",
    params(("id" = String, Path, description = "session id")),
    responses((status = 204, description = "ended"), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn end_session<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    st.service
        .end_my_session(&auth.principal, &id, &caller)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "changed; the other sessions ended", body = SessionsEnded),
        (status = 400, description = "`weak_password`", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn change_password<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<Json<SessionsEnded>, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    let sessions_ended = st
        .service
        .change_my_password(
            &auth.principal,
            &caller,
            body.current_password.expose(),
            body.new_password.expose(),
        )
        .await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}

#[utoipa::path(get, path = "/api/v1/me/mfa", tag = "me",
    responses((status = 200, body = MfaStatusResponse), (status = 401, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn mfa_status<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
) -> Result<Json<MfaStatusResponse>, Problem> {
    let status = st.service.my_mfa(&auth.principal).await?;
    Ok(Json(MfaStatusResponse::from(&status)))
}

#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "me", request_body = ReauthRequest,
    responses(
        (status = 200, description = "a pending enrolment to confirm", body = EnrolmentResponse),
        (status = 401, description = "`invalid_code` or `invalid_credentials`", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 409, description = "`factor_required` (the user has an authenticator: give a code) or `password_required` (they have none yet: give the password)", body = ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn begin_enrolment<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
    ApiJson(body): ApiJson<ReauthRequest>,
) -> Result<Json<EnrolmentResponse>, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    let reauth = match body {
        ReauthRequest {
            current_password: Some(p),
            code: None,
            recovery_code: None,
        } => Reauth::Password(p),
        ReauthRequest {
            current_password: None,
            code,
            recovery_code,
        } => Reauth::Factor(factor(FactorRequest {
            code,
            recovery_code,
        })?),
        ReauthRequest { .. } => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give exactly one of `code`, `recovery_code` and `current_password`",
            ));
        }
    };
    let (id, offer) = st
        .service
        .begin_enrolment(&auth.principal, &caller, &reauth)
        .await?;
    Ok(Json(EnrolmentResponse {
        enrollment_id: id,
        offer: MfaSetupResponse::from(&offer),
    }))
}

#[utoipa::path(post, path = "/api/v1/me/mfa/totp/{enrollment_id}/confirm", tag = "me", request_body = ConfirmEnrolmentRequest,
    params(("enrollment_id" = String, Path, description = "from POST /me/mfa/totp")),
    responses(
        (status = 200, description = "active; recovery codes with the first authenticator", body = EnrolmentConfirmed),
        (status = 401, description = "`invalid_code`", body = ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn confirm_enrolment<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ConfirmEnrolmentRequest>,
) -> Result<Json<EnrolmentConfirmed>, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    let recovery = st
        .service
        .confirm_enrolment(&auth.principal, &caller, &id, &body.code, &body.label)
        .await?;
    Ok(Json(EnrolmentConfirmed {
        authenticator_id: id,
        recovery_codes: recovery.as_deref().map(codes),
    }))
}

#[utoipa::path(delete, path = "/api/v1/me/mfa/totp/{id}", tag = "me", request_body = FactorRequest,
    params(("id" = String, Path, description = "authenticator id")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "`invalid_code`", body = ProblemSchema, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_required_by_policy`", body = ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn remove_authenticator<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FactorRequest>,
) -> Result<StatusCode, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    st.service
        .remove_my_authenticator(&auth.principal, &caller, &id, &factor(body)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/me/recovery-codes", tag = "me", request_body = FactorRequest,
    responses(
        (status = 200, description = "ten new codes, shown once; the old ones are void", body = RecoveryCodesResponse),
        (status = 401, description = "`invalid_code`", body = ProblemSchema, content_type = "application/problem+json"),
    ))]
pub async fn recovery_codes<S: Store>(
    State(st): State<AppState<S>>,
    auth: SignedIn,
    ApiJson(body): ApiJson<FactorRequest>,
) -> Result<Json<RecoveryCodesResponse>, Problem> {
    let caller = auth.principal.caller(auth.origin.clone());
    let new = st
        .service
        .regenerate_recovery_codes(&auth.principal, &caller, &factor(body)?)
        .await?;
    Ok(Json(RecoveryCodesResponse {
        recovery_codes: codes(&new),
    }))
}
