//! Parsing of user input shared by the JSON API and the pages: every failure is a 400
//! `invalid_request` problem whose detail says what to fix.

use axum::http::StatusCode;
use latchkey_core::{HumanDuration, model::DisplayName};

use crate::problem::Problem;

pub fn bad(msg: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_request", msg)
}

pub fn parse<T: std::str::FromStr>(value: Option<&str>, what: &str) -> Result<Option<T>, Problem>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| v.parse::<T>().map_err(|e| bad(format!("{what}: {e}"))))
        .transpose()
}

pub fn display_name(value: Option<&str>) -> Result<Option<DisplayName>, Problem> {
    value
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| bad(e.0))
}

pub fn duration(value: Option<&str>, what: &str) -> Result<Option<HumanDuration>, Problem> {
    parse::<HumanDuration>(value, what)
}

pub fn time(value: Option<&str>, what: &str) -> Result<Option<i64>, Problem> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(time::OffsetDateTime::unix_timestamp)
                .map_err(|_| {
                    bad(format!(
                        "{what} must be an RFC 3339 time like 2026-11-28T06:00:00Z"
                    ))
                })
        })
        .transpose()
}
