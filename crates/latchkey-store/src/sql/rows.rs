//! Reading rows back into domain types, once for both backends: each reader takes a
//! [`Row`], whose columns are found by name. A value that does not parse is reported as
//! corrupt, never trusted and never a panic.

use latchkey_core::{
    HumanDuration,
    model::{DisplayName, Email, EnvSlug, Environment, LockoutSettings, User},
    totp::{Algorithm, Digits, TotpParams},
};
use latchkey_service::{StoreError, store::AuthenticatorRecord};

use super::{Row, get};
use crate::corrupt;

fn duration(secs: i64, what: &str) -> Result<HumanDuration, StoreError> {
    u64::try_from(secs)
        .ok()
        .and_then(|s| HumanDuration::from_secs(s).ok())
        .ok_or_else(|| corrupt(what, secs))
}

/// An environment's slug read back from a row.
pub(crate) fn env_slug(value: String) -> Result<EnvSlug, StoreError> {
    EnvSlug::parse(&value).map_err(|_| corrupt("env", value))
}

fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| corrupt(what, value))
}

/// An environment, from its columns as `env_columns!` names them (`e_…`, so that they
/// can join any row).
pub(crate) fn environment(row: &dyn Row) -> Result<Environment, StoreError> {
    let slug: String = get(row, "e_slug")?;
    let name: String = get(row, "e_name")?;
    let policy: String = get(row, "e_mfa_policy")?;
    let idle: Option<i64> = get(row, "e_session_idle_timeout")?;
    let window: i64 = get(row, "e_totp_window")?;
    let threshold: i64 = get(row, "e_lockout_threshold")?;
    let ip: i64 = get(row, "e_ip_failures_per_minute")?;
    Ok(Environment {
        slug: EnvSlug::parse(&slug).map_err(|_| corrupt("slug", &slug))?,
        name: DisplayName::from_stored(&name).map_err(|_| corrupt("name", &name))?,
        mfa_policy: parse(&policy, "mfa_policy")?,
        session_max_age: duration(get(row, "e_session_max_age")?, "session_max_age")?,
        session_idle_timeout: idle
            .map(|s| duration(s, "session_idle_timeout"))
            .transpose()?,
        totp_window: u8::try_from(window).map_err(|_| corrupt("totp_window", window))?,
        lockout: LockoutSettings {
            threshold: u32::try_from(threshold)
                .map_err(|_| corrupt("lockout_threshold", threshold))?,
            base_lock: duration(get(row, "e_lockout_base_seconds")?, "lockout_base_seconds")?,
            max_lock: duration(get(row, "e_lockout_max_seconds")?, "lockout_max_seconds")?,
            ip_failures_per_minute: u32::try_from(ip)
                .map_err(|_| corrupt("ip_failures_per_minute", ip))?,
        },
        issuer: get(row, "e_issuer")?,
        created_at: get(row, "e_created_at")?,
        updated_at: get(row, "e_updated_at")?,
    })
}

pub(crate) fn user(row: &dyn Row) -> Result<User, StoreError> {
    let email: String = get(row, "email")?;
    let name: String = get(row, "name")?;
    let role: String = get(row, "role")?;
    let state: String = get(row, "state")?;
    Ok(User {
        id: get(row, "id")?,
        env: env_slug(get(row, "env")?)?,
        email: Email::from_stored(&email).map_err(|_| corrupt("email", &email))?,
        name: DisplayName::from_stored(&name).map_err(|_| corrupt("name", &name))?,
        role: parse(&role, "role")?,
        state: parse(&state, "state")?,
        mfa_enforced: get::<bool>(row, "mfa_enforced")?,
        mfa_enrolled: get::<bool>(row, "mfa_enrolled")?,
        last_login_at: get(row, "last_login_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// A session read from a row of `SELECT s.id AS s_id, s.user_id AS s_user_id, s.env AS
/// s_env, s.authenticated_at, s.amr, s.created_at AS s_created_at, s.last_seen_at,
/// s.ip, s.user_agent FROM sessions s …`.
pub(crate) fn session_record(
    row: &dyn Row,
) -> Result<latchkey_service::store::SessionRecord, StoreError> {
    Ok(latchkey_service::store::SessionRecord {
        id: get(row, "s_id")?,
        user_id: get(row, "s_user_id")?,
        env: env_slug(get(row, "s_env")?)?,
        authenticated_at: get(row, "authenticated_at")?,
        amr: get(row, "amr")?,
        created_at: get(row, "s_created_at")?,
        last_seen_at: get(row, "last_seen_at")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
    })
}

pub(crate) fn authenticator(row: &dyn Row) -> Result<AuthenticatorRecord, StoreError> {
    let algorithm: String = get(row, "algorithm")?;
    let digits: i64 = get(row, "digits")?;
    let period: i64 = get(row, "period")?;
    let last_step: Option<i64> = get(row, "last_step")?;
    let params = TotpParams::new(
        Algorithm::parse(&algorithm).ok_or_else(|| corrupt("algorithm", &algorithm))?,
        u32::try_from(digits)
            .ok()
            .and_then(Digits::from_count)
            .ok_or_else(|| corrupt("digits", digits))?,
        u32::try_from(period).map_err(|_| corrupt("period", period))?,
    )
    .map_err(|e| corrupt("totp parameters", e))?;
    Ok(AuthenticatorRecord {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        label: get(row, "label")?,
        secret_sealed: get(row, "secret_sealed")?,
        params,
        confirmed_at: get(row, "confirmed_at")?,
        last_step: last_step
            .map(|s| u64::try_from(s).map_err(|_| corrupt("last_step", s)))
            .transpose()?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
    })
}
