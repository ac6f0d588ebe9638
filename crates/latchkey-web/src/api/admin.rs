//! The admin API (SPEC §5.3): environments, statistics, users (invite, change, delete, reset the
//! password or MFA, sign out, clear a lockout), enforce MFA, the audit log and API tokens.
//! Every handler first turns the caller into an `EnvAdmin` or an `Operator` (the service's
//! check), then parses, calls one use case, and renders.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use latchkey_core::{
    HumanDuration,
    model::{Email, EnvSlug, MfaPolicy, Role, UserState},
};
use latchkey_service::{
    Store,
    admin::UserPatch,
    environments::EnvironmentPatch,
    store::{AuditQuery, MfaFilter},
    users::UserFilter,
};

#[allow(clippy::wildcard_imports)] // this file renders exactly the shapes of admin_bodies
use super::{
    admin_bodies::*,
    user_bodies::{ProblemSchema, rfc3339},
};
use crate::{
    extract::{AdminOf, ApiJson, ApiPath, ApiQuery, Env, OperatorOnly, OptionalJson},
    input::{bad, display_name, duration, parse, time},
    problem::Problem,
    state::AppState,
};

#[utoipa::path(get, path = "/api/v1/environments", tag = "admin",
    responses((status = 200, body = EnvironmentList), (status = 403, description = "not an operator", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn list_environments<S: Store>(
    State(st): State<AppState<S>>,
    OperatorOnly(_op): OperatorOnly,
) -> Result<Json<EnvironmentList>, Problem> {
    let envs = st.service.list_environments().await?;
    Ok(Json(EnvironmentList {
        environments: envs.iter().map(EnvironmentDto::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/environments", tag = "admin", request_body = CreateEnvironmentRequest,
    responses((status = 201, body = EnvironmentDto), (status = 409, description = "`conflict`", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn create_environment<S: Store>(
    State(st): State<AppState<S>>,
    OperatorOnly(op): OperatorOnly,
    ApiJson(body): ApiJson<CreateEnvironmentRequest>,
) -> Result<Response, Problem> {
    let slug = EnvSlug::parse(&body.slug).map_err(|e| bad(e.0))?;
    let name = display_name(body.name.as_deref())?;
    let policy = parse::<MfaPolicy>(body.mfa_policy.as_deref(), "mfa_policy")?;
    let env = st
        .service
        .create_environment(&op, slug, name, policy)
        .await?;
    Ok((StatusCode::CREATED, Json(EnvironmentDto::from(&env))).into_response())
}

#[utoipa::path(get, path = "/api/v1/environments/{env}", tag = "admin", params(("env" = String, Path)),
    responses((status = 200, body = EnvironmentDto), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn get_environment<S: Store>(
    AdminOf(admin): AdminOf,
) -> Result<Json<EnvironmentDto>, Problem> {
    Ok(Json(EnvironmentDto::from(admin.env())))
}

#[utoipa::path(patch, path = "/api/v1/environments/{env}", tag = "admin", params(("env" = String, Path)), request_body = EnvironmentPatchRequest,
    responses((status = 200, body = EnvironmentDto), (status = 403, description = "not an operator", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn update_environment<S: Store>(
    State(st): State<AppState<S>>,
    OperatorOnly(op): OperatorOnly,
    Env(env): Env,
    ApiJson(body): ApiJson<EnvironmentPatchRequest>,
) -> Result<Json<EnvironmentDto>, Problem> {
    let none_or =
        |v: Option<Option<String>>| v.map(|o| o.filter(|s| !s.eq_ignore_ascii_case("none")));
    let idle = match none_or(body.session_idle_timeout) {
        Some(Some(d)) => Some(Some(
            d.parse::<HumanDuration>()
                .map_err(|e| bad(format!("session_idle_timeout: {e}")))?,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let patch = EnvironmentPatch {
        name: display_name(body.name.as_deref())?,
        mfa_policy: parse::<MfaPolicy>(body.mfa_policy.as_deref(), "mfa_policy")?,
        session_max_age: duration(body.session_max_age.as_deref(), "session_max_age")?,
        session_idle_timeout: idle,
        totp_window: body.totp_window,
        issuer: none_or(body.issuer),
        lockout_threshold: body.lockout_threshold,
        lockout_base: duration(body.lockout_base.as_deref(), "lockout_base")?,
        lockout_max: duration(body.lockout_max.as_deref(), "lockout_max")?,
        ip_failures_per_minute: body.ip_failures_per_minute,
    };
    let env = st.service.update_environment(&op, &env, patch).await?;
    Ok(Json(EnvironmentDto::from(&env)))
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/stats", tag = "admin", params(("env" = String, Path)),
    responses((status = 200, body = StatsResponse), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn stats<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
) -> Result<Json<StatsResponse>, Problem> {
    Ok(Json(StatsResponse::from(&st.service.stats(&admin).await?)))
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/users", tag = "admin",
    params(("env" = String, Path), ("mfa" = Option<String>, Query, description = "`enrolled` or `not_enrolled`"), ("role" = Option<String>, Query), ("state" = Option<String>, Query), ("q" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = UserPage), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn list_users<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiQuery(q): ApiQuery<UserListQuery>,
) -> Result<Json<UserPage>, Problem> {
    let mfa = match q.mfa.as_deref() {
        None => None,
        Some("enrolled") => Some(MfaFilter::Enrolled),
        Some("not_enrolled") => Some(MfaFilter::NotEnrolled),
        Some(_) => return Err(bad("mfa must be `enrolled` or `not_enrolled`")),
    };
    let filter = UserFilter {
        mfa,
        role: parse::<Role>(q.role.as_deref(), "role")?,
        state: parse::<UserState>(q.state.as_deref(), "state")?,
        q: q.q,
    };
    let page = st
        .service
        .list_users(&admin, filter, q.cursor, q.limit)
        .await?;
    Ok(Json(UserPage {
        users: page.users.iter().map(UserDto::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/users", tag = "admin", params(("env" = String, Path)), request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 409, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn create_user<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<Response, Problem> {
    let email = Email::parse(&body.email).map_err(|e| bad(e.0))?;
    let name = display_name(body.name.as_deref())?;
    let role = parse::<Role>(body.role.as_deref(), "role")?.unwrap_or(Role::User);
    let (user, link) = st.service.create_user(&admin, email, name, role).await?;
    let body = CreatedUser {
        user: UserDto::from(&user),
        setup_url: link.url.clone(),
        setup_token: link.token.expose().to_owned(),
        expires_at: rfc3339(link.expires_at),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/users/{id}", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = UserDto), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn get_user<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<UserDto>, Problem> {
    Ok(Json(UserDto::from(
        &st.service.admin_user(&admin, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/environments/{env}/users/{id}", tag = "admin", params(("env" = String, Path), ("id" = String, Path)), request_body = UserPatchRequest,
    responses((status = 200, body = UserDto), (status = 404, body = ProblemSchema, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_not_allowed` where the policy is off; `system` keeps an active operator", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn update_user<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UserPatchRequest>,
) -> Result<Json<UserDto>, Problem> {
    let patch = UserPatch {
        name: display_name(body.name.as_deref())?,
        role: parse::<Role>(body.role.as_deref(), "role")?,
        disabled: body.disabled,
        mfa_enforced: body.mfa_enforced,
    };
    Ok(Json(UserDto::from(
        &st.service.update_user(&admin, &id, patch).await?,
    )))
}

#[utoipa::path(delete, path = "/api/v1/environments/{env}/users/{id}", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn delete_user<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    st.service.delete_user(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/users/{id}/reset-password", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PasswordResetResponse), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn reset_password<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<PasswordResetResponse>, Problem> {
    let r = st.service.reset_password(&admin, &id).await?;
    Ok(Json(PasswordResetResponse {
        sessions_ended: r.sessions_ended,
        setup_url: r.link.url.clone(),
        setup_token: r.link.token.expose().to_owned(),
        expires_at: rfc3339(r.link.expires_at),
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/users/{id}/reset-mfa", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = MfaResetResponse), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn reset_mfa<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<MfaResetResponse>, Problem> {
    let (sessions_ended, authenticators_removed) = st.service.reset_mfa(&admin, &id).await?;
    Ok(Json(MfaResetResponse {
        sessions_ended,
        authenticators_removed,
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/users/{id}/sign-out", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = SignOutResponse), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn sign_out<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<SignOutResponse>, Problem> {
    Ok(Json(SignOutResponse {
        sessions_ended: st.service.sign_out(&admin, &id).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/users/{id}/clear-lockout", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = LockoutCleared), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn clear_lockout<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<LockoutCleared>, Problem> {
    Ok(Json(LockoutCleared {
        cleared: st.service.clear_lockout(&admin, &id).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/enforce-mfa", tag = "admin", params(("env" = String, Path)), request_body(content = Option<EnforceRequest>, description = "may be left out: `{}`"),
    responses((status = 200, body = EnforceResponse), (status = 409, description = "`mfa_not_allowed` where the policy is off", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn enforce_mfa<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    OptionalJson(body): OptionalJson<EnforceRequest>,
) -> Result<Json<EnforceResponse>, Problem> {
    let c = st.service.enforce_mfa(&admin, body.all).await?;
    Ok(Json(EnforceResponse {
        users_marked: c.users_marked,
        users_signed_out: c.users_signed_out,
        sessions_ended: c.sessions_ended,
    }))
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/audit", tag = "admin",
    params(("env" = String, Path), ("user" = Option<String>, Query), ("type" = Option<String>, Query), ("since" = Option<String>, Query, description = "RFC 3339"), ("until" = Option<String>, Query, description = "RFC 3339"), ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = AuditPageDto), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn audit<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiQuery(q): ApiQuery<AuditQueryParams>,
) -> Result<Json<AuditPageDto>, Problem> {
    let query = AuditQuery {
        user: q.user,
        kind: q.kind,
        since: time(q.since.as_deref(), "since")?,
        until: time(q.until.as_deref(), "until")?,
        before: q.cursor,
        limit: 0,
    };
    let page = st.service.audit_log(&admin, query, q.limit).await?;
    Ok(Json(AuditPageDto {
        events: page.events.iter().map(AuditEventDto::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/api-tokens", tag = "admin", params(("env" = String, Path)),
    responses((status = 200, body = ApiTokenList), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn list_tokens<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
) -> Result<Json<ApiTokenList>, Problem> {
    let tokens = st.service.list_env_tokens(&admin).await?;
    Ok(Json(ApiTokenList {
        api_tokens: tokens.iter().map(ApiTokenDto::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/api-tokens", tag = "admin", params(("env" = String, Path)), request_body = CreateApiTokenRequest,
    responses((status = 201, body = CreatedApiToken), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn create_token<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiJson(body): ApiJson<CreateApiTokenRequest>,
) -> Result<Response, Problem> {
    let issued = st.service.create_env_token(&admin, &body.name).await?;
    Ok((StatusCode::CREATED, Json(CreatedApiToken::from(&issued))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/environments/{env}/api-tokens/{id}", tag = "admin", params(("env" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn revoke_token<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    st.service.revoke_env_token(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
