//! RFC 9457 `application/problem+json` answers with stable `snake_case` codes (SPEC §5).
//! Internal causes are logged here and never sent: the client sees a generic title.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use latchkey_service::ServiceError;
use serde::Serialize;

/// A problem answer.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://latchkey.dev/problems/{}", code.replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            retry_after: None,
        }
    }

    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(v) = retry.and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok()) {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    }
}

fn e_text(e: &ServiceError) -> String {
    e.to_string()
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            ServiceError::WeakPassword(m) => Self::new(StatusCode::BAD_REQUEST, "weak_password", m),
            ServiceError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::Refused { code, message } => {
                Self::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e_text(&ServiceError::InvalidCredentials),
            ),
            ServiceError::InvalidCode => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                e_text(&ServiceError::InvalidCode),
            ),
            ServiceError::TooManyAttempts { retry_after } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many attempts; try again in {retry_after} seconds"),
            )
            .retry_after(retry_after),
            ServiceError::LoginExpired => Self::new(
                StatusCode::UNAUTHORIZED,
                "login_expired",
                e_text(&ServiceError::LoginExpired),
            ),
            ServiceError::LinkExpired => Self::new(
                StatusCode::GONE,
                "link_expired",
                e_text(&ServiceError::LinkExpired),
            ),
            ServiceError::WrongStep(step) => Self::new(
                StatusCode::CONFLICT,
                "invalid_step",
                format!("this login is at the `{step}` step"),
            ),
            ServiceError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid session or API token is required",
            ),
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is busy; try again in a moment",
            )
            .retry_after(1),
            ServiceError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is temporarily unavailable",
                )
                .retry_after(5)
            }
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            }
        }
    }
}
