//! Extractors: JSON bodies, path and query parameters whose every rejection is a problem
//! answer, the client's address and user agent, the environment from the path, the
//! authenticated principal (cookie or bearer, with CSRF protection for cookie-authenticated
//! writes), and the admin API's callers (`AdminOf`, `OperatorOnly`: authorized before the body
//! is read, a refusal recorded in the audit log).

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, Path, Request,
        rejection::{BytesRejection, FailedToBufferBody, JsonRejection},
    },
    http::{Method, StatusCode, header, request::Parts},
};
use latchkey_core::model::EnvSlug;
use latchkey_service::{Origin, Store, session::Principal};
use serde::de::DeserializeOwned;

use crate::{
    problem::Problem,
    state::{AppState, WebConfig},
};

/// Request bodies above this size are refused with 413 before they are read (SECURITY R3).
pub const BODY_LIMIT: usize = 64 * 1024;

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
        JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
            FailedToBufferBody::LengthLimitError(_),
        )) => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {BODY_LIMIT} bytes"),
        ),
        // A body that stopped arriving (SECURITY R6) or a client that went away.
        JsonRejection::BytesRejection(_) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
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

/// A JSON body that may be left out entirely (then the type's default), for requests whose
/// fields are all optional, like `enforce-mfa {all?}`.
pub struct OptionalJson<T>(pub T);

impl<T, St> FromRequest<St> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    St: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let empty = headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v == "0")
            || (headers.get(header::CONTENT_LENGTH).is_none()
                && headers.get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(Self(T::default()));
        }
        // `null` is "no options" too, as an absent body is.
        ApiJson::<Option<T>>::from_request(req, state)
            .await
            .map(|ApiJson(v)| Self(v.unwrap_or_default()))
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
        Ok(Self(origin_of(parts, &state.web)))
    }
}

/// The request's origin, as [`Client`] extracts it.
pub(crate) fn origin_of(parts: &Parts, web: &WebConfig) -> Origin {
    let trusted_proxies = &web.trusted_proxies;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = peer.map(|peer| client_ip(peer, parts, trusted_proxies));
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect());
    // The device cookies, one per environment the browser logged in to (a few at most).
    let prefix = web.device_cookie_prefix();
    let devices = cookie_pairs(parts)
        .filter(|(k, v)| k.starts_with(prefix) && !v.is_empty() && v.len() <= 200)
        .take(8)
        .map(|(_, v)| latchkey_service::DeviceCookie::new(v.to_owned()))
        .collect();
    Origin {
        ip: ip.map(|ip| ip.to_string()),
        user_agent,
        devices,
    }
}

/// Walk `X-Forwarded-For` from the right while the hops are trusted proxies.
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.5`, as a dual-stack listener reports them) are
/// compared as IPv4; an entry that is not an address stops the walk at the last trusted hop, so
/// a client cannot slip its own value past a proxy that appends something unexpected.
pub(crate) fn client_ip(peer: IpAddr, parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// An authenticated user. Cookie-authenticated state-changing requests must come from our own
/// origin (SECURITY S8); bearer-authenticated ones need no CSRF protection.
pub struct SignedIn {
    pub principal: Principal,
    pub via: Via,
    /// Where the request came from, for the audit log.
    pub origin: Origin,
}

impl<S: Store> FromRequestParts<AppState<S>> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let (token, via) = presented(parts, state)?;
        let principal = state.service.authenticate(&token).await?;
        let origin = origin_of(parts, &state.web);
        Ok(Self {
            principal,
            via,
            origin,
        })
    }
}

/// A live session's principal alone, for a handler that neither writes nor audits
/// (`GET /session`): the caller's address and user agent are not read.
pub struct SessionOnly(pub Principal);

impl<S: Store> FromRequestParts<AppState<S>> for SessionOnly {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let (token, _) = presented(parts, state)?;
        Ok(Self(state.service.authenticate(&token).await?))
    }
}

/// The credential a request carries: a bearer token, or the session cookie — in which case a
/// state-changing request must come from our own origin (SECURITY S8).
fn presented<S: Store>(parts: &Parts, state: &AppState<S>) -> Result<(String, Via), Problem> {
    if let Some(t) = bearer(parts) {
        return Ok((t, Via::Bearer));
    }
    let Some(t) = cookie(parts, state.web.cookie_name()) else {
        return Err(latchkey_service::ServiceError::Unauthenticated.into());
    };
    if !is_safe(&parts.method) && !same_origin(parts, &state.web.public_origin) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "cross-site request refused",
        ));
    }
    Ok((t, Via::Cookie))
}

/// A caller of the admin API: a user's session (bearer or cookie) or an API token (bearer,
/// `lk_…`). The admin check itself is the service's (`admin_of`, `operator`).
pub struct AdminApiCaller {
    pub identity: latchkey_service::authz::Identity,
    pub origin: Origin,
}

impl<S: Store> FromRequestParts<AppState<S>> for AdminApiCaller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let identity = match presented(parts, state)? {
            (token, Via::Bearer) => state.service.identify(&token).await?,
            // API tokens are never cookies: a cookie is a person's session.
            (token, Via::Cookie) => latchkey_service::authz::Identity::User(Box::new(
                state.service.authenticate(&token).await?,
            )),
        };
        let origin = origin_of(parts, &state.web);
        Ok(Self { identity, origin })
    }
}

/// An admin of the environment in the path (or an operator). The check runs before the body
/// is read, so a caller without the right learns nothing from validation errors.
pub struct AdminOf(pub latchkey_service::authz::EnvAdmin);

impl<S: Store> FromRequestParts<AppState<S>> for AdminOf {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let who = AdminApiCaller::from_request_parts(parts, state).await?;
        let Env(env) = Env::from_request_parts(parts, state).await?;
        match state
            .service
            .admin_of(&who.identity, who.origin.clone(), &env)
            .await
        {
            Ok(admin) => Ok(Self(admin)),
            Err(e) => Err(
                refused(state, parts, &who.identity, who.origin, Some(&env), e)
                    .await
                    .into(),
            ),
        }
    }
}

/// A refused administrative act is recorded before it is answered (SECURITY G1); any other
/// error passes as it is. The refusal stands whether or not the record could be written.
pub(crate) async fn refused<S: Store>(
    state: &AppState<S>,
    parts: &Parts,
    who: &latchkey_service::authz::Identity,
    origin: Origin,
    asked: Option<&EnvSlug>,
    e: latchkey_service::ServiceError,
) -> latchkey_service::ServiceError {
    if matches!(e, latchkey_service::ServiceError::Forbidden(_)) {
        let act = format!("{} {}", parts.method, parts.uri.path());
        if let Err(audit) = state.service.record_refused(who, origin, &act, asked).await {
            tracing::warn!(error = %audit, "a refused admin act could not be audited");
        }
    }
    e
}

/// An operator; checked before the body is read.
pub struct OperatorOnly(pub latchkey_service::authz::Operator);

impl<S: Store> FromRequestParts<AppState<S>> for OperatorOnly {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let who = AdminApiCaller::from_request_parts(parts, state).await?;
        match state.service.operator(&who.identity, who.origin.clone()) {
            Ok(operator) => Ok(Self(operator)),
            Err(e) => Err(refused(state, parts, &who.identity, who.origin, None, e)
                .await
                .into()),
        }
    }
}

/// Query parameters; malformed ones are a 400 problem.
pub struct ApiQuery<T>(pub T);

impl<T, St> FromRequestParts<St> for ApiQuery<T>
where
    T: DeserializeOwned,
    St: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    clip(&e.body_text()),
                )
            })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A browser sends `Origin` (and `Sec-Fetch-Site`) on cross-origin writes; refuse any that is
/// not ours. Clients that send neither are not browsers and carry no ambient cookie.
pub(crate) fn same_origin(parts: &Parts, public_origin: &str) -> bool {
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
    cookie_pairs(parts)
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Every `name=value` pair of the request's `Cookie` headers.
fn cookie_pairs(parts: &Parts) -> impl Iterator<Item = (&str, &str)> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(xff: &[&str]) -> Parts {
        let mut b = axum::http::Request::builder();
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        b.body(())
            .map_or_else(|e| panic!("{e}"), |r| r.into_parts().0)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.5");
        let trusted = [proxy];
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &parts(&["1.2.3.4"]), &trusted),
            ip("203.0.113.9")
        );
        // The rightmost untrusted hop is the client; what the client wrote further left is not.
        assert_eq!(
            client_ip(proxy, &parts(&["6.6.6.6, 198.51.100.7"]), &trusted),
            ip("198.51.100.7")
        );
        // A dual-stack listener reports the proxy as IPv4-mapped IPv6.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &parts(&["198.51.100.7"]), &trusted),
            ip("198.51.100.7")
        );
        // An entry that is not an address stops the walk: the spoofed value left of it is unused.
        assert_eq!(
            client_ip(proxy, &parts(&["6.6.6.6, 198.51.100.7:5678"]), &trusted),
            proxy
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(proxy, &parts(&[]), &trusted), proxy);
    }

    #[test]
    fn public_origin_drops_default_ports() {
        use crate::state::WebConfig;
        assert_eq!(
            WebConfig::for_public_url("https://Auth.Example.com:443/base", vec![]).public_origin,
            "https://auth.example.com"
        );
        assert_eq!(
            WebConfig::for_public_url("http://127.0.0.1:8080", vec![]).public_origin,
            "http://127.0.0.1:8080"
        );
        assert!(!WebConfig::for_public_url("http://127.0.0.1:8080", vec![]).secure_cookies);
        assert!(WebConfig::for_public_url("https://a.example", vec![]).secure_cookies);
    }
}
