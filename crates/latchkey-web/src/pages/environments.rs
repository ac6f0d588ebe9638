//! `system`'s environment forms (SPEC §4.1, §6): operators create environments and set their
//! MFA policy and session lifetimes from the admin page of `system`.

use axum::{extract::State, http::StatusCode, response::Response};
use latchkey_core::model::{DisplayName, EnvSlug, MfaPolicy, SYSTEM};
use latchkey_service::{Store, authz::Identity, environments::EnvironmentPatch};
use serde::Deserialize;

use super::{
    PageAdmin, PagePath,
    admin::{Extra, admin_page},
    admin_templates::UserFilters,
    csrf::{Csrf, Form},
    frame::{Notice, see_other},
    problem_page,
};
use crate::state::AppState;

/// The operator behind a `system` admin page, or the answer that refuses.
fn operator<S: Store>(
    st: &AppState<S>,
    who: &PageAdmin,
) -> Result<latchkey_service::authz::Operator, Box<Response>> {
    let identity = Identity::User(Box::new(who.principal.clone()));
    if who.admin.env().slug.as_str() != SYSTEM {
        return Err(Box::new(super::frame::error_page(
            StatusCode::NOT_FOUND,
            Notice::NotFound,
            None,
        )));
    }
    st.service
        .operator(&identity, who.origin.clone())
        .map_err(|e| Box::new(problem_page(&e.into(), st.service.now(), Some(SYSTEM))))
}

#[derive(Deserialize)]
pub struct NewEnvironmentForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    mfa_policy: String,
}

/// `POST /e/system/admin/environments`.
pub async fn create_environment<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    form: Form<NewEnvironmentForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let op = match operator(&st, &who) {
        Ok(op) => op,
        Err(r) => return *r,
    };
    let result = async {
        let slug = EnvSlug::parse(f.slug.trim()).map_err(|e| e.0)?;
        let name = Some(f.name.trim())
            .filter(|n| !n.is_empty())
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| e.0)?;
        let policy = Some(f.mfa_policy.as_str())
            .filter(|p| !p.is_empty())
            .map(str::parse::<MfaPolicy>)
            .transpose()
            .map_err(|e| e.to_string())?;
        st.service
            .create_environment(&op, slug, name, policy)
            .await
            .map_err(|e| super::frame::refusal(e, st.service.now()).1)
    }
    .await;
    environment_saved(&st, &who, &csrf, result, "created").await
}

#[derive(Deserialize)]
pub struct EnvironmentForm {
    #[serde(default)]
    mfa_policy: String,
    #[serde(default)]
    session_max_age: String,
    #[serde(default)]
    session_idle_timeout: String,
}

/// `POST /e/system/admin/environments/{slug}`: policy and session lifetimes.
pub async fn update_environment<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    PagePath((_env, slug)): PagePath<(String, String)>,
    form: Form<EnvironmentForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let op = match operator(&st, &who) {
        Ok(op) => op,
        Err(r) => return *r,
    };
    let result = async {
        let slug = EnvSlug::parse(&slug).map_err(|e| e.0)?;
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let idle = match nonempty(&f.session_idle_timeout) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("none") => Some(None),
            Some(v) => Some(Some(v.parse().map_err(|e| format!("idle timeout: {e}"))?)),
        };
        let patch = EnvironmentPatch {
            name: None,
            mfa_policy: nonempty(&f.mfa_policy)
                .map(|p| p.parse::<MfaPolicy>())
                .transpose()
                .map_err(|e| e.to_string())?,
            session_max_age: nonempty(&f.session_max_age)
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| format!("session lifetime: {e}"))?,
            session_idle_timeout: idle,
            totp_window: None,
            issuer: None,
            lockout_threshold: None,
            lockout_base: None,
            lockout_max: None,
            ip_failures_per_minute: None,
        };
        st.service
            .update_environment(&op, &slug, patch)
            .await
            .map_err(|e| super::frame::refusal(e, st.service.now()).1)
    }
    .await;
    environment_saved(&st, &who, &csrf, result, "saved").await
}

/// After an environment form: back to `system`'s page with a notice, or the page again with
/// the reason next to the forms.
async fn environment_saved<S: Store, T>(
    st: &AppState<S>,
    who: &PageAdmin,
    csrf: &Csrf,
    result: Result<T, String>,
    done: &str,
) -> Response {
    match result {
        Ok(_) => see_other(&format!("/e/{SYSTEM}/admin?notice=environment_saved")),
        Err(m) => {
            let extra = Extra {
                error: Some(format!(
                    "The environment was not {done}: {}",
                    super::frame::sentence(&m)
                )),
                ..Extra::default()
            };
            admin_page(
                st,
                who,
                csrf,
                UserFilters::default(),
                StatusCode::BAD_REQUEST,
                extra,
            )
            .await
        }
    }
}
