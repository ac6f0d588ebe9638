//! Extractors: JSON bodies whose every rejection is a problem answer, the client's address and
//! user agent, the environment from the path, and the authenticated principal (cookie or
//! bearer, with CSRF protection for cookie-authenticated writes).

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, Path, Request, rejection::JsonRejection,
    },
    http::{Method, StatusCode, header, request::Parts},
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{Origin, Store, session::Principal};
use serde::de::DeserializeOwned;

use crate::{problem::Problem, state::AppState};

/// A JSON body; malformed JSON, wrong types, a wrong content type and oversized bodies are
/// 4xx problems (SECURITY R3), never a bare text answer.
pub struct ApiJson<T>(pub T);

impl<T, St> FromRequest<St> for ApiJson<T>
where
    T: DeserializeOwned,
    St: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonRejection::JsonDataError(e) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            clip(&e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not valid JSON",
        ),
        JsonRejection::BytesRejection(_) => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", crate::app::BODY_LIMIT),
        ),
        _ => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body could not be read",
        ),
    }
}

/// serde's message names the field and the expected type; keep it short.
fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// A path parameter; a malformed one is a 404 problem, never a bare text answer.
pub struct ApiPath<T>(pub T);

impl<T, St> FromRequestParts<St> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    St: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|_| Problem::not_found())
    }
}

/// The environment named in the path (`{env}`); a malformed or unknown slug is 404.
pub struct Env(pub EnvSlug);

impl<St: Send + Sync> FromRequestParts<St> for Env {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        struct P {
            env: String,
        }
        let Path(p) = Path::<P>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                Problem::new(StatusCode::NOT_FOUND, "not_found", "environment not found")
            })?;
        EnvSlug::parse(&p.env)
            .map(Env)
            .map_err(|_| Problem::new(StatusCode::NOT_FOUND, "not_found", "environment not found"))
    }
}

/// Where the request came from: the peer address, or the client in `X-Forwarded-For` when the
/// peer is a trusted proxy; and the user agent (clipped).
pub struct Client(pub Origin);

impl<S: Store> FromRequestParts<AppState<S>> for Client {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = peer.map(|peer| client_ip(peer, parts, &state.web.trusted_proxies));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect());
        Ok(Self(Origin {
            ip: ip.map(|ip| ip.to_string()),
            user_agent,
        }))
    }
}

/// Walk `X-Forwarded-For` from the right while the hops are trusted proxies.
fn client_ip(peer: IpAddr, parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// An authenticated user. Cookie-authenticated state-changing requests must come from our own
/// origin (SECURITY S8); bearer-authenticated ones need no CSRF protection.
pub struct Auth {
    pub principal: Principal,
    pub via: Via,
    /// Where the request came from, for the audit log.
    pub origin: Origin,
}

impl<S: Store> FromRequestParts<AppState<S>> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let (token, via) = if let Some(t) = bearer(parts) {
            (t, Via::Bearer)
        } else if let Some(t) = cookie(parts, state.web.cookie_name()) {
            (t, Via::Cookie)
        } else {
            return Err(latchkey_service::ServiceError::Unauthenticated.into());
        };
        if via == Via::Cookie
            && !is_safe(&parts.method)
            && !same_origin(parts, &state.web.public_origin)
        {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "cross-site request refused",
            ));
        }
        let principal = state.service.authenticate(&token).await?;
        let Client(origin) = Client::from_request_parts(parts, state).await?;
        Ok(Self {
            principal,
            via,
            origin,
        })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A browser sends `Origin` (and `Sec-Fetch-Site`) on cross-origin writes; refuse any that is
/// not ours. Clients that send neither are not browsers and carry no ambient cookie.
fn same_origin(parts: &Parts, public_origin: &str) -> bool {
    if let Some(site) = parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        Some(origin) => origin.eq_ignore_ascii_case(public_origin),
        None => true,
    }
}

pub(crate) fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

pub(crate) fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
