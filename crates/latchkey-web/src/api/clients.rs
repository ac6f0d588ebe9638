//! The applications (OpenID Connect clients) of an environment (SPEC §9):
//! `GET|POST /api/v1/environments/{env}/clients`, `GET|PATCH|DELETE …/clients/{client_id}` and
//! `POST …/clients/{client_id}/secret`. Admins of the environment (and operators) only; a
//! confidential client's secret is in the answer that made it, once.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use latchkey_service::{
    Store,
    oidc::clients::{ClientPatch, ClientSpec},
    store::{ClientRecord, ClientType},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::user_bodies::{ProblemSchema, rfc3339};
use crate::{
    extract::{AdminOf, ApiJson, ApiPath},
    input::bad,
    problem::Problem,
    state::AppState,
};

/// A registered application.
#[derive(Serialize, ToSchema)]
pub struct ClientDto {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    pub client_type: &'static str,
    pub require_pkce: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub require_mfa: bool,
    /// Seconds.
    pub access_token_ttl: i64,
    pub refresh_token: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ClientRecord> for ClientDto {
    fn from(c: &ClientRecord) -> Self {
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            client_type: c.client_type.as_str(),
            require_pkce: c.require_pkce,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            require_mfa: c.require_mfa,
            access_token_ttl: c.access_token_ttl,
            refresh_token: c.refresh_token,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientDto>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientRequest {
    /// A slug of your choosing (letters, digits, `-`, `_`, `.`); generated when absent.
    pub client_id: Option<String>,
    pub name: String,
    /// `confidential` (default) or `public`.
    #[serde(rename = "type")]
    pub client_type: Option<String>,
    /// Default true; only a confidential client may switch it off.
    pub require_pkce: Option<bool>,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub require_mfa: Option<bool>,
    /// Seconds, 60 to 86400 (default 600).
    #[serde(default, deserialize_with = "whole")]
    pub access_token_ttl: Option<i64>,
    pub refresh_token: Option<bool>,
}

/// A whole number of seconds, written `600` or `600.0` (JSON Schema's integers include both).
fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| {
                    #[allow(clippy::cast_possible_truncation)] // whole and bounded above
                    let whole = f as i64;
                    whole
                })
        })
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("access_token_ttl must be a whole number"))
}

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
#[allow(clippy::option_option)] // absent, null and a value are three different requests
fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatchRequest {
    pub name: Option<String>,
    pub require_pkce: Option<bool>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    #[allow(clippy::option_option)]
    pub backchannel_logout_uri: Option<Option<String>>,
    pub require_mfa: Option<bool>,
    #[serde(default, deserialize_with = "whole")]
    pub access_token_ttl: Option<i64>,
    pub refresh_token: Option<bool>,
}

/// The client, with its secret when it has just been made: shown here once.
#[derive(Serialize, ToSchema)]
pub struct ClientWithSecret {
    pub client: ClientDto,
    pub client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ClientSecret {
    pub client_secret: String,
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/clients", tag = "admin", params(("env" = String, Path)),
    responses((status = 200, body = ClientList), (status = 403, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn list_clients<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
) -> Result<Json<ClientList>, Problem> {
    let clients = st.service.list_clients(&admin).await?;
    Ok(Json(ClientList {
        clients: clients.iter().map(ClientDto::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/clients", tag = "admin", params(("env" = String, Path)), request_body = CreateClientRequest,
    responses((status = 201, body = ClientWithSecret), (status = 400, body = ProblemSchema, content_type = "application/problem+json"), (status = 409, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn create_client<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiJson(body): ApiJson<CreateClientRequest>,
) -> Result<Response, Problem> {
    let client_type = match body.client_type.as_deref() {
        None => None,
        Some(t) => {
            Some(ClientType::parse(t).ok_or_else(|| bad("type must be confidential or public"))?)
        }
    };
    let spec = ClientSpec {
        client_id: body.client_id,
        name: body.name,
        client_type,
        require_pkce: body.require_pkce,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        backchannel_logout_uri: body.backchannel_logout_uri,
        require_mfa: body.require_mfa,
        access_token_ttl: body.access_token_ttl,
        refresh_token: body.refresh_token,
    };
    let issued = st.service.create_client(&admin, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientWithSecret {
            client: ClientDto::from(&issued.client),
            client_secret: issued.secret.map(|s| s.expose().to_owned()),
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/environments/{env}/clients/{client_id}", tag = "admin", params(("env" = String, Path), ("client_id" = String, Path)),
    responses((status = 200, body = ClientDto), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn get_client<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<ClientDto>, Problem> {
    Ok(Json(ClientDto::from(
        &st.service.get_client(&admin, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/environments/{env}/clients/{client_id}", tag = "admin", params(("env" = String, Path), ("client_id" = String, Path)), request_body = ClientPatchRequest,
    responses((status = 200, body = ClientDto), (status = 400, body = ProblemSchema, content_type = "application/problem+json"), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn update_client<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ClientPatchRequest>,
) -> Result<Json<ClientDto>, Problem> {
    let patch = ClientPatch {
        name: body.name,
        require_pkce: body.require_pkce,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        backchannel_logout_uri: body.backchannel_logout_uri,
        require_mfa: body.require_mfa,
        access_token_ttl: body.access_token_ttl,
        refresh_token: body.refresh_token,
    };
    let client = st.service.update_client(&admin, &id, patch).await?;
    Ok(Json(ClientDto::from(&client)))
}

#[utoipa::path(delete, path = "/api/v1/environments/{env}/clients/{client_id}", tag = "admin", params(("env" = String, Path), ("client_id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn delete_client<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    st.service.delete_client(&admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/environments/{env}/clients/{client_id}/secret", tag = "admin", params(("env" = String, Path), ("client_id" = String, Path)),
    responses((status = 200, body = ClientSecret), (status = 404, body = ProblemSchema, content_type = "application/problem+json"), (status = 409, description = "`public_client`", body = ProblemSchema, content_type = "application/problem+json")))]
pub async fn rotate_secret<S: Store>(
    State(st): State<AppState<S>>,
    AdminOf(admin): AdminOf,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Json<ClientSecret>, Problem> {
    let secret = st.service.rotate_client_secret(&admin, &id).await?;
    Ok(Json(ClientSecret {
        client_secret: secret.expose().to_owned(),
    }))
}
