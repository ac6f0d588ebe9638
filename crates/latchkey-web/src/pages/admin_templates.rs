//! The admin pages' templates and the rows they show: figures for people (dates, MFA status
//! in words, the adoption chart's geometry), computed here so the templates only place them.

use askama::Template;
use latchkey_core::model::{Environment, User, UserState};
use latchkey_service::{AuditRecord, admin::Stats};

use super::frame::{Chrome, when};

/// Width of the MFA-adoption bar, in SVG units.
pub const CHART_WIDTH: u32 = 300;

pub struct StatsView {
    pub users: u64,
    pub with_mfa: u64,
    pub without_mfa: u64,
    pub percent: u32,
    pub enforced: u64,
    pub active_sessions: u64,
    pub lockouts_24h: u64,
    /// Width of the "with MFA" part of the bar.
    pub bar: u32,
}

impl From<&Stats> for StatsView {
    fn from(s: &Stats) -> Self {
        let share = s.mfa_share.clamp(0.0, 1.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // within 0..=300
        let (percent, bar) = (
            (share * 100.0).round() as u32,
            (share * f64::from(CHART_WIDTH)).round() as u32,
        );
        Self {
            users: s.counts.users,
            with_mfa: s.counts.users_with_mfa,
            without_mfa: s.counts.users.saturating_sub(s.counts.users_with_mfa),
            percent,
            enforced: s.counts.users_mfa_enforced,
            active_sessions: s.counts.active_sessions,
            lockouts_24h: s.counts.lockouts_24h,
            bar,
        }
    }
}

#[allow(clippy::struct_excessive_bools)] // flags the template shows
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub state: &'static str,
    pub mfa: &'static str,
    pub last_login: String,
    pub created: String,
    pub disabled: bool,
    pub admin: bool,
    pub mfa_enforced: bool,
    pub mfa_enrolled: bool,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.as_str().to_owned(),
            name: u.name.as_str().to_owned(),
            role: u.role.as_str(),
            state: u.state.as_str(),
            mfa: match (u.mfa_enrolled, u.mfa_enforced) {
                (true, _) => "set up",
                (false, true) => "required at next login",
                (false, false) => "not set up",
            },
            last_login: u.last_login_at.map_or_else(|| "never".into(), when),
            created: when(u.created_at),
            disabled: u.state == UserState::Disabled,
            admin: u.role == latchkey_core::model::Role::Admin,
            mfa_enforced: u.mfa_enforced,
            mfa_enrolled: u.mfa_enrolled,
        }
    }
}

pub struct EnvRow {
    pub slug: String,
    pub name: String,
    pub policy: &'static str,
    pub max_age: String,
    pub idle: String,
    pub system: bool,
}

impl From<&Environment> for EnvRow {
    fn from(e: &Environment) -> Self {
        Self {
            slug: e.slug.as_str().to_owned(),
            name: e.name.as_str().to_owned(),
            policy: e.mfa_policy.as_str(),
            max_age: e.session_max_age.to_string(),
            idle: e
                .session_idle_timeout
                .map_or_else(|| "none".into(), |d| d.to_string()),
            system: e.slug.as_str() == latchkey_core::model::SYSTEM,
        }
    }
}

/// The filters of the users table, as given.
#[derive(Default, serde::Deserialize)]
pub struct UserFilters {
    #[serde(default)]
    pub mfa: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub cursor: String,
    #[serde(default)]
    pub notice: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    pub chrome: Chrome,
    pub env_name: String,
    pub policy: &'static str,
    pub stats: StatsView,
    pub chart_width: u32,
    pub filters: UserFilters,
    pub users: Vec<UserRow>,
    pub next: Option<String>,
    pub invite_error: Option<String>,
    pub invite_email: String,
    pub invite_name: String,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    /// Shown on `system`'s page to operators.
    pub environments: Option<Vec<EnvRow>>,
    pub policies: &'static [&'static str],
}

#[derive(Template)]
#[template(path = "admin_user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub user: UserRow,
    pub actions: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub title: String,
    pub lines: Vec<String>,
    pub action: String,
    pub button: &'static str,
    pub hidden: Vec<(&'static str, String)>,
    pub back: String,
}

#[derive(Template)]
#[template(path = "result.html")]
pub struct ResultPage {
    pub chrome: Chrome,
    pub title: String,
    pub lines: Vec<String>,
    /// A setup link to hand over.
    pub link: Option<String>,
    pub back: String,
}

pub struct AuditRow {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub target: String,
    pub ip: String,
    pub outcome: &'static str,
    pub detail: String,
}

impl From<&AuditRecord> for AuditRow {
    fn from(e: &AuditRecord) -> Self {
        Self {
            at: when(e.at),
            kind: e.kind.clone(),
            actor: e.actor.clone().unwrap_or_default(),
            target: e.target.clone().unwrap_or_default(),
            ip: e.ip.clone().unwrap_or_default(),
            outcome: e.outcome.as_str(),
            detail: e.detail.clone().unwrap_or_default(),
        }
    }
}

#[derive(Default, serde::Deserialize)]
pub struct AuditFilters {
    #[serde(default)]
    pub user: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub cursor: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub filters: AuditFilters,
    pub types: Vec<&'static str>,
    pub events: Vec<AuditRow>,
    pub next: Option<String>,
    pub error: Option<String>,
}
