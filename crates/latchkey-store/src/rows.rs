//! Reading rows back into domain types, written once: `row_readers!` expands the readers for a
//! row type — `sql::Row` (both backends' executors) and SQLite's session check, which reads
//! its one query by column index (`sqlite/readers.rs`). A value that does not parse is reported
//! as corrupt, never trusted and never a panic.

/// The row readers (`environment`, `environment_joined`, `user`, `session_record`,
/// `authenticator`) for a row type, given a `get(row, column)` in scope.
macro_rules! row_readers {
    // The readers over any row type, given a `get(row, column)` in scope.
    (@readers $row:ty) => {
        use latchkey_core::{
            HumanDuration,
            model::{DisplayName, Email, EnvSlug, Environment, LockoutSettings, User},
            totp::{Algorithm, Digits, TotpParams},
        };
        use latchkey_service::{StoreError, store::AuthenticatorRecord};

        use crate::corrupt;

        fn duration(secs: i64, what: &str) -> Result<HumanDuration, StoreError> {
            u64::try_from(secs)
                .ok()
                .and_then(|s| HumanDuration::from_secs(s).ok())
                .ok_or_else(|| corrupt(what, secs))
        }

        fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, StoreError> {
            value.parse().map_err(|_| corrupt(what, value))
        }

        /// The environment's columns under their own names (`SELECT … FROM environments`).
        const PLAIN: [&str; 13] = [
            "slug",
            "name",
            "mfa_policy",
            "session_max_age",
            "session_idle_timeout",
            "totp_window",
            "lockout_threshold",
            "lockout_base_seconds",
            "lockout_max_seconds",
            "ip_failures_per_minute",
            "issuer",
            "created_at",
            "updated_at",
        ];

        /// The same columns joined into another row, each named `e_…`.
        const PREFIXED: [&str; 13] = [
            "e_slug",
            "e_name",
            "e_mfa_policy",
            "e_session_max_age",
            "e_session_idle_timeout",
            "e_totp_window",
            "e_lockout_threshold",
            "e_lockout_base_seconds",
            "e_lockout_max_seconds",
            "e_ip_failures_per_minute",
            "e_issuer",
            "e_created_at",
            "e_updated_at",
        ];

        /// The environment's columns for a join on `environments e`, named as [`environment_joined`]
        /// reads them.
        pub(super) const ENV_JOINED_COLUMNS: &str = "e.slug AS e_slug, e.name AS e_name, e.mfa_policy AS e_mfa_policy, \
             e.session_max_age AS e_session_max_age, e.session_idle_timeout AS e_session_idle_timeout, \
             e.totp_window AS e_totp_window, e.lockout_threshold AS e_lockout_threshold, \
             e.lockout_base_seconds AS e_lockout_base_seconds, e.lockout_max_seconds AS e_lockout_max_seconds, \
             e.ip_failures_per_minute AS e_ip_failures_per_minute, e.issuer AS e_issuer, \
             e.created_at AS e_created_at, e.updated_at AS e_updated_at";

        pub(super) fn environment(row: &$row) -> Result<Environment, StoreError> {
            environment_named(row, &PLAIN)
        }

        /// An environment read from a row that joined it ([`ENV_JOINED_COLUMNS`]).
        pub(super) fn environment_joined(row: &$row) -> Result<Environment, StoreError> {
            environment_named(row, &PREFIXED)
        }

        fn environment_named(row: &$row, c: &[&str; 13]) -> Result<Environment, StoreError> {
            let slug: String = get(row, c[0])?;
            let name: String = get(row, c[1])?;
            let policy: String = get(row, c[2])?;
            let idle: Option<i64> = get(row, c[4])?;
            let window: i64 = get(row, c[5])?;
            let threshold: i64 = get(row, c[6])?;
            let ip: i64 = get(row, c[9])?;
            Ok(Environment {
                slug: EnvSlug::parse(&slug).map_err(|_| corrupt("slug", &slug))?,
                name: DisplayName::from_stored(&name).map_err(|_| corrupt("name", &name))?,
                mfa_policy: parse(&policy, "mfa_policy")?,
                session_max_age: duration(get(row, c[3])?, "session_max_age")?,
                session_idle_timeout: idle
                    .map(|s| duration(s, "session_idle_timeout"))
                    .transpose()?,
                totp_window: u8::try_from(window).map_err(|_| corrupt("totp_window", window))?,
                lockout: LockoutSettings {
                    threshold: u32::try_from(threshold)
                        .map_err(|_| corrupt("lockout_threshold", threshold))?,
                    base_lock: duration(get(row, c[7])?, "lockout_base_seconds")?,
                    max_lock: duration(get(row, c[8])?, "lockout_max_seconds")?,
                    ip_failures_per_minute: u32::try_from(ip)
                        .map_err(|_| corrupt("ip_failures_per_minute", ip))?,
                },
                issuer: get(row, c[10])?,
                created_at: get(row, c[11])?,
                updated_at: get(row, c[12])?,
            })
        }

        /// The columns [`user`] reads, for `SELECT {USER_COLUMNS} FROM users u`.
        pub(super) const USER_COLUMNS: &str = "u.id, u.env, u.email, u.name, u.role, u.state, u.mfa_enforced, \
             u.last_login_at, u.created_at, u.updated_at, \
             EXISTS (SELECT 1 FROM authenticators a WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL) AS mfa_enrolled";

        pub(super) fn user(row: &$row) -> Result<User, StoreError> {
            let env: String = get(row, "env")?;
            let email: String = get(row, "email")?;
            let name: String = get(row, "name")?;
            let role: String = get(row, "role")?;
            let state: String = get(row, "state")?;
            Ok(User {
                id: get(row, "id")?,
                env: EnvSlug::parse(&env).map_err(|_| corrupt("env", &env))?,
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
        pub(super) fn session_record(
            row: &$row,
        ) -> Result<latchkey_service::store::SessionRecord, StoreError> {
            let env: String = get(row, "s_env")?;
            Ok(latchkey_service::store::SessionRecord {
                id: get(row, "s_id")?,
                user_id: get(row, "s_user_id")?,
                env: EnvSlug::parse(&env).map_err(|_| corrupt("env", &env))?,
                authenticated_at: get(row, "authenticated_at")?,
                amr: get(row, "amr")?,
                created_at: get(row, "s_created_at")?,
                last_seen_at: get(row, "last_seen_at")?,
                ip: get(row, "ip")?,
                user_agent: get(row, "user_agent")?,
            })
        }

        pub(super) fn authenticator(row: &$row) -> Result<AuthenticatorRecord, StoreError> {
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
    };
}
