//! OpenID Connect over HTTP (SPEC §9): discovery and `jwks` (`discovery.rs`), the
//! authorization endpoint and its return from the login pages (`authorize.rs`), the token,
//! userinfo, introspection and revocation endpoints (`tokens.rs`), and logout (`logout.rs`).
//! Errors of the token-side endpoints are RFC 6749 §5.2 JSON, not problem JSON; the
//! browser-side ones are pages or redirects to the application. Browser applications may
//! call the token side from the origins of their registered redirect URIs (CORS).

mod authorize;
mod discovery;
mod logout;
mod tokens;

use axum::{
    Router,
    body::Bytes,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{
    Store,
    oidc::{OAuthError, tokens::ClientCredentials},
    session::Principal,
};

use crate::{extract::cookie, state::AppState};

/// The OpenID Connect routes, each under `/e/{env}`.
pub fn router<S: Store>(state: AppState<S>) -> Router<AppState<S>> {
    // A preflight (`OPTIONS`) is answered by the CORS layer; the route only has to accept it.
    let preflight = || async { StatusCode::NO_CONTENT };
    let cors = Router::new()
        .route(
            "/e/{env}/.well-known/openid-configuration",
            get(discovery::configuration::<S>).options(preflight),
        )
        .route(
            "/e/{env}/oidc/jwks",
            get(discovery::jwks::<S>).options(preflight),
        )
        .route(
            "/e/{env}/oidc/token",
            post(tokens::token::<S>).options(preflight),
        )
        .route(
            "/e/{env}/oidc/userinfo",
            get(tokens::userinfo::<S>)
                .post(tokens::userinfo::<S>)
                .options(preflight),
        )
        .route(
            "/e/{env}/oidc/revoke",
            post(tokens::revoke::<S>).options(preflight),
        )
        .layer(axum::middleware::from_fn_with_state(state, cors::<S>));
    Router::new()
        .route(
            "/e/{env}/oidc/authorize",
            get(authorize::authorize_get::<S>).post(authorize::authorize_post::<S>),
        )
        .route(
            "/e/{env}/oidc/authorize/resume",
            get(authorize::resume::<S>),
        )
        .route("/e/{env}/oidc/introspect", post(tokens::introspect::<S>))
        .route(
            "/e/{env}/oidc/logout",
            get(logout::logout_get::<S>).post(logout::logout_post::<S>),
        )
        .route("/e/{env}/oidc/logout/confirm", post(logout::confirm::<S>))
        .merge(cors)
}

/// Parameters of a query string or form body. A parameter given twice is refused (RFC 6749
/// §3.1, §3.2), as is anything that is not UTF-8 form encoding.
pub(crate) fn params(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("the parameter {k} is given more than once"));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The value of `name`, if given and not empty.
pub(crate) fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// An RFC 6749 §5.2 error answer; a 401 says how to authenticate.
pub(crate) fn oauth_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({"error": e.error, "error_description": e.description});
    let mut r = (status, axum::Json(body)).into_response();
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if e.error == "invalid_token" {
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                e.description.replace('"', "'")
            )
        } else {
            "Basic realm=\"latchkey\"".to_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

/// A JSON answer that no cache keeps (RFC 6749 §5.1).
pub(crate) fn no_store_json(value: &serde_json::Value) -> Response {
    let mut r = axum::Json(value).into_response();
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// The client credentials of a request: `Authorization: Basic` (its parts form-decoded,
/// RFC 6749 §2.3.1) and the form's `client_id` / `client_secret`.
pub(crate) fn credentials(
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<ClientCredentials, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
            match v.split_once(' ') {
                Some((scheme, b64)) if scheme.eq_ignore_ascii_case("basic") => {
                    let decoded = data_encoding::BASE64
                        .decode(b64.trim().as_bytes())
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok())
                        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
                    let (id, secret) = decoded
                        .split_once(':')
                        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
                    let decode = |s: &str| {
                        url::form_urlencoded::parse(format!("x={s}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    };
                    Some((decode(id), decode(secret)))
                }
                _ => None,
            }
        }
    };
    Ok(ClientCredentials {
        basic,
        client_id: param(form, "client_id"),
        client_secret: param(form, "client_secret"),
    })
}

/// The browser's session of `env`, if it has a live one.
pub(crate) async fn browser_session<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    env: &EnvSlug,
) -> Option<Principal> {
    let token = cookie(parts, st.web.cookie_name())?;
    st.service
        .authenticate(&token)
        .await
        .ok()
        .filter(|p| &p.environment.slug == env)
}

/// CORS for browser applications (SPEC §9): a request from the origin of one of the
/// environment's registered redirect URIs may read the answer; a preflight is answered here.
async fn cors<S: Store>(
    axum::extract::State(st): axum::extract::State<AppState<S>>,
    req: Request,
    next: Next,
) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let env = req
        .uri()
        .path()
        .strip_prefix("/e/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|e| EnvSlug::parse(e).ok());
    let allowed = match (&origin, &env) {
        (Some(o), Some(env)) => st.service.cors_allowed(env, o).await,
        _ => false,
    };
    let preflight = req.method() == Method::OPTIONS;
    let mut r = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = r.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if allowed && let Some(v) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Authorization, Content-Type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    r
}

/// A body as parameters, or the OAuth error for a malformed one.
pub(crate) fn form_params(body: &Bytes) -> Result<Vec<(String, String)>, OAuthError> {
    params(body).map_err(OAuthError::invalid_request)
}
