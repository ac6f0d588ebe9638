//! `GET /auth/verify?env={env}[&rd={url}]` (SPEC §5.2): the one call a reverse proxy makes
//! (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`) to ask whether the
//! browser's session cookie is a live session of `env`. 200 with the user in `X-Latchkey-*`
//! headers; otherwise 401, or a 302 to the environment's login page when `rd` names an allowed
//! place. It never redirects anywhere else, and it fails closed (503) when the database cannot
//! answer.

use axum::{
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{ServiceError, Store, metrics::ForwardAuth};
use serde::Deserialize;

use crate::{
    extract::{ApiQuery, cookie},
    problem::Problem,
    redirect,
    state::AppState,
};

#[derive(Deserialize)]
pub struct VerifyQuery {
    env: Option<String>,
    rd: Option<String>,
}

/// The handler: [`answer`], counted by its status for `/metrics`.
pub async fn verify<S: Store>(
    State(st): State<AppState<S>>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
    parts: Parts,
) -> Response {
    let response = answer(&st, q, &parts).await.into_response();
    let counted = match response.status() {
        StatusCode::OK => Some(ForwardAuth::Allowed),
        StatusCode::FOUND => Some(ForwardAuth::Redirected),
        StatusCode::UNAUTHORIZED => Some(ForwardAuth::Denied),
        StatusCode::SERVICE_UNAVAILABLE => Some(ForwardAuth::Unavailable),
        _ => None,
    };
    if let Some(answer) = counted {
        st.service.metrics().forward_auth(answer);
    }
    response
}

async fn answer<S: Store>(
    st: &AppState<S>,
    q: VerifyQuery,
    parts: &Parts,
) -> Result<Response, Problem> {
    let env = q
        .env
        .as_deref()
        .and_then(|e| EnvSlug::parse(e).ok())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give the environment: /auth/verify?env=prod",
            )
        })?;
    let principal = match cookie(parts, st.web.cookie_name()) {
        None => None,
        Some(token) => match st.service.authenticate(&token).await {
            Ok(p) if p.environment.slug == env => Some(p),
            Ok(_) | Err(ServiceError::Unauthenticated) => None,
            Err(e) => return Err(e.into()),
        },
    };
    let Some(p) = principal else {
        if let Some(rd) =
            q.rd.as_deref()
                .and_then(|rd| redirect::allowed(&st.web, rd))
        {
            let login = format!(
                "{}/e/{}/login?rd={}",
                st.web.public_url,
                env,
                redirect::encode(&rd)
            );
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&login) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return Ok(r);
        }
        return Err(ServiceError::Unauthenticated.into());
    };
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    // A name stored before new names were checked may still hold invisible formatting
    // (direction overrides, separators): the application never receives it.
    let name: String = p
        .user
        .name
        .as_str()
        .chars()
        .filter(|c| !latchkey_core::model::is_hidden_format(*c))
        .collect();
    let fields: [(&'static str, &str); 5] = [
        ("x-latchkey-user", &p.user.id),
        ("x-latchkey-email", p.user.email.as_str()),
        ("x-latchkey-name", &name),
        ("x-latchkey-role", p.user.role.as_str()),
        ("x-latchkey-env", p.environment.slug.as_str()),
    ];
    for (name, value) in fields {
        // Names may hold any Unicode but no control character: sent as UTF-8 bytes.
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    Ok(r)
}
