//! Each environment an OpenID Provider (SPEC §9): applications registered by admins
//! (`clients.rs`), the environment's signing keys (`keys.rs`), the authorization endpoint and
//! the requests that wait for a login (`authorize.rs`), the token, userinfo, introspection and
//! revocation endpoints (`tokens.rs`), and logout — RP-initiated and back-channel
//! (`logout.rs`).
//!
//! The seed's rules reach every application because every code and token names the Latchkey
//! session that issued it: a token is good only while that session is, under the
//! environment's current rules (checked at each use, [`crate::session::end_reason`]), and the
//! database deletes codes and tokens with their session whatever ended it.

pub mod authorize;
pub mod clients;
pub mod keys;
pub mod logout;
pub mod tokens;

use serde_json::{Map, Value, json};

use crate::{ServiceError, store::SessionView};

/// How long an ID token lives (SPEC §9: 5 minutes).
pub const ID_TOKEN_TTL: i64 = 300;
/// How long a code lives (SPEC §9: 60 s).
pub const CODE_TTL: i64 = 60;
/// How long an authorization request waits for its login.
pub const REQUEST_TTL: i64 = 600;
/// The `acr` of a session with a second factor, and the `acr_values` that demands one.
pub const ACR_MFA: &str = "urn:latchkey:acr:mfa";
/// The `acr` of a session with a password only.
pub const ACR_PWD: &str = "urn:latchkey:acr:pwd";
/// The scopes Latchkey knows; others are ignored (RFC 6749 §3.3 lets a server grant less).
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// An OAuth error as RFC 6749 §5.2 names it, with the HTTP status the token endpoint answers
/// it with (`401` for a client that failed to authenticate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    /// Seconds, for a 429 (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: 400,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// The client did not authenticate (401, with `WWW-Authenticate`).
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: 401,
            ..Self::new("invalid_client", description)
        }
    }
}

impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unavailable(_) | ServiceError::Busy => Self {
                status: 503,
                ..Self::new(
                    "temporarily_unavailable",
                    "the server cannot answer now; try again shortly",
                )
            },
            ServiceError::Invalid(m) => Self::invalid_request(m),
            ServiceError::TooManyAttempts { retry_after } => Self {
                status: 429,
                retry_after: Some(retry_after),
                ..Self::invalid_request(format!(
                    "too many failed attempts from this address; try again in {retry_after} \
                     seconds"
                ))
            },
            ServiceError::NotFound(what) => Self::invalid_request(format!("{what} not found")),
            other => {
                tracing::error!(error = %other, "an OpenID Connect request failed");
                Self {
                    status: 500,
                    ..Self::new("server_error", "the server could not answer this request")
                }
            }
        }
    }
}

/// The granted scopes: the known ones of a request, in our order, space-separated.
pub fn granted_scope(requested: &str) -> String {
    let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn has_scope(scope: &str, name: &str) -> bool {
    scope.split(' ').any(|s| s == name)
}

/// Whether a session's methods hold a second factor.
pub fn has_second_factor(amr: &str) -> bool {
    amr.split(' ').any(|m| matches!(m, "otp" | "rec"))
}

/// A session's methods as RFC 8176 values: `pwd`, `otp`; a recovery code is `mfa` with our
/// documented extension `rec` (RFC 8176 has no value for it).
pub fn amr_values(amr: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for m in amr.split(' ') {
        match m {
            "pwd" => out.push("pwd"),
            "otp" => out.push("otp"),
            "rec" => out.extend(["mfa", "rec"]),
            _ => {}
        }
    }
    out
}

/// The issuer of an environment: `{public_url}/e/{env}`, byte for byte the same everywhere.
pub fn issuer(public_url: &str, env: &str) -> String {
    format!("{public_url}/e/{env}")
}

/// The claims about the user that `scope` allows, as userinfo answers them and ID tokens carry
/// them (SPEC §9), `sub` included.
pub fn user_claims(view: &SessionView, scope: &str) -> Map<String, Value> {
    let user = &view.user;
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if has_scope(scope, "email") {
        claims.insert("email".into(), json!(user.email.as_str()));
        // An admin vouched for the address, and the user proved it by using the link.
        claims.insert("email_verified".into(), json!(true));
    }
    if has_scope(scope, "profile") {
        claims.insert("name".into(), json!(user.name.as_str()));
        claims.insert("preferred_username".into(), json!(user.email.as_str()));
        claims.insert("role".into(), json!(user.role.as_str()));
        claims.insert("groups".into(), json!([user.role.as_str()]));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_keep_the_known_ones_in_order() {
        assert_eq!(
            granted_scope("email openid  foo profile"),
            "openid profile email"
        );
        assert_eq!(granted_scope("profile"), "profile");
        assert_eq!(granted_scope(""), "");
    }

    #[test]
    fn methods_become_rfc_8176_values() {
        assert_eq!(amr_values("pwd"), ["pwd"]);
        assert_eq!(amr_values("pwd otp"), ["pwd", "otp"]);
        assert_eq!(amr_values("pwd rec"), ["pwd", "mfa", "rec"]);
        assert!(has_second_factor("pwd otp") && has_second_factor("pwd rec"));
        assert!(!has_second_factor("pwd"));
    }
}
