//! The account page (SPEC §6): the user's sessions with "end" buttons, authenticators (add,
//! remove), recovery codes (regenerate) and password. Every change needs what the API asks
//! for: the current password, or a fresh code.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use latchkey_core::{SecretString, model::MfaPolicy};
use latchkey_service::{Caller, Store, account::Reauth, factors::FactorInput};
use serde::Deserialize;

use super::{
    PagePath, PageQuery, PageUser,
    csrf::{Csrf, Form},
    enrol::{CodesPage, SetupPage, factor_of, label_or_default},
    frame::{Chrome, Notice, refusal, see_other, when},
    problem_page,
};
use crate::state::AppState;

struct SessionRow {
    id: String,
    current: bool,
    signed_in: String,
    last_seen: String,
    ip: String,
    agent: String,
}

struct AuthenticatorRow {
    id: String,
    label: String,
    created: String,
    last_used: String,
}

/// Errors shown beside the form they concern.
#[derive(Default)]
struct Errors {
    password: Option<String>,
    add: Option<String>,
    remove: Option<String>,
    codes: Option<String>,
    sessions: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    email: String,
    name: String,
    env_name: String,
    mfa_allowed: bool,
    sessions: Vec<SessionRow>,
    authenticators: Vec<AuthenticatorRow>,
    codes_remaining: u32,
    notice: Option<&'static str>,
    errors: Errors,
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    #[serde(default)]
    notice: String,
}

async fn account_page<S: Store>(
    st: &AppState<S>,
    user: &PageUser,
    csrf: &Csrf,
    status: StatusCode,
    notice: Option<Notice>,
    errors: Errors,
) -> Response {
    let p = &user.principal;
    let env = p.environment.slug.as_str();
    let (sessions, mfa) = match (st.service.my_sessions(p).await, st.service.my_mfa(p).await) {
        (Ok(s), Ok(m)) => (s, m),
        (Err(e), _) | (_, Err(e)) => return problem_page(&e.into(), st.service.now(), Some(env)),
    };
    let page = AccountPage {
        chrome: Chrome::new(env, &csrf.token, Some(p)),
        email: p.user.email.as_str().to_owned(),
        name: p.user.name.as_str().to_owned(),
        env_name: p.environment.name.as_str().to_owned(),
        mfa_allowed: p.environment.mfa_policy != MfaPolicy::Off,
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                current: s.id == p.session.id,
                id: s.id,
                signed_in: when(s.authenticated_at),
                last_seen: when(s.last_seen_at),
                ip: s.ip.unwrap_or_default(),
                agent: s.user_agent.unwrap_or_default(),
            })
            .collect(),
        authenticators: mfa
            .authenticators
            .into_iter()
            .map(|a| AuthenticatorRow {
                id: a.id,
                label: a.label,
                created: when(a.created_at),
                last_used: a.last_used_at.map_or_else(|| "never".into(), when),
            })
            .collect(),
        codes_remaining: mfa.recovery_codes_remaining,
        notice: notice.map(Notice::text),
        errors,
    };
    csrf.page(st, status, &page)
}

fn caller(user: &PageUser) -> Caller {
    user.principal.caller(user.origin.clone())
}

fn back(user: &PageUser, notice: &str) -> Response {
    see_other(&format!(
        "/e/{}/account?notice={notice}",
        user.principal.environment.slug
    ))
}

/// `GET /e/{env}/account`.
pub async fn page<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    csrf: Csrf,
    PageQuery(q): PageQuery<NoticeQuery>,
) -> Response {
    account_page(
        &st,
        &user,
        &csrf,
        StatusCode::OK,
        Notice::named(&q.notice),
        Errors::default(),
    )
    .await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
    new_password_confirm: SecretString,
}

/// `POST /e/{env}/account/password`: ends the user's other sessions.
pub async fn password<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    form: Form<PasswordForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let result = if f.new_password.expose() == f.new_password_confirm.expose() {
        st.service
            .change_my_password(
                &user.principal,
                &caller(&user),
                f.current_password.expose(),
                f.new_password.expose(),
            )
            .await
            .map_err(|e| refusal(e, st.service.now()))
    } else {
        Err((
            StatusCode::BAD_REQUEST,
            "The two new passwords are not the same.".into(),
        ))
    };
    match result {
        Ok(_) => back(&user, "password_changed"),
        Err((status, m)) => {
            let errors = Errors {
                password: Some(m),
                ..Errors::default()
            };
            account_page(&st, &user, &csrf, status, None, errors).await
        }
    }
}

#[derive(Deserialize)]
pub struct Nothing {}

/// `POST /e/{env}/account/sessions/{id}/end`; ending the current one signs out.
pub async fn end_session<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    PagePath((_env, id)): PagePath<(String, String)>,
    form: Form<Nothing>,
) -> Response {
    let Form { csrf, .. } = form;
    match st
        .service
        .end_my_session(&user.principal, &id, &caller(&user))
        .await
    {
        Ok(()) if id == user.principal.session.id => see_other(&format!(
            "/e/{}/login?notice=signed_out",
            user.principal.environment.slug
        )),
        Ok(()) => back(&user, "session_ended"),
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            let errors = Errors {
                sessions: Some(m),
                ..Errors::default()
            };
            account_page(&st, &user, &csrf, status, None, errors).await
        }
    }
}

/// A code or a recovery code, as a form gives them.
#[derive(Deserialize)]
pub struct FactorForm {
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    recovery_code: Option<SecretString>,
    #[serde(default)]
    password: Option<SecretString>,
}

impl FactorForm {
    fn factor(self) -> FactorInput {
        factor_of(self.code, self.recovery_code).0
    }
}

/// `POST /e/{env}/account/mfa/add`: prove presence (password without an authenticator, a code
/// with one), then see the new secret.
pub async fn add_begin<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    form: Form<FactorForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let reauth = match f.password {
        Some(pw) if !pw.expose().is_empty() => Reauth::Password(pw),
        _ => Reauth::Factor(f.factor()),
    };
    match st
        .service
        .begin_enrolment(&user.principal, &caller(&user), &reauth)
        .await
    {
        Ok((id, offer)) => {
            let env = user.principal.environment.slug.as_str();
            let page = SetupPage::new(
                Chrome::new(env, &csrf.token, Some(&user.principal)),
                format!("/e/{env}/account/mfa/{id}/confirm"),
                String::new(),
                &offer,
            );
            csrf.page(&st, StatusCode::OK, &page)
        }
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            let errors = Errors {
                add: Some(m),
                ..Errors::default()
            };
            account_page(&st, &user, &csrf, status, None, errors).await
        }
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    code: SecretString,
    #[serde(default)]
    label: String,
}

/// `POST /e/{env}/account/mfa/{id}/confirm`: the first authenticator brings recovery codes.
pub async fn add_confirm<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    PagePath((_env, id)): PagePath<(String, String)>,
    form: Form<ConfirmForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    match st
        .service
        .confirm_enrolment(
            &user.principal,
            &caller(&user),
            &id,
            &f.code,
            label_or_default(&f.label),
        )
        .await
    {
        Ok(Some(codes)) => {
            let env = user.principal.environment.slug.as_str();
            let page = CodesPage::new(
                Chrome::new(env, &csrf.token, Some(&user.principal)),
                &codes,
                format!("/e/{env}/account?notice=authenticator_added"),
            );
            csrf.page(&st, StatusCode::OK, &page)
        }
        Ok(None) => back(&user, "authenticator_added"),
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            let errors = Errors {
                add: Some(format!("{m} Start again to see a new secret.")),
                ..Errors::default()
            };
            account_page(&st, &user, &csrf, status, None, errors).await
        }
    }
}

/// `POST /e/{env}/account/mfa/{id}/remove`: with a fresh code.
pub async fn remove<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    PagePath((_env, id)): PagePath<(String, String)>,
    form: Form<FactorForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    match st
        .service
        .remove_my_authenticator(&user.principal, &caller(&user), &id, &f.factor())
        .await
    {
        Ok(()) => back(&user, "authenticator_removed"),
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            let errors = Errors {
                remove: Some(m),
                ..Errors::default()
            };
            account_page(&st, &user, &csrf, status, None, errors).await
        }
    }
}

/// `POST /e/{env}/account/recovery-codes`: a new set, shown once; the old void.
pub async fn regenerate<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    form: Form<FactorForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    match st
        .service
        .regenerate_recovery_codes(&user.principal, &caller(&user), &f.factor())
        .await
    {
        Ok(codes) => {
            let env = user.principal.environment.slug.as_str();
            let page = CodesPage::new(
                Chrome::new(env, &csrf.token, Some(&user.principal)),
                &codes,
                format!("/e/{env}/account"),
            );
            csrf.page(&st, StatusCode::OK, &page)
        }
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            let errors = Errors {
                codes: Some(m),
                ..Errors::default()
            };
            account_page(&st, &user, &csrf, status, None, errors).await
        }
    }
}
