//! The admin pages (SPEC §6): the users table with MFA status and filters, statistics with
//! the adoption chart, a user's page, per-user actions behind a confirmation page, invitations,
//! and "enforce MFA now" that says what it will do before it does it. On `system` the page also
//! lists the environments (their forms are `environments.rs`); the audit log is `audit.rs`.
//! Each act is the same use case as the admin API.

use axum::{extract::State, http::StatusCode, response::Response};
use latchkey_core::model::{DisplayName, Email, Role, SYSTEM, UserState};
use latchkey_service::{
    ServiceError, Store, admin::UserPatch, authz::Identity, store::MfaFilter, users::UserFilter,
};
use serde::Deserialize;

use super::{
    PageAdmin, PagePath, PageQuery,
    admin_templates::{
        AdminPage, CHART_WIDTH, ConfirmPage, EnvRow, ResultPage, StatsView, UserFilters, UserPage,
        UserRow,
    },
    csrf::{Csrf, Form},
    frame::{Chrome, Notice},
    problem_page,
};
use crate::{redirect::encode, state::AppState};

const POLICIES: &[&str] = &["off", "optional", "required"];

pub(super) fn chrome(who: &PageAdmin, csrf: &Csrf) -> Chrome {
    Chrome::new(
        who.admin.env().slug.as_str(),
        &csrf.token,
        Some(&who.principal),
    )
}

/// What the admin page needs besides the filters.
#[derive(Default)]
pub(super) struct Extra {
    pub(super) invite_error: Option<String>,
    pub(super) invite_email: String,
    pub(super) invite_name: String,
    pub(super) error: Option<String>,
}

pub(super) async fn admin_page<S: Store>(
    st: &AppState<S>,
    who: &PageAdmin,
    csrf: &Csrf,
    filters: UserFilters,
    status: StatusCode,
    mut extra: Extra,
) -> Response {
    let env = who.admin.env();
    let figures = match st.service.stats(&who.admin).await {
        Ok(s) => s,
        Err(e) => return problem_page(&e.into(), st.service.now(), Some(env.slug.as_str())),
    };
    let filter = UserFilter {
        mfa: match filters.mfa.as_str() {
            "enrolled" => Some(MfaFilter::Enrolled),
            "not_enrolled" => Some(MfaFilter::NotEnrolled),
            _ => None,
        },
        role: filters.role.parse::<Role>().ok(),
        state: filters.state.parse::<UserState>().ok(),
        q: Some(filters.q.trim().to_owned()).filter(|q| !q.is_empty()),
    };
    let cursor = Some(filters.cursor.clone()).filter(|c| !c.is_empty());
    let (users, next) = match st
        .service
        .list_users(&who.admin, filter, cursor, Some(50))
        .await
    {
        Ok(p) => (p.users.iter().map(UserRow::from).collect(), p.next_cursor),
        Err(e) => {
            extra.error = Some(super::frame::refusal(e, st.service.now()).1);
            (Vec::new(), None)
        }
    };
    let next = next.map(|c| {
        format!(
            "?mfa={}&role={}&state={}&q={}&cursor={}",
            encode(&filters.mfa),
            encode(&filters.role),
            encode(&filters.state),
            encode(&filters.q),
            encode(&c)
        )
    });
    let identity = Identity::User(Box::new(who.principal.clone()));
    let environments = if env.slug.as_str() == SYSTEM
        && st.service.operator(&identity, who.origin.clone()).is_ok()
    {
        match st.service.list_environments().await {
            Ok(list) => Some(list.iter().map(EnvRow::from).collect()),
            Err(e) => return problem_page(&e.into(), st.service.now(), Some(SYSTEM)),
        }
    } else {
        None
    };
    let t = AdminPage {
        chrome: chrome(who, csrf),
        env_name: env.name.as_str().to_owned(),
        policy: env.mfa_policy.as_str(),
        stats: StatsView::from(&figures),
        chart_width: CHART_WIDTH,
        notice: Notice::named(&filters.notice).map(Notice::text),
        filters,
        users,
        next,
        invite_error: extra.invite_error,
        invite_email: extra.invite_email,
        invite_name: extra.invite_name,
        error: extra.error,
        environments,
        policies: POLICIES,
    };
    csrf.page(st, status, &t)
}

/// `GET /e/{env}/admin`.
pub async fn users<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    csrf: Csrf,
    PageQuery(filters): PageQuery<UserFilters>,
) -> Response {
    admin_page(&st, &who, &csrf, filters, StatusCode::OK, Extra::default()).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// `POST /e/{env}/admin/users`: invite; the setup link is shown to hand over.
pub async fn invite<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    form: Form<InviteForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let parsed = Email::parse(&f.email).map_err(|e| e.0).and_then(|email| {
        let name = if f.name.trim().is_empty() {
            None
        } else {
            Some(DisplayName::parse(&f.name).map_err(|e| e.0)?)
        };
        Ok((email, name))
    });
    let result = match parsed {
        Err(m) => Err((StatusCode::BAD_REQUEST, super::frame::sentence(&m))),
        Ok((email, name)) => {
            let role = if f.role == "admin" {
                Role::Admin
            } else {
                Role::User
            };
            st.service
                .create_user(&who.admin, email, name, role)
                .await
                .map_err(|e| super::frame::refusal(e, st.service.now()))
        }
    };
    match result {
        Ok((user, link)) => {
            let t = ResultPage {
                chrome: chrome(&who, &csrf),
                title: format!("{} is invited", user.email.as_str()),
                lines: vec![format!(
                    "Hand this link to them (it works once, for {}). It is not shown again; \
                     a new one can be made with “Reset password”.",
                    link.valid_for
                )],
                link: Some(link.url.clone()),
                back: format!("/e/{}/admin", who.admin.env().slug),
            };
            csrf.page(&st, StatusCode::CREATED, &t)
        }
        Err((status, m)) => {
            let extra = Extra {
                invite_error: Some(m),
                invite_email: f.email,
                invite_name: f.name,
                error: None,
            };
            admin_page(&st, &who, &csrf, UserFilters::default(), status, extra).await
        }
    }
}

/// `GET /e/{env}/admin/users/{id}`.
pub async fn user<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    csrf: Csrf,
    PagePath((_env, id)): PagePath<(String, String)>,
) -> Response {
    match st.service.admin_user(&who.admin, &id).await {
        Ok(u) => {
            let row = UserRow::from(&u);
            let actions = ACTIONS
                .iter()
                .filter(|(slug, _)| applies(slug, &row))
                .copied()
                .collect();
            let t = UserPage {
                chrome: chrome(&who, &csrf),
                user: row,
                actions,
            };
            csrf.page(&st, StatusCode::OK, &t)
        }
        Err(e) => problem_page(
            &e.into(),
            st.service.now(),
            Some(who.admin.env().slug.as_str()),
        ),
    }
}

/// The per-user actions: path segment and button label.
const ACTIONS: &[(&str, &str)] = &[
    ("reset-password", "Reset password"),
    ("reset-mfa", "Reset MFA"),
    ("sign-out", "Sign out everywhere"),
    ("require-mfa", "Require MFA set-up"),
    ("relax-mfa", "Stop requiring MFA set-up"),
    ("clear-lockout", "Clear lockout"),
    ("make-admin", "Make admin"),
    ("make-user", "Make user"),
    ("disable", "Disable"),
    ("enable", "Enable"),
    ("delete", "Delete"),
];

fn applies(action: &str, u: &UserRow) -> bool {
    match action {
        "reset-mfa" => u.mfa_enrolled,
        "require-mfa" => !u.mfa_enforced && !u.mfa_enrolled,
        "relax-mfa" => u.mfa_enforced,
        "make-admin" => !u.admin,
        "make-user" => u.admin,
        "disable" => !u.disabled,
        "enable" => u.disabled,
        _ => true,
    }
}

/// What an action will do, in words.
fn explain(action: &str, email: &str) -> Option<(&'static str, Vec<String>)> {
    Some(match action {
        "reset-password" => ("Reset password", vec![
            format!("This ends all of {email}'s sessions and makes their current password unusable."),
            "You get a one-time link to hand to them; they choose a new password with it. Their authenticator stays: they will still need a code.".into(),
        ]),
        "reset-mfa" => ("Reset MFA", vec![
            format!("This removes all of {email}'s authenticators and recovery codes and ends their sessions."),
            "At their next login they set up a new authenticator where MFA is required.".into(),
        ]),
        "sign-out" => ("Sign out everywhere", vec![format!("This ends all of {email}'s sessions.")]),
        "require-mfa" => ("Require MFA set-up", vec![format!("{email} will set up an authenticator at their next login, whatever the environment's policy.")]),
        "relax-mfa" => ("Stop requiring MFA set-up", vec![format!("{email} will no longer be asked to set up an authenticator unless the policy requires it.")]),
        "clear-lockout" => ("Clear lockout", vec![format!("This forgets {email}'s failed attempts, so they can try again at once.")]),
        "make-admin" => ("Make admin", vec![format!("{email} will administer this environment.")]),
        "make-user" => ("Make user", vec![format!("{email} will no longer administer this environment; API tokens they made are revoked.")]),
        "disable" => ("Disable", vec![format!("{email} cannot log in; their sessions, logins in progress and setup links end.")]),
        "enable" => ("Enable", vec![format!("{email} can log in again.")]),
        "delete" => ("Delete", vec![format!("This deletes {email} and everything that is theirs. It cannot be undone; the audit log keeps what happened.")]),
        _ => return None,
    })
}

/// `GET /e/{env}/admin/users/{id}/{action}`: the confirmation.
pub async fn confirm<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    csrf: Csrf,
    PagePath((_env, id, action)): PagePath<(String, String, String)>,
) -> Response {
    let env = who.admin.env().slug.as_str();
    let u = match st.service.admin_user(&who.admin, &id).await {
        Ok(u) => u,
        Err(e) => return problem_page(&e.into(), st.service.now(), Some(env)),
    };
    let Some((title, lines)) = explain(&action, u.email.as_str()) else {
        return super::frame::error_page(StatusCode::NOT_FOUND, Notice::NotFound, Some(env));
    };
    let t = ConfirmPage {
        chrome: chrome(&who, &csrf),
        title: format!("{title}: {}", u.email.as_str()),
        lines,
        action: format!("/e/{env}/admin/users/{id}/{action}"),
        button: title,
        hidden: Vec::new(),
        back: format!("/e/{env}/admin/users/{id}"),
    };
    csrf.page(&st, StatusCode::OK, &t)
}

#[derive(Deserialize)]
pub struct Nothing {}

/// `POST /e/{env}/admin/users/{id}/{action}`: do it and say what was done.
pub async fn act<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    PagePath((_env, id, action)): PagePath<(String, String, String)>,
    form: Form<Nothing>,
) -> Response {
    let Form { csrf, .. } = form;
    let svc = &st.service;
    let env = who.admin.env().slug.clone();
    let patch = |p: UserPatch| svc.update_user(&who.admin, &id, p);
    let none = UserPatch {
        name: None,
        role: None,
        disabled: None,
        mfa_enforced: None,
    };
    let done: Result<(Vec<String>, Option<String>), ServiceError> = match action.as_str() {
        "reset-password" => svc.reset_password(&who.admin, &id).await.map(|r| {
            (
                vec![
                    format!("{} sessions were ended.", r.sessions_ended),
                    format!(
                        "Hand this link to the user (it works once, for {}). It is not shown again.",
                        r.link.valid_for
                    ),
                ],
                Some(r.link.url.clone()),
            )
        }),
        "reset-mfa" => svc.reset_mfa(&who.admin, &id).await.map(|(sessions, removed)| {
            (
                vec![format!(
                    "{removed} authenticators were removed and {sessions} sessions ended."
                )],
                None,
            )
        }),
        "sign-out" => svc
            .sign_out(&who.admin, &id)
            .await
            .map(|n| (vec![format!("{n} sessions were ended.")], None)),
        "clear-lockout" => svc.clear_lockout(&who.admin, &id).await.map(|was| {
            let m = if was { "The lockout is cleared." } else { "There was no lockout." };
            (vec![m.to_owned()], None)
        }),
        "require-mfa" | "relax-mfa" => patch(UserPatch {
            mfa_enforced: Some(action == "require-mfa"),
            ..none
        })
        .await
        .map(|_| (vec!["Saved.".to_owned()], None)),
        "make-admin" | "make-user" => patch(UserPatch {
            role: Some(if action == "make-admin" { Role::Admin } else { Role::User }),
            ..none
        })
        .await
        .map(|_| (vec!["Saved.".to_owned()], None)),
        "disable" | "enable" => patch(UserPatch {
            disabled: Some(action == "disable"),
            ..none
        })
        .await
        .map(|_| (vec!["Saved.".to_owned()], None)),
        "delete" => svc
            .delete_user(&who.admin, &id)
            .await
            .map(|()| (vec!["The user is deleted.".to_owned()], None)),
        _ => {
            return super::frame::error_page(
                StatusCode::NOT_FOUND,
                Notice::NotFound,
                Some(env.as_str()),
            );
        }
    };
    let back = if action == "delete" {
        format!("/e/{env}/admin")
    } else {
        format!("/e/{env}/admin/users/{id}")
    };
    let (status, title, lines, link) = match done {
        Ok((lines, link)) => (StatusCode::OK, "Done".to_owned(), lines, link),
        Err(e) => {
            let (status, m) = super::frame::refusal(e, st.service.now());
            (status, "Not done".to_owned(), vec![m], None)
        }
    };
    let t = ResultPage {
        chrome: chrome(&who, &csrf),
        title,
        lines,
        link,
        back,
    };
    csrf.page(&st, status, &t)
}

#[derive(Deserialize, Default)]
pub struct EnforceQuery {
    #[serde(default)]
    all: String,
}

/// `GET /e/{env}/admin/enforce-mfa[?all=1]`: what it will do, then a button.
pub async fn enforce_confirm<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    csrf: Csrf,
    PageQuery(query): PageQuery<EnforceQuery>,
) -> Response {
    let env = who.admin.env().slug.as_str();
    let all = !query.all.is_empty();
    let back = format!("/e/{env}/admin");
    let t = match st.service.enforce_mfa_preview(&who.admin, all).await {
        Ok(counts) => ConfirmPage {
            chrome: chrome(&who, &csrf),
            title: format!("Enforce MFA now in {env}"),
            lines: vec![
                format!(
                    "{} users without an authenticator will have to set one up at their next login.",
                    counts.users_marked
                ),
                format!(
                    "{} users will be signed out now ({} sessions){}.",
                    counts.users_signed_out,
                    counts.sessions_ended,
                    if all {
                        ", everyone who has a session"
                    } else {
                        ""
                    }
                ),
            ],
            action: format!("/e/{env}/admin/enforce-mfa"),
            button: "Enforce MFA now",
            hidden: if all {
                vec![("all", "1".to_owned())]
            } else {
                Vec::new()
            },
            back,
        },
        Err(e) => {
            let (status, m) = super::frame::refusal(e, st.service.now());
            let t = ResultPage {
                chrome: chrome(&who, &csrf),
                title: "MFA cannot be enforced here".into(),
                lines: vec![m],
                link: None,
                back,
            };
            return csrf.page(&st, status, &t);
        }
    };
    csrf.page(&st, StatusCode::OK, &t)
}

#[derive(Deserialize)]
pub struct EnforceForm {
    #[serde(default)]
    all: String,
}

/// `POST /e/{env}/admin/enforce-mfa`.
pub async fn enforce<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    form: Form<EnforceForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let env = who.admin.env().slug.as_str();
    let (status, title, lines) = match st.service.enforce_mfa(&who.admin, !f.all.is_empty()).await {
        Ok(c) => (
            StatusCode::OK,
            "MFA is enforced".to_owned(),
            vec![
                format!(
                    "{} users were marked to set up MFA at their next login.",
                    c.users_marked
                ),
                format!(
                    "{} users were signed out ({} sessions).",
                    c.users_signed_out, c.sessions_ended
                ),
            ],
        ),
        Err(e) => {
            let (status, m) = super::frame::refusal(e, st.service.now());
            (status, "Not done".to_owned(), vec![m])
        }
    };
    let t = ResultPage {
        chrome: chrome(&who, &csrf),
        title,
        lines,
        link: None,
        back: format!("/e/{env}/admin"),
    };
    csrf.page(&st, status, &t)
}
