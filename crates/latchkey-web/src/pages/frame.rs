//! What every page shares: the frame (environment, CSRF token, who is signed in), rendering a
//! template into an answer, the redirects (303 after a form, 302 for a navigation from another
//! site) and the continue page that leaves for another host, fixed notices and the error page,
//! the words a person reads for a problem code, and times and waits in words.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use latchkey_service::session::Principal;

use crate::problem::Problem;

/// The frame of every page.
pub struct Chrome {
    pub env: String,
    /// The form token (empty on pages without forms).
    pub csrf: String,
    pub user: Option<NavUser>,
}

/// Who is signed in, for the navigation.
pub struct NavUser {
    pub email: String,
    pub admin: bool,
    /// The session's own environment (an operator's is `system`), where sign-out posts to.
    pub env: String,
}

impl Chrome {
    pub fn new(env: &str, csrf: &str, principal: Option<&Principal>) -> Self {
        Self {
            env: env.to_owned(),
            csrf: csrf.to_owned(),
            user: principal.map(|p| NavUser {
                email: p.user.email.as_str().to_owned(),
                admin: p.user.role == latchkey_core::model::Role::Admin,
                env: p.environment.slug.as_str().to_owned(),
            }),
        }
    }
}

/// Render `page` with `status`; a template that fails to render is logged and answered 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A `303 See Other` to `location` (after a form, the browser asks with GET).
pub fn see_other(location: &str) -> Response {
    redirect(StatusCode::SEE_OTHER, location)
}

/// A `302 Found` to `location`: the answer to a navigation that came from another site (an
/// application sending the browser to authorize or to log out), not to one of our forms.
pub fn found(location: &str) -> Response {
    redirect(StatusCode::FOUND, location)
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A page that sends the browser on to another host. After a form POST a redirect there would
/// be blocked by the CSP's `form-action 'self'`; a navigation from a page is not.
#[derive(Template)]
#[template(path = "continue.html")]
pub struct ContinuePage {
    pub chrome: Chrome,
    pub next: String,
}

/// Fixed messages, chosen by the server; a query parameter picks one but never supplies text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    CsrfRefused,
    BadForm,
    BadAddress,
    Unavailable,
    NotFound,
    Forbidden,
    LoginExpired,
    SignedOut,
    SessionOver,
    PasswordChanged,
    SessionEnded,
    AuthenticatorAdded,
    AuthenticatorRemoved,
    EnvironmentSaved,
}

impl Notice {
    /// The notice a `?notice=` value names, if any.
    pub fn named(name: &str) -> Option<Self> {
        Some(match name {
            "login_expired" => Self::LoginExpired,
            "signed_out" => Self::SignedOut,
            "session_over" => Self::SessionOver,
            "password_changed" => Self::PasswordChanged,
            "session_ended" => Self::SessionEnded,
            "authenticator_added" => Self::AuthenticatorAdded,
            "authenticator_removed" => Self::AuthenticatorRemoved,
            "environment_saved" => Self::EnvironmentSaved,
            _ => return None,
        })
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::CsrfRefused => "This form cannot be accepted",
            Self::BadForm => "This form is incomplete",
            Self::BadAddress => "This address is not complete",
            Self::Unavailable => "Temporarily unavailable",
            Self::NotFound => "Not found",
            Self::Forbidden => "Not allowed",
            _ => "",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::CsrfRefused => {
                "The form expired or was sent from another site. Go back, reload the page and try again."
            }
            Self::BadForm => "Some fields were missing or not understood. Go back and try again.",
            Self::BadAddress => {
                "Part of the address is missing or repeated. Use the links on the pages, or start from the sign-in page."
            }
            Self::Unavailable => "The service cannot answer right now. Try again in a minute.",
            Self::NotFound => "There is no such page.",
            Self::Forbidden => "Your account may not open this page.",
            Self::LoginExpired => "Your sign-in took too long or was ended. Please start again.",
            Self::SignedOut => "You are signed out.",
            Self::SessionOver => "Your session has ended. Please sign in again.",
            Self::PasswordChanged => "Your password is changed. Your other sessions were ended.",
            Self::SessionEnded => "The session is ended.",
            Self::AuthenticatorAdded => "The authenticator is added.",
            Self::AuthenticatorRemoved => "The authenticator is removed.",
            Self::EnvironmentSaved => "The environment is saved.",
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    text: &'a str,
}

/// A page that says what went wrong and nothing else.
pub fn error_page(status: StatusCode, notice: Notice, env: Option<&str>) -> Response {
    message_page(status, notice.title(), notice.text(), env)
}

/// A page with a title and a sentence.
pub fn message_page(status: StatusCode, title: &str, text: &str, env: Option<&str>) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::new(env.unwrap_or_default(), "", None),
            title,
            text,
        },
    )
}

/// The status a page answers a problem with (the problem's own).
pub fn status_of(p: &Problem) -> StatusCode {
    StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The status and the words a person reads for a refused act.
pub fn refusal(e: latchkey_service::ServiceError, now: i64) -> (StatusCode, String) {
    let p = Problem::from(e);
    (status_of(&p), say(&p, now))
}

/// The words a person reads for a refused step.
pub fn say(p: &Problem, now: i64) -> String {
    match p.code {
        "invalid_credentials" => "The email or password is not right.".into(),
        "invalid_code" => "That code is not right. Enter the newest code your app shows; if it keeps failing, check that your phone's clock is set automatically.".into(),
        "too_many_attempts" => {
            let secs = p.retry_after.unwrap_or(60);
            // The minute the wait is over by, rounded up: trying at that time works.
            let end = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX / 2));
            let end = end.saturating_add((60 - end.rem_euclid(60)) % 60);
            format!(
                "Too many attempts. Try again in {} (after {} UTC).",
                in_words(secs),
                clock(end)
            )
        }
        "login_expired" => Notice::LoginExpired.text().into(),
        "link_expired" => "This link has expired or was already used. Ask your administrator for a new one.".into(),
        "busy" => "The server is busy. Try again in a moment.".into(),
        "unavailable" => Notice::Unavailable.text().into(),
        "internal" => "Something went wrong on our side. Try again.".into(),
        _ => sentence(&p.detail),
    }
}

/// A service message as a sentence: capital first letter, final full stop.
pub fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut s: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !s.ends_with('.') && !s.is_empty() {
        s.push('.');
    }
    s
}

/// `90` → "2 minutes", `30` → "30 seconds", `7200` → "2 hours".
pub fn in_words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0..=59 => plural(secs.max(1), "second"),
        60..=3599 => plural(secs.div_ceil(60), "minute"),
        _ => plural(secs.div_ceil(3600), "hour"),
    }
}

/// `HH:MM` (UTC) of a Unix time.
pub fn clock(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map_or_else(
        |_| String::from("--:--"),
        |t| format!("{:02}:{:02}", t.hour(), t.minute()),
    )
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map_or_else(
        |_| String::from("-"),
        |t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_words() {
        assert_eq!(in_words(1), "1 second");
        assert_eq!(in_words(59), "59 seconds");
        assert_eq!(in_words(60), "1 minute");
        assert_eq!(in_words(61), "2 minutes");
        assert_eq!(in_words(3600), "1 hour");
        assert_eq!(clock(1_800_000_000), "08:00");
        assert_eq!(when(1_800_000_000), "2027-01-15 08:00");
        assert_eq!(sentence("enter a code"), "Enter a code.");
    }

    /// A page without a form (the setup link's, among others) says the wait and the time it
    /// ends from the server's clock, not from the epoch ("after 00:00 UTC" at 10:44).
    #[tokio::test]
    async fn a_refusal_page_gives_the_right_clock_time() {
        let at_10_44 = 1_800_000_000 + 2 * 3600 + 44 * 60; // 2027-01-15 10:44 UTC
        let p = Problem::from(latchkey_service::ServiceError::TooManyAttempts { retry_after: 90 });
        assert_eq!(
            say(&p, at_10_44),
            "Too many attempts. Try again in 2 minutes (after 10:46 UTC)."
        );
        let page = super::super::problem_page(&p, at_10_44, Some("prod"));
        assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("after 10:46 UTC"), "{html}");
    }
}
