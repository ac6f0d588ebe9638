//! The command line (SPEC §7): `serve`, `migrate`, `env`, `user`, `token`, `audit`, `backup`.
//! Parsing only: slugs, policies, roles, states and durations become validated types here, so a
//! bad one is one clear line from clap and exit code 2.
//!
//! Doc comments here are the `--help` text users read, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use latchkey_core::{
    HumanDuration,
    model::{EnvSlug, MfaPolicy, Role, UserState},
};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Self-hosted authentication server with TOTP multi-factor authentication"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, so the CLI works on the same database as a running server.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML configuration file (overridden by LATCHKEY_* variables, then by flags).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL [default: sqlite://latchkey.db].
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Base URL of links Latchkey prints and sends [default: http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// File holding the TOTP encryption key, created on first start [default: latchkey.key].
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply pending schema migrations and exit.
    Migrate,
    /// Manage environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Create API tokens for automation.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the applications that sign in through an environment (OpenID Connect clients).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Show an environment's audit log, newest first.
    Audit {
        env: EnvSlug,
        /// Only events about this user (by email).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// Only events of this type, e.g. login.failed.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only events of the last DURATION, e.g. 24h.
        #[arg(long, value_name = "DURATION")]
        since: Option<HumanDuration>,
        /// At most this many events.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// Write a consistent copy of the database to FILE, even while the server runs.
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Email of the first operator, created on first start [default: admin@localhost].
    #[arg(long, value_name = "EMAIL")]
    pub operator_email: Option<String>,
    /// Speak HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create an environment.
    Create {
        slug: EnvSlug,
        /// Display name [default: the slug].
        #[arg(long)]
        name: Option<String>,
        /// MFA policy [default: off].
        #[arg(long, value_name = "off|optional|required")]
        mfa: Option<MfaPolicy>,
    },
    /// List environments.
    List,
    /// Mark every user without MFA `mfa_enforced` and sign them out (everyone with --all).
    EnforceMfa {
        slug: EnvSlug,
        /// End every user's sessions, not only those without MFA.
        #[arg(long)]
        all: bool,
    },
    /// Publish a new OpenID Connect signing key now; it signs after --delay (default 1h), and
    /// the old key stays published until the tokens it signed have expired.
    RotateSigningKey {
        slug: EnvSlug,
        /// How long relying parties have to fetch the new key before it signs, e.g. 1h or 0s.
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        delay: HumanDuration,
    },
    /// Change an environment's settings; open sessions follow at their next check.
    Set {
        slug: EnvSlug,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "off|optional|required")]
        mfa: Option<MfaPolicy>,
        /// Absolute session lifetime since the last full login, e.g. 30d or 12h.
        #[arg(long, value_name = "DURATION")]
        session_max_age: Option<HumanDuration>,
        /// End sessions unused for this long, e.g. 8h, or `none`.
        #[arg(long, value_name = "DURATION|none", value_parser = parse_optional_duration)]
        session_idle_timeout: Option<OptionalDuration>,
        /// Accepted TOTP steps either side of now (0 to 10).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=10))]
        totp_window: Option<u8>,
        /// Name shown in authenticator apps, or `none` for the display name.
        #[arg(long)]
        issuer: Option<String>,
        /// Consecutive failures (of passwords, or of codes) that lock an account.
        #[arg(long, value_name = "N")]
        lockout_threshold: Option<u32>,
        /// Length of the first lock, e.g. 1m; each later lock doubles.
        #[arg(long, value_name = "DURATION")]
        lockout_base: Option<HumanDuration>,
        /// The longest lock, e.g. 1h.
        #[arg(long, value_name = "DURATION")]
        lockout_max: Option<HumanDuration>,
        /// Failed attempts per client address per minute before it is throttled.
        #[arg(long, value_name = "N")]
        ip_failures_per_minute: Option<u32>,
    },
}

/// A duration, or `none`.
#[derive(Debug, Clone, Copy)]
pub struct OptionalDuration(pub Option<HumanDuration>);

fn parse_optional_duration(s: &str) -> Result<OptionalDuration, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(OptionalDuration(None));
    }
    s.parse()
        .map(|d| OptionalDuration(Some(d)))
        .map_err(|e: latchkey_core::duration::DurationError| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for ENV (or, with --operator, for every environment); prints it once.
    Create {
        /// The environment (omit with --operator).
        #[arg(required_unless_present = "operator")]
        env: Option<EnvSlug>,
        /// A name to recognise it by.
        name: Option<String>,
        /// An operator token, for every environment.
        #[arg(long, value_name = "NAME", conflicts_with = "env")]
        operator: Option<String>,
    },
    /// List the tokens of ENV, or with --operator the operator tokens.
    List {
        #[arg(required_unless_present = "operator")]
        env: Option<EnvSlug>,
        #[arg(long, conflicts_with = "env")]
        operator: bool,
    },
    /// Revoke a token of ENV, or with --operator an operator token; it stops working at once.
    Revoke {
        /// The token's id (from `token list`).
        id: String,
        #[arg(long, value_name = "ENV", required_unless_present = "operator")]
        env: Option<EnvSlug>,
        #[arg(long, conflicts_with = "env")]
        operator: bool,
    },
}

/// A client's settings, for `client create` and `client update`.
#[derive(Debug, Args)]
pub struct ClientSettings {
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// A redirect URI (repeat for several); `update` replaces the list.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeat for several); `update` replaces the list.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are sent (HTTP POST) when a session ends (`none` removes it).
    #[arg(long, value_name = "URI|none")]
    pub backchannel_logout_uri: Option<String>,
    /// Ask for a second factor whatever the environment's policy.
    #[arg(long, value_name = "true|false")]
    pub require_mfa: Option<bool>,
    /// Demand PKCE (confidential clients may switch it off for apps that cannot send it).
    #[arg(long, value_name = "true|false")]
    pub require_pkce: Option<bool>,
    /// Access token lifetime, e.g. 10m.
    #[arg(long, value_name = "DURATION")]
    pub access_token_ttl: Option<HumanDuration>,
    /// Issue refresh tokens.
    #[arg(long, value_name = "true|false")]
    pub refresh_token: Option<bool>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClientKind {
    Confidential,
    Public,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an application; a confidential one's secret is printed once.
    Create {
        env: EnvSlug,
        /// The client id [default: generated].
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// `confidential` (a server-side app with a secret) or `public` (browser or native).
        #[arg(long = "type", value_enum, default_value = "confidential")]
        kind: ClientKind,
        #[command(flatten)]
        settings: ClientSettings,
    },
    /// List the applications of ENV.
    List { env: EnvSlug },
    /// Change an application's settings.
    Update {
        env: EnvSlug,
        id: String,
        #[command(flatten)]
        settings: ClientSettings,
    },
    /// Delete an application; its tokens stop working at once.
    Delete { env: EnvSlug, id: String },
    /// Give a confidential application a new secret (printed once); the old one stops working.
    RotateSecret { env: EnvSlug, id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MfaStatus {
    Enrolled,
    NotEnrolled,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Invite a user; prints their setup link.
    Create {
        env: EnvSlug,
        email: String,
        /// Display name [default: the part of the email before @].
        #[arg(long)]
        name: Option<String>,
        /// Make the user an admin of the environment.
        #[arg(long)]
        admin: bool,
    },
    /// List users with their MFA status.
    List {
        env: EnvSlug,
        #[arg(long, value_enum)]
        mfa: Option<MfaStatus>,
        #[arg(long, value_name = "user|admin")]
        role: Option<Role>,
        #[arg(long, value_name = "invited|active|disabled")]
        state: Option<UserState>,
        /// Only emails containing this text.
        #[arg(long, short)]
        q: Option<String>,
    },
    /// Reset a password: sessions end, the old password stops working; prints a 24h setup link.
    ResetPassword { env: EnvSlug, email: String },
    /// Remove the user's authenticators and recovery codes and sign them out.
    ResetMfa { env: EnvSlug, email: String },
    /// End all the user's sessions.
    SignOut { env: EnvSlug, email: String },
    /// Forget the user's failed attempts, ending a lockout.
    ClearLockout { env: EnvSlug, email: String },
    /// Report users whose email or name a new account could not have (a character with a
    /// plainer compatibility form, like full-width letters; invisible formatting); exits 1
    /// when it finds one. All environments unless one is named.
    Check { env: Option<EnvSlug> },
    /// Change a user: role, enabled or disabled, name.
    Update {
        env: EnvSlug,
        email: String,
        #[arg(long, value_name = "user|admin")]
        role: Option<Role>,
        /// Disable the user: their sessions and logins end.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
        #[arg(long)]
        name: Option<String>,
    },
}
