//! The "Applications" admin page (SPEC §9): an environment's OpenID Connect clients — the
//! issuer to give them, the list, registering one (its secret shown once), a new secret, and
//! deleting one. Each act is the same use case as the API and the CLI.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use latchkey_service::{
    Store,
    oidc::{
        clients::{ClientSpec, IssuedClient},
        issuer,
    },
    store::{ClientRecord, ClientType},
};
use serde::Deserialize;

use super::{
    PageAdmin, PagePath,
    admin::chrome,
    csrf::{Csrf, Form},
    frame::{Chrome, refusal},
};
use crate::state::AppState;

/// A client as the table shows it.
struct ClientRow {
    client_id: String,
    name: String,
    kind: &'static str,
    redirect_uris: Vec<String>,
    require_mfa: bool,
    backchannel: Option<String>,
}

impl From<&ClientRecord> for ClientRow {
    fn from(c: &ClientRecord) -> Self {
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            kind: c.client_type.as_str(),
            redirect_uris: c.redirect_uris.clone(),
            require_mfa: c.require_mfa,
            backchannel: c.backchannel_logout_uri.clone(),
        }
    }
}

/// What was just made: shown once.
struct Shown {
    title: String,
    client_id: String,
    secret: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ApplicationForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    client_id: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    backchannel_logout_uri: String,
    #[serde(default)]
    require_mfa: String,
    #[serde(default)]
    no_pkce: String,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage {
    chrome: Chrome,
    env_name: String,
    issuer: String,
    clients: Vec<ClientRow>,
    shown: Option<Shown>,
    error: Option<String>,
    form: ApplicationForm,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn page<S: Store>(
    st: &AppState<S>,
    who: &PageAdmin,
    csrf: &Csrf,
    status: StatusCode,
    shown: Option<Shown>,
    error: Option<String>,
    form: ApplicationForm,
) -> Response {
    let env = who.admin.env();
    let clients = match st.service.list_clients(&who.admin).await {
        Ok(c) => c.iter().map(ClientRow::from).collect(),
        Err(e) => {
            return super::problem_page(&e.into(), st.service.now(), Some(env.slug.as_str()));
        }
    };
    let t = ApplicationsPage {
        chrome: chrome(who, csrf),
        env_name: env.name.as_str().to_owned(),
        issuer: issuer(&st.web.public_url, env.slug.as_str()),
        clients,
        shown,
        error,
        form,
    };
    csrf.page(st, status, &t)
}

/// `GET /e/{env}/admin/applications`.
pub async fn list<S: Store>(State(st): State<AppState<S>>, who: PageAdmin, csrf: Csrf) -> Response {
    page(
        &st,
        &who,
        &csrf,
        StatusCode::OK,
        None,
        None,
        ApplicationForm::default(),
    )
    .await
}

/// `POST /e/{env}/admin/applications`: register; a confidential client's secret is shown once.
pub async fn create<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    form: Form<ApplicationForm>,
) -> Response {
    let Form { value: f, csrf } = form;
    let kind = if f.kind == "public" {
        ClientType::Public
    } else {
        ClientType::Confidential
    };
    let spec = ClientSpec {
        client_id: Some(f.client_id.trim().to_owned()).filter(|c| !c.is_empty()),
        name: f.name.clone(),
        client_type: Some(kind),
        require_pkce: Some(f.no_pkce != "1"),
        redirect_uris: lines(&f.redirect_uris),
        post_logout_redirect_uris: lines(&f.post_logout_redirect_uris),
        backchannel_logout_uri: Some(f.backchannel_logout_uri.trim().to_owned())
            .filter(|u| !u.is_empty()),
        require_mfa: Some(f.require_mfa == "1"),
        access_token_ttl: None,
        refresh_token: None,
    };
    match st.service.create_client(&who.admin, spec).await {
        Ok(IssuedClient { client, secret }) => {
            let shown = Shown {
                title: format!("{} is registered", client.name),
                client_id: client.client_id,
                secret: secret.map(|s| s.expose().to_owned()),
            };
            page(
                &st,
                &who,
                &csrf,
                StatusCode::CREATED,
                Some(shown),
                None,
                ApplicationForm::default(),
            )
            .await
        }
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            page(&st, &who, &csrf, status, None, Some(m), f).await
        }
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /e/{env}/admin/applications/{client_id}/secret`: a new secret, shown once.
pub async fn rotate<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    PagePath((_, id)): PagePath<(String, String)>,
    form: Form<Empty>,
) -> Response {
    let csrf = form.csrf;
    match st.service.rotate_client_secret(&who.admin, &id).await {
        Ok(secret) => {
            let shown = Shown {
                title: "A new secret; the old one no longer works".into(),
                client_id: id,
                secret: Some(secret.expose().to_owned()),
            };
            page(
                &st,
                &who,
                &csrf,
                StatusCode::OK,
                Some(shown),
                None,
                ApplicationForm::default(),
            )
            .await
        }
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            page(
                &st,
                &who,
                &csrf,
                status,
                None,
                Some(m),
                ApplicationForm::default(),
            )
            .await
        }
    }
}

/// `POST /e/{env}/admin/applications/{client_id}/delete`: its tokens stop working at once.
pub async fn delete<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    PagePath((_, id)): PagePath<(String, String)>,
    form: Form<Empty>,
) -> Response {
    let csrf = form.csrf;
    let (status, error) = match st.service.delete_client(&who.admin, &id).await {
        Ok(()) => (StatusCode::OK, None),
        Err(e) => {
            let (status, m) = refusal(e, st.service.now());
            (status, Some(m))
        }
    };
    page(
        &st,
        &who,
        &csrf,
        status,
        None,
        error,
        ApplicationForm::default(),
    )
    .await
}
