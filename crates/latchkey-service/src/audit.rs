//! Audit events (SPEC §4.7, SECURITY G1): who did what to whom, when, from where, and how it
//! ended. Append-only; written in the same transaction as the act they record. A record never
//! holds a secret: `detail` carries names and counts, never a password, code or token.

use std::{fmt, str::FromStr};

use latchkey_core::model::EnvSlug;
use serde::Serialize;

macro_rules! audit_types {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// The stable, dotted event types.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditType { $($variant),+ }

        impl AuditType {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for AuditType {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok(Self::$variant),)+ _ => Err(()) }
            }
        }
    };
}

audit_types! {
    LoginSucceeded = "login.succeeded",
    LoginFailed = "login.failed",
    LoginLocked = "login.locked",
    LoginThrottled = "login.throttled",
    SessionEnded = "session.ended",
    PasswordChanged = "password.changed",
    PasswordReset = "password.reset",
    MfaEnrolled = "mfa.enrolled",
    MfaRemoved = "mfa.removed",
    MfaReset = "mfa.reset",
    MfaEnforced = "mfa.enforced",
    RecoveryCodeUsed = "recovery_code.used",
    RecoveryCodesRegenerated = "recovery_codes.regenerated",
    UserCreated = "user.created",
    UserUpdated = "user.updated",
    UserDisabled = "user.disabled",
    UserDeleted = "user.deleted",
    UserSignedOut = "user.signed_out",
    LockoutCleared = "lockout.cleared",
    EnvironmentCreated = "environment.created",
    EnvironmentUpdated = "environment.updated",
    AdminRefused = "admin.refused",
    ApiTokenCreated = "api_token.created",
    ApiTokenRevoked = "api_token.revoked",
    OidcClientCreated = "oidc.client.created",
    OidcClientUpdated = "oidc.client.updated",
    OidcClientDeleted = "oidc.client.deleted",
    OidcClientSecretRotated = "oidc.client.secret_rotated",
    OidcAuthorized = "oidc.authorized",
    OidcRefreshReused = "oidc.token.refresh_reused",
    OidcBackchannelFailed = "oidc.backchannel.failed",
    OidcSigningKeyCreated = "oidc.signing_key.created",
}

impl fmt::Display for AuditType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// Who acts. Written into the audit log as `cli`, `system`, `user:{id}` or `api_token:{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Someone with file-system access to the database, through the `latchkey` command.
    Cli,
    /// Latchkey itself (first start).
    System,
    /// A signed-in user.
    User(String),
    /// An API token.
    ApiToken(String),
    /// Nobody known yet (a login attempt).
    Anonymous,
}

impl Actor {
    pub fn audit_name(&self) -> Option<String> {
        match self {
            Self::Cli => Some("cli".into()),
            Self::System => Some("system".into()),
            Self::User(id) => Some(format!("user:{id}")),
            Self::ApiToken(id) => Some(format!("api_token:{id}")),
            Self::Anonymous => None,
        }
    }
}

/// Where a request came from, as far as the server can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The browser's device cookies (one per environment it logged in to; checked only where
    /// a login is throttled).
    pub devices: Vec<DeviceCookie>,
}

/// A device cookie's value as the browser sent it or as a login hands it out: it names the
/// user it was issued to, so it is kept out of `Debug` and zeroed on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeviceCookie(zeroize::Zeroizing<String>);

impl DeviceCookie {
    pub fn new(value: String) -> Self {
        Self(zeroize::Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DeviceCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCookie([redacted])")
    }
}

impl Origin {
    pub fn local() -> Self {
        Self::default()
    }
}

/// Who asks, and from where: travels together through every use case into the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub origin: Origin,
}

impl Caller {
    /// The `latchkey` command on this machine.
    pub fn cli() -> Self {
        Self {
            actor: Actor::Cli,
            origin: Origin::local(),
        }
    }

    /// Someone not signed in (a login step, an application at the token endpoint), at `origin`.
    pub fn anonymous(origin: Origin) -> Self {
        Self {
            actor: Actor::Anonymous,
            origin,
        }
    }

    /// Latchkey itself.
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            origin: Origin::local(),
        }
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub id: String,
    pub env: EnvSlug,
    pub at: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: Outcome,
    /// A small JSON object of facts (names, counts), never a secret.
    pub detail: Option<String>,
}
