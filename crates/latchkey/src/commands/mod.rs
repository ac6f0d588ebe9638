//! One module per command group (`migrate` is in `main.rs`), and the two helpers they share:
//! `fail` (a use-case error as one line) and `time` (RFC 3339). Each takes what clap parsed,
//! calls the service's use cases, and prints; no rule of the product lives here.

pub mod audit;
pub mod backup;
pub mod client;
pub mod env;
pub mod serve;
pub mod token;
pub mod user;

use latchkey_service::ServiceError;

/// A use-case error as one line for the terminal.
pub fn fail(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Unavailable(cause) | ServiceError::Internal(cause) => {
            anyhow::anyhow!("{cause}")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// Format a Unix time as RFC 3339 (UTC), or `-`.
pub fn time(unix: Option<i64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}
