//! The JSON shapes of the admin API (SPEC §5.3).

use latchkey_core::model::{Environment, User};
use latchkey_service::{
    AuditRecord,
    admin::{IssuedApiToken, Stats},
    store::ApiTokenRecord,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::user_bodies::rfc3339;

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
#[allow(clippy::option_option)] // absent, null and a value are three different requests
fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct LockoutDto {
    pub threshold: u32,
    /// The first lock, e.g. `1m`; later ones double.
    pub base: String,
    pub max: String,
    pub ip_failures_per_minute: u32,
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentDto {
    pub slug: String,
    pub name: String,
    #[schema(example = "required")]
    pub mfa_policy: String,
    #[schema(example = "30d")]
    pub session_max_age: String,
    /// A duration, or `none`.
    pub session_idle_timeout: String,
    pub totp_window: u8,
    /// The name shown in authenticator apps.
    pub issuer: String,
    pub lockout: LockoutDto,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Environment> for EnvironmentDto {
    fn from(e: &Environment) -> Self {
        Self {
            slug: e.slug.to_string(),
            name: e.name.to_string(),
            mfa_policy: e.mfa_policy.to_string(),
            session_max_age: e.session_max_age.to_string(),
            session_idle_timeout: e
                .session_idle_timeout
                .map_or_else(|| "none".into(), |d| d.to_string()),
            totp_window: e.totp_window,
            issuer: e.issuer(),
            lockout: LockoutDto {
                threshold: e.lockout.threshold,
                base: e.lockout.base_lock.to_string(),
                max: e.lockout.max_lock.to_string(),
                ip_failures_per_minute: e.lockout.ip_failures_per_minute,
            },
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentList {
    pub environments: Vec<EnvironmentDto>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironmentRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "prod")]
    pub slug: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+$"
    )]
    pub name: Option<String>,
    #[schema(example = "optional", pattern = "^(off|optional|required)$")]
    pub mfa_policy: Option<String>,
}

/// Settings to change; absent ones stay. `session_idle_timeout` and `issuer` take `null` (or
/// `"none"`) to clear.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentPatchRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+$"
    )]
    pub name: Option<String>,
    #[schema(pattern = "^(off|optional|required)$")]
    pub mfa_policy: Option<String>,
    #[schema(example = "30d", pattern = "^[1-9][0-9]{0,3}[smhd]$")]
    pub session_max_age: Option<String>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, example = "8h", pattern = "^([1-9][0-9]{0,3}[smhd]|none)$")]
    #[allow(clippy::option_option)]
    pub session_idle_timeout: Option<Option<String>>,
    #[schema(minimum = 0, maximum = 10)]
    pub totp_window: Option<u8>,
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = "^(?=.*\\S)[^:\\u0000-\\u001f\\u007f-\\u009f]+$")]
    #[allow(clippy::option_option)]
    pub issuer: Option<Option<String>>,
    #[schema(minimum = 1, maximum = 100)]
    pub lockout_threshold: Option<u32>,
    #[schema(pattern = "^[1-9][0-9]{0,3}[smhd]$")]
    pub lockout_base: Option<String>,
    /// At least `lockout_base`.
    #[schema(pattern = "^[1-9][0-9]{0,3}[smhd]$")]
    pub lockout_max: Option<String>,
    #[schema(minimum = 1, maximum = 100_000)]
    pub ip_failures_per_minute: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub state: String,
    pub mfa_enrolled: bool,
    pub mfa_enforced: bool,
    pub last_login_at: Option<String>,
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.to_string(),
            name: u.name.to_string(),
            role: u.role.to_string(),
            state: u.state.to_string(),
            mfa_enrolled: u.mfa_enrolled,
            mfa_enforced: u.mfa_enforced,
            last_login_at: u.last_login_at.map(rfc3339),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserDto>,
    /// `null` at the end.
    pub next_cursor: Option<String>,
}

/// Unknown parameters are refused (400): a misspelt filter must not list everything.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// `enrolled` or `not_enrolled`.
    pub mfa: Option<String>,
    pub role: Option<String>,
    pub state: Option<String>,
    /// Part of the email (case-insensitive).
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+$"
    )]
    pub name: Option<String>,
    #[schema(example = "user", pattern = "^(user|admin)$")]
    pub role: Option<String>,
}

/// A one-time setup link, shown once.
#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: UserDto,
    pub setup_url: String,
    pub setup_token: String,
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UserPatchRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+$"
    )]
    pub name: Option<String>,
    #[schema(pattern = "^(user|admin)$")]
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub mfa_enforced: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordResetResponse {
    pub sessions_ended: u64,
    pub setup_url: String,
    pub setup_token: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MfaResetResponse {
    pub sessions_ended: u64,
    pub authenticators_removed: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SignOutResponse {
    pub sessions_ended: u64,
}

#[derive(Serialize, ToSchema)]
pub struct LockoutCleared {
    /// Whether there were counters to clear.
    pub cleared: bool,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EnforceRequest {
    /// Also end the sessions of users who have MFA.
    #[serde(default)]
    pub all: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EnforceResponse {
    pub users_marked: u64,
    pub users_signed_out: u64,
    pub sessions_ended: u64,
}

#[derive(Serialize, ToSchema)]
pub struct StatsResponse {
    pub users: u64,
    pub users_with_mfa: u64,
    /// `users_with_mfa / users`, 0 to 1.
    pub mfa_share: f64,
    pub users_mfa_enforced: u64,
    pub active_sessions: u64,
    pub lockouts_24h: u64,
}

impl From<&Stats> for StatsResponse {
    fn from(s: &Stats) -> Self {
        Self {
            users: s.counts.users,
            users_with_mfa: s.counts.users_with_mfa,
            mfa_share: s.mfa_share,
            users_mfa_enforced: s.counts.users_mfa_enforced,
            active_sessions: s.counts.active_sessions,
            lockouts_24h: s.counts.lockouts_24h,
        }
    }
}

/// Unknown parameters are refused (400): a misspelt filter must not list everything.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQueryParams {
    /// A user id (as target or actor).
    pub user: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventDto {
    pub id: String,
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: String,
    #[schema(value_type = Option<Object>)]
    pub detail: serde_json::Value,
}

impl From<&AuditRecord> for AuditEventDto {
    fn from(r: &AuditRecord) -> Self {
        Self {
            id: r.id.clone(),
            at: rfc3339(r.at),
            kind: r.kind.clone(),
            actor: r.actor.clone(),
            target: r.target.clone(),
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            outcome: r.outcome.as_str().to_owned(),
            detail: r
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPageDto {
    pub events: Vec<AuditEventDto>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiTokenDto {
    pub id: String,
    pub name: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiTokenRecord> for ApiTokenDto {
    fn from(t: &ApiTokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            created_by: t.created_by.clone(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiTokenList {
    pub api_tokens: Vec<ApiTokenDto>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    pub name: String,
}

/// The token's secret is here only, once: send it as `Authorization: Bearer <secret>`.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiToken {
    pub api_token: ApiTokenDto,
    pub secret: String,
}

impl From<&IssuedApiToken> for CreatedApiToken {
    fn from(t: &IssuedApiToken) -> Self {
        Self {
            api_token: ApiTokenDto::from(&t.record),
            secret: t.bearer(),
        }
    }
}
