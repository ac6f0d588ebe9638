//! CSRF protection of the pages (SECURITY S8) and the form extractor that enforces it.
//!
//! Every browser gets a random CSRF cookie (`HttpOnly`, `__Host-` outside development); every
//! form carries `csrf`, an HMAC of that cookie under a server key. A form POST is accepted only
//! with a matching token **and** from our own origin (`Origin`/`Sec-Fetch-Site`), so a page on
//! another site can neither read a token nor post one. Nothing here reads the session.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::Response,
};
use latchkey_core::token::{Token, csrf_matches, csrf_token};
use latchkey_service::Store;
use serde::de::DeserializeOwned;

use super::frame::{Notice, error_page};
use crate::{
    extract::{cookie, same_origin},
    state::AppState,
};

/// The CSRF cookie's lifetime: a browser keeps one for a year; its value is not a credential.
const CSRF_COOKIE_MAX_AGE: i64 = 365 * 86_400;

/// The browser's CSRF cookie and the token its forms carry.
pub struct Csrf {
    cookie: String,
    /// The cookie was made for this answer and must be set on it.
    fresh: bool,
    pub token: String,
    /// The session cookie the browser presented with this request, so that a login that
    /// completes can end the session it replaces (SECURITY S2).
    pub session: Option<String>,
}

impl Csrf {
    fn for_cookie<S>(state: &AppState<S>, cookie: String, fresh: bool) -> Self {
        let token = csrf_token(state.csrf_key.expose(), &cookie);
        Self {
            cookie,
            fresh,
            token,
            session: None,
        }
    }

    /// A new CSRF cookie (at login and logout, so no token from before survives them); the
    /// old state when the system's randomness fails.
    #[must_use]
    pub fn renewed<S>(self, state: &AppState<S>) -> Self {
        match Token::generate() {
            Ok(t) => Self {
                session: self.session,
                ..Self::for_cookie(state, t.expose().to_owned(), true)
            },
            Err(_) => self,
        }
    }

    /// `response` with the CSRF cookie set when it was made for this answer.
    pub fn respond<S>(&self, state: &AppState<S>, mut response: Response) -> Response {
        self.set_on(state, response.headers_mut());
        response
    }

    /// Render `page` with `status`, its forms carrying this token.
    pub fn page<S>(
        &self,
        state: &AppState<S>,
        status: StatusCode,
        page: &impl askama::Template,
    ) -> Response {
        self.respond(state, super::frame::render(status, page))
    }

    /// Add the `Set-Cookie` for a cookie made for this answer.
    pub fn set_on<S>(&self, state: &AppState<S>, headers: &mut HeaderMap) {
        if !self.fresh {
            return;
        }
        let web = &state.web;
        let value = web.cookie(web.csrf_cookie_name(), &self.cookie, CSRF_COOKIE_MAX_AGE);
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// A cookie value we could have made: 43 base64url characters.
fn plausible(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<S: Store> FromRequestParts<AppState<S>> for Csrf {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(c) = cookie(parts, state.web.csrf_cookie_name()).filter(|c| plausible(c)) {
            return Ok(Self::for_cookie(state, c, false));
        }
        let fresh = Token::generate().map_err(|_| {
            error_page(StatusCode::INTERNAL_SERVER_ERROR, Notice::Unavailable, None)
        })?;
        Ok(Self::for_cookie(state, fresh.expose().to_owned(), true))
    }
}

/// A posted form (`application/x-www-form-urlencoded`) that passed the CSRF check, with the
/// browser's CSRF state for the page rendered in answer.
pub struct Form<T> {
    pub value: T,
    pub csrf: Csrf,
}

#[derive(serde::Deserialize)]
struct Presented {
    #[serde(default)]
    csrf: String,
}

fn refused() -> Response {
    error_page(StatusCode::FORBIDDEN, Notice::CsrfRefused, None)
}

impl<S: Store, T: DeserializeOwned> FromRequest<AppState<S>> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState<S>) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if !same_origin(&parts, &state.web.public_origin) {
            return Err(refused());
        }
        let Some(c) = cookie(&parts, state.web.csrf_cookie_name()).filter(|c| plausible(c)) else {
            return Err(refused());
        };
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(error_page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Notice::BadForm,
                None,
            ));
        }
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|_| error_page(StatusCode::PAYLOAD_TOO_LARGE, Notice::BadForm, None))?;
        let presented: Presented = serde_urlencoded::from_bytes(&bytes).map_err(|_| refused())?;
        if !csrf_matches(state.csrf_key.expose(), &c, &presented.csrf) {
            return Err(refused());
        }
        let value: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, Notice::BadForm, None))?;
        let mut csrf = Csrf::for_cookie(state, c, false);
        csrf.session = cookie(&parts, state.web.cookie_name()).filter(|s| !s.is_empty());
        Ok(Self { value, csrf })
    }
}
