//! The JSON shapes of the login, session and account API (SPEC §5.1, §5.2) and of a problem,
//! with their OpenAPI schemas; the admin API's are in `admin_bodies.rs`. Request types that carry
//! a secret hold it in `SecretString` and derive no `Debug` that could show it.

use latchkey_core::{SecretString, model::User, token::RecoveryCode};
use latchkey_service::{
    account::MfaStatus, factors::MfaOffer, login::LoginAnswer, session::Principal,
    store::SessionRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 (UTC) for a Unix time.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(
        min_length = 1,
        max_length = 320,
        pattern = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub email: String,
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 1024)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasswordRequest {
    #[schema(value_type = String)]
    pub login_token: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// Exactly one of `code` and `recovery_code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaRequest {
    #[schema(value_type = String)]
    pub login_token: SecretString,
    #[schema(value_type = Option<String>, example = "123456")]
    pub code: Option<SecretString>,
    #[schema(value_type = Option<String>, example = "7kq2m-9xpd4")]
    pub recovery_code: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginTokenRequest {
    #[schema(value_type = String)]
    pub login_token: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSetupRequest {
    #[schema(value_type = String)]
    pub login_token: SecretString,
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
    #[schema(example = "Work phone")]
    pub label: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupLinkRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct SessionToken {
    pub token: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub email: String,
    pub name: String,
    #[schema(example = "user")]
    pub role: String,
    pub environment: String,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.as_str().to_owned(),
            name: u.name.as_str().to_owned(),
            role: u.role.as_str().to_owned(),
            environment: u.env.as_str().to_owned(),
        }
    }
}

/// The answer to every login step.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// `authenticated`, `password_change_required`, `mfa_setup_required` or `mfa_required`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionToken>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserInfo>,
    /// After MFA setup only: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

impl From<&LoginAnswer> for LoginResponse {
    fn from(a: &LoginAnswer) -> Self {
        Self {
            status: a.status.as_str().to_owned(),
            login_token: a.login_token.as_ref().map(|t| t.expose().to_owned()),
            session: a.session.as_ref().map(|s| SessionToken {
                token: s.token.expose().to_owned(),
                expires_at: rfc3339(s.expires_at),
            }),
            user: a.user.as_ref().map(UserInfo::from),
            recovery_codes: a.recovery_codes.as_ref().map(|c| codes(c)),
        }
    }
}

pub fn codes(c: &[RecoveryCode]) -> Vec<String> {
    c.iter().map(|c| c.expose().to_owned()).collect()
}

/// A TOTP secret offered for enrolment.
#[derive(Serialize, ToSchema)]
pub struct MfaSetupResponse {
    /// Base32 without padding, for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
    /// The `otpauth://` URI as an inline SVG QR code.
    pub qr_svg: String,
    #[schema(example = "SHA1")]
    pub algorithm: String,
    #[schema(example = 6)]
    pub digits: usize,
    #[schema(example = 30)]
    pub period: u32,
}

impl From<&MfaOffer> for MfaSetupResponse {
    fn from(o: &MfaOffer) -> Self {
        Self {
            secret: o.secret.expose().to_owned(),
            otpauth_uri: o.otpauth_uri.expose().to_owned(),
            qr_svg: o.qr_svg.clone(),
            algorithm: o.params.algorithm().as_str().to_owned(),
            digits: o.params.digits().count(),
            period: o.params.period(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub authenticated_at: String,
    pub expires_at: String,
    /// `pwd`, `otp`, `rec`.
    pub amr: Vec<String>,
}

/// `GET /api/v1/session`.
#[derive(Serialize, ToSchema)]
pub struct CurrentSession {
    pub user: UserInfo,
    pub session: SessionInfo,
}

impl From<&Principal> for CurrentSession {
    fn from(p: &Principal) -> Self {
        Self {
            user: UserInfo::from(&p.user),
            session: SessionInfo {
                id: p.session.id.clone(),
                authenticated_at: rfc3339(p.session.authenticated_at),
                expires_at: rfc3339(p.expires_at),
                amr: p
                    .session
                    .amr
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionItem {
    pub id: String,
    pub authenticated_at: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
    /// The session making this request.
    pub current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionItem>,
}

impl SessionList {
    pub fn new(list: &[SessionRecord], current: &str) -> Self {
        Self {
            sessions: list
                .iter()
                .map(|s| SessionItem {
                    id: s.id.clone(),
                    authenticated_at: rfc3339(s.authenticated_at),
                    created_at: rfc3339(s.created_at),
                    last_seen_at: rfc3339(s.last_seen_at),
                    ip: s.ip.clone(),
                    user_agent: s.user_agent.clone(),
                    amr: s.amr.split_whitespace().map(str::to_owned).collect(),
                    current: s.id == current,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct SessionsEnded {
    pub sessions_ended: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AuthenticatorItem {
    pub id: String,
    pub label: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MfaStatusResponse {
    pub authenticators: Vec<AuthenticatorItem>,
    pub recovery_codes_remaining: u32,
}

impl From<&MfaStatus> for MfaStatusResponse {
    fn from(m: &MfaStatus) -> Self {
        Self {
            authenticators: m
                .authenticators
                .iter()
                .map(|a| AuthenticatorItem {
                    id: a.id.clone(),
                    label: a.label.clone(),
                    created_at: rfc3339(a.created_at),
                    last_used_at: a.last_used_at.map(rfc3339),
                })
                .collect(),
            recovery_codes_remaining: m.recovery_codes_remaining,
        }
    }
}

/// A fresh second factor (`code` or `recovery_code`), or, for a user without an
/// authenticator adding their first, `current_password`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    #[schema(value_type = Option<String>)]
    pub code: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub recovery_code: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

/// Exactly one of `code` and `recovery_code`: the second factor, again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactorRequest {
    #[schema(value_type = Option<String>)]
    pub code: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub recovery_code: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentResponse {
    pub enrollment_id: String,
    #[serde(flatten)]
    pub offer: MfaSetupResponse,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEnrolmentRequest {
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
    #[schema(example = "Work phone")]
    pub label: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentConfirmed {
    pub authenticator_id: String,
    /// With the first authenticator only: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

/// An RFC 9457 problem.
#[derive(Serialize, ToSchema)]
pub struct ProblemSchema {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, `snake_case`: `invalid_credentials`, `invalid_code`, `too_many_attempts`, …
    pub code: String,
}
