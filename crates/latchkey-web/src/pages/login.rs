//! The login pages (SPEC §3, §6): password, new password, second factor, MFA setup with the
//! recovery codes shown once, setup links, and logout. Between steps the login token travels in
//! an `HttpOnly` cookie, never in a URL; `rd` travels in the query and the forms and is honoured
//! at the end only under [`redirect::allowed`].

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use latchkey_core::{SecretString, login::Step};
use latchkey_service::{Caller, ServiceError, Store, login::LoginAnswer};
use serde::Deserialize;

use super::{
    PageEnv, PageQuery, PageUser,
    csrf::{Csrf, Form},
    enrol::{CodesPage, SetupPage, factor_of, label_or_default},
    frame::{self, Chrome, ContinuePage, Notice, see_other},
};
use crate::{
    extract::{Client, cookie},
    redirect,
    state::AppState,
};

/// A pending login's cookie outlives the login transaction a little; the server decides.
const LOGIN_COOKIE_MAX_AGE: i64 = 15 * 60;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    rd: String,
    #[serde(default)]
    notice: String,
    #[serde(default)]
    token: String,
    /// `login`: show the form even to a browser with a session (an application asked for a
    /// new login, SPEC §9).
    #[serde(default)]
    prompt: String,
    /// `1`: the application needs a second factor (step-up).
    #[serde(default)]
    mfa: String,
    /// The email to fill in (an application's `login_hint`).
    #[serde(default)]
    email: String,
}

/// `?rd=…` for the next page, or nothing.
fn rd_query(rd: &str) -> String {
    if rd.is_empty() {
        String::new()
    } else {
        format!("?rd={}", redirect::encode(rd))
    }
}

/// Where a finished login goes: an allowed `rd`, else the account page.
fn destination<S>(st: &AppState<S>, env: &str, rd: &str) -> String {
    redirect::allowed(&st.web, rd).unwrap_or_else(|| format!("/e/{env}/account"))
}

fn set_cookie(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Back to the start of the login, saying why; the pending login's cookie goes.
fn restart(web: &crate::state::WebConfig, env: &str, rd: &str) -> Response {
    let sep = if rd.is_empty() { "?" } else { "&" };
    let mut r = see_other(&format!(
        "/e/{env}/login{}{sep}notice=login_expired",
        rd_query(rd)
    ));
    set_cookie(&mut r, &web.cookie(web.login_cookie_name(), "", 0));
    r
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    rd: String,
    mfa: bool,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "new_password.html")]
struct NewPasswordPage {
    chrome: Chrome,
    action: String,
    rd: String,
    token: Option<String>,
    heading: &'static str,
    error: Option<String>,
}

impl NewPasswordPage {
    /// The step of a login that asks for a new password.
    fn in_login(env: &str, csrf: &Csrf, rd: String, error: Option<String>) -> Self {
        Self {
            chrome: Chrome::new(env, &csrf.token, None),
            action: format!("/e/{env}/login/password"),
            rd,
            token: None,
            heading: "Choose a new password",
            error,
        }
    }

    /// The page of a setup link (invitation or reset).
    fn for_link(env: &str, csrf: &Csrf, rd: String, token: String, error: Option<String>) -> Self {
        Self {
            chrome: Chrome::new(env, &csrf.token, None),
            action: format!("/e/{env}/setup"),
            rd,
            token: Some(token),
            heading: "Welcome: choose your password",
            error,
        }
    }
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    chrome: Chrome,
    rd: String,
    error_code: Option<String>,
    error_recovery: Option<String>,
}

/// Go to `next`: a 303 on this server, the continue page to another host.
fn go_to<S>(st: &AppState<S>, env: &str, csrf: &Csrf, next: String) -> Response {
    if next.starts_with('/') {
        return csrf.respond(st, see_other(&next));
    }
    csrf.page(
        st,
        StatusCode::OK,
        &ContinuePage {
            chrome: Chrome::new(env, &csrf.token, None),
            next,
        },
    )
}

/// Render the answer to a login step: the next page, or the end of the login. At the end the
/// session the browser had (if any) is ended and the CSRF cookie renewed, so nothing from
/// before the login survives it (SECURITY S2).
async fn next_step<S: Store>(
    st: &AppState<S>,
    env: &str,
    csrf: Csrf,
    a: &LoginAnswer,
    rd: &str,
) -> Response {
    let web = &st.web;
    let page = |path: &str| -> Response {
        let mut r = see_other(&format!("/e/{env}/login/{path}{}", rd_query(rd)));
        if let Some(t) = &a.login_token {
            set_cookie(
                &mut r,
                &web.cookie(web.login_cookie_name(), t.expose(), LOGIN_COOKIE_MAX_AGE),
            );
        }
        r
    };
    match a.status {
        Step::PasswordChangeRequired => page("password"),
        Step::MfaSetupRequired => page("mfa/setup"),
        Step::MfaRequired => page("mfa"),
        Step::Authenticated => {
            if let Some(old) = &csrf.session
                && let Ok(p) = st.service.authenticate(old).await
            {
                let caller = p.caller(latchkey_service::Origin::default());
                let _ = st.service.logout(&p, &caller).await;
            }
            let csrf = csrf.renewed(st);
            let next = destination(st, env, rd);
            let mut r = match &a.recovery_codes {
                Some(codes) => csrf.page(
                    st,
                    StatusCode::OK,
                    &CodesPage::new(Chrome::new(env, &csrf.token, None), codes, next),
                ),
                None => go_to(st, env, &csrf, next),
            };
            if let Some(s) = &a.session {
                let max_age = (s.expires_at - st.service.now()).max(0);
                set_cookie(
                    &mut r,
                    &web.cookie(web.cookie_name(), s.token.expose(), max_age),
                );
            }
            if let (Some(d), Some(u)) = (&a.device, &a.user) {
                set_cookie(&mut r, &web.device_cookie(u.env.as_str(), d.expose()));
            }
            set_cookie(&mut r, &web.cookie(web.login_cookie_name(), "", 0));
            r
        }
    }
}

/// `GET /e/{env}/login`: the form; a browser that already has a session of `env` goes on.
pub async fn form<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    csrf: Csrf,
    PageQuery(q): PageQuery<LoginQuery>,
    parts: axum::http::request::Parts,
) -> Response {
    if q.prompt != "login"
        && let Some(token) = cookie(&parts, st.web.cookie_name())
        && let Ok(p) = st.service.authenticate(&token).await
        && p.environment.slug == env
    {
        return see_other(&destination(&st, env.as_str(), &q.rd));
    }
    let page = LoginPage {
        chrome: Chrome::new(env.as_str(), &csrf.token, None),
        rd: q.rd,
        mfa: q.mfa == "1",
        email: q.email.chars().take(320).collect(),
        error: None,
        notice: Notice::named(&q.notice).map(Notice::text),
    };
    csrf.page(&st, StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    password: SecretString,
    #[serde(default)]
    rd: String,
    #[serde(default)]
    mfa: String,
}

/// `POST /e/{env}/login`.
pub async fn submit<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    form: Form<LoginForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let mfa = f.mfa == "1";
    match st
        .service
        .login_password_demanding(
            &Caller::anonymous(origin),
            &env,
            &f.email,
            f.password.expose(),
            mfa,
        )
        .await
    {
        Ok(a) => next_step(&st, env.as_str(), csrf, &a, &f.rd).await,
        Err(e) => {
            let (status, m) = frame::refusal(e, st.service.now());
            let page = LoginPage {
                chrome: Chrome::new(env.as_str(), &csrf.token, None),
                rd: f.rd,
                mfa,
                email: f.email,
                error: Some(m),
                notice: None,
            };
            csrf.page(&st, status, &page)
        }
    }
}

/// The pending login's token, from its cookie.
fn login_token<S>(st: &AppState<S>, parts: &axum::http::request::Parts) -> Option<String> {
    cookie(parts, st.web.login_cookie_name()).filter(|t| !t.is_empty())
}

/// `GET /e/{env}/login/password`: choose a new password.
pub async fn password_form<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    csrf: Csrf,
    PageQuery(q): PageQuery<LoginQuery>,
    parts: axum::http::request::Parts,
) -> Response {
    if login_token(&st, &parts).is_none() {
        return restart(&st.web, env.as_str(), &q.rd);
    }
    let page = NewPasswordPage::in_login(env.as_str(), &csrf, q.rd, None);
    csrf.page(&st, StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    new_password: SecretString,
    new_password_confirm: SecretString,
    #[serde(default)]
    rd: String,
    #[serde(default)]
    token: Option<SecretString>,
}

fn mismatch(f: &NewPasswordForm) -> Option<String> {
    (f.new_password.expose() != f.new_password_confirm.expose())
        .then(|| "The two passwords are not the same.".to_owned())
}

/// `POST /e/{env}/login/password`.
pub async fn password_submit<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: axum::http::request::Parts,
    form: Form<NewPasswordForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let Some(token) = login_token(&st, &parts) else {
        return restart(&st.web, env.as_str(), &f.rd);
    };
    let (status, message) = match mismatch(&f) {
        Some(m) => (StatusCode::BAD_REQUEST, m),
        None => match st
            .service
            .login_new_password(
                &Caller::anonymous(origin),
                &env,
                &token,
                f.new_password.expose(),
            )
            .await
        {
            Ok(a) => return next_step(&st, env.as_str(), csrf, &a, &f.rd).await,
            Err(ServiceError::LoginExpired) => return restart(&st.web, env.as_str(), &f.rd),
            // The refusal's own status: 400 for a weak password, 503 when busy, and so on.
            Err(e) => frame::refusal(e, st.service.now()),
        },
    };
    let page = NewPasswordPage::in_login(env.as_str(), &csrf, f.rd, Some(message));
    csrf.page(&st, status, &page)
}

/// `GET /e/{env}/login/mfa`: the code prompt.
pub async fn mfa_form<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    csrf: Csrf,
    PageQuery(q): PageQuery<LoginQuery>,
    parts: axum::http::request::Parts,
) -> Response {
    if login_token(&st, &parts).is_none() {
        return restart(&st.web, env.as_str(), &q.rd);
    }
    let page = MfaPage {
        chrome: Chrome::new(env.as_str(), &csrf.token, None),
        rd: q.rd,
        error_code: None,
        error_recovery: None,
    };
    csrf.page(&st, StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    recovery_code: Option<SecretString>,
    #[serde(default)]
    rd: String,
}

/// `POST /e/{env}/login/mfa`: a TOTP code or a recovery code.
pub async fn mfa_submit<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: axum::http::request::Parts,
    form: Form<CodeForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let Some(token) = login_token(&st, &parts) else {
        return restart(&st.web, env.as_str(), &f.rd);
    };
    let (factor, recovery) = factor_of(f.code, f.recovery_code);
    match st
        .service
        .login_mfa(&Caller::anonymous(origin), &env, &token, &factor)
        .await
    {
        Ok(a) => next_step(&st, env.as_str(), csrf, &a, &f.rd).await,
        Err(ServiceError::LoginExpired) => restart(&st.web, env.as_str(), &f.rd),
        Err(e) => {
            let (status, m) = frame::refusal(e, st.service.now());
            let page = MfaPage {
                chrome: Chrome::new(env.as_str(), &csrf.token, None),
                rd: f.rd,
                error_code: (!recovery).then(|| m.clone()),
                error_recovery: recovery.then_some(m),
            };
            csrf.page(&st, status, &page)
        }
    }
}

async fn setup_page<S: Store>(
    st: &AppState<S>,
    env: &latchkey_core::model::EnvSlug,
    csrf: &Csrf,
    token: &str,
    caller: &Caller,
    rd: String,
    error: Option<(StatusCode, String)>,
) -> Response {
    match st.service.login_mfa_setup(caller, env, token).await {
        Ok(offer) => {
            let mut page = SetupPage::new(
                Chrome::new(env.as_str(), &csrf.token, None),
                format!("/e/{env}/login/mfa/setup"),
                rd,
                &offer,
            );
            let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
            page.error = error.map(|(_, m)| m);
            csrf.page(st, status, &page)
        }
        Err(ServiceError::LoginExpired | ServiceError::WrongStep(_)) => {
            restart(&st.web, env.as_str(), &rd)
        }
        Err(e) => super::problem_page(&e.into(), st.service.now(), Some(env.as_str())),
    }
}

/// `GET /e/{env}/login/mfa/setup`: the QR code, the secret in groups of four, a code field.
/// A reload shows the same secret.
pub async fn setup_form<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    csrf: Csrf,
    PageQuery(q): PageQuery<LoginQuery>,
    parts: axum::http::request::Parts,
) -> Response {
    let Some(token) = login_token(&st, &parts) else {
        return restart(&st.web, env.as_str(), &q.rd);
    };
    setup_page(
        &st,
        &env,
        &csrf,
        &token,
        &Caller::anonymous(origin),
        q.rd,
        None,
    )
    .await
}

#[derive(Deserialize)]
pub struct SetupForm {
    code: SecretString,
    #[serde(default)]
    label: String,
    #[serde(default)]
    rd: String,
}

/// `POST /e/{env}/login/mfa/setup`: confirm with a code; the recovery codes follow.
pub async fn setup_submit<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    parts: axum::http::request::Parts,
    form: Form<SetupForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let Some(token) = login_token(&st, &parts) else {
        return restart(&st.web, env.as_str(), &f.rd);
    };
    let caller = Caller::anonymous(origin);
    match st
        .service
        .login_mfa_confirm(&caller, &env, &token, &f.code, label_or_default(&f.label))
        .await
    {
        Ok(a) => next_step(&st, env.as_str(), csrf, &a, &f.rd).await,
        Err(ServiceError::LoginExpired) => restart(&st.web, env.as_str(), &f.rd),
        Err(e) => {
            let refused = frame::refusal(e, st.service.now());
            setup_page(&st, &env, &csrf, &token, &caller, f.rd, Some(refused)).await
        }
    }
}

/// `GET /e/{env}/setup?token=…`: only the form. Opening the link changes nothing, so a mail
/// scanner that fetches it does not use it up (SPEC §6).
pub async fn link_form<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    csrf: Csrf,
    PageQuery(q): PageQuery<LoginQuery>,
) -> Response {
    if q.token.is_empty() {
        return frame::message_page(
            StatusCode::BAD_REQUEST,
            "This link is incomplete",
            "Copy the whole link you were given into the address bar, or ask your administrator for a new one.",
            Some(env.as_str()),
        );
    }
    let page = NewPasswordPage::for_link(env.as_str(), &csrf, q.rd, q.token, None);
    csrf.page(&st, StatusCode::OK, &page)
}

/// `POST /e/{env}/setup`: start the login from the link and set the password in one go.
pub async fn link_submit<S: Store>(
    State(st): State<AppState<S>>,
    PageEnv(env): PageEnv,
    Client(origin): Client,
    form: Form<NewPasswordForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let caller = Caller::anonymous(origin);
    let link = f
        .token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    let again = |st: &AppState<S>, status: StatusCode, m: String, rd: String| {
        let page = NewPasswordPage::for_link(env.as_str(), &csrf, rd, link.clone(), Some(m));
        csrf.page(st, status, &page)
    };
    if let Some(m) = mismatch(&f) {
        return again(&st, StatusCode::BAD_REQUEST, m, f.rd);
    }
    let started = match st.service.start_setup_link(&caller, &env, &link).await {
        Ok(a) => a,
        Err(e) => {
            return super::problem_page(&e.into(), st.service.now(), Some(env.as_str()));
        }
    };
    let Some(token) = started.login_token.as_ref() else {
        return next_step(&st, env.as_str(), csrf, &started, &f.rd).await;
    };
    match st
        .service
        .login_new_password(&caller, &env, token.expose(), f.new_password.expose())
        .await
    {
        Ok(a) => next_step(&st, env.as_str(), csrf, &a, &f.rd).await,
        Err(e) => {
            let (status, m) = frame::refusal(e, st.service.now());
            again(&st, status, m, f.rd)
        }
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /e/{env}/logout`: end this session everywhere.
pub async fn logout<S: Store>(
    State(st): State<AppState<S>>,
    user: PageUser,
    form: Form<Empty>,
) -> Response {
    let env = user.principal.environment.slug.clone();
    let caller = user.principal.caller(user.origin.clone());
    if let Err(e) = st.service.logout(&user.principal, &caller).await {
        return super::problem_page(&e.into(), st.service.now(), Some(env.as_str()));
    }
    let mut r = see_other(&format!("/e/{env}/login?notice=signed_out"));
    set_cookie(&mut r, &st.web.cookie(st.web.cookie_name(), "", 0));
    set_cookie(&mut r, &st.web.cookie(st.web.login_cookie_name(), "", 0));
    form.csrf.renewed(&st).set_on(&st, r.headers_mut());
    r
}
