//! `POST {issuer}/oidc/token`, `GET|POST …/userinfo`, `POST …/introspect` and
//! `POST …/revoke`: form bodies in, JSON out, errors as RFC 6749 §5.2 says.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, header},
    response::Response,
};
use latchkey_service::{
    Store,
    oidc::{OAuthError, tokens::TokenRequest},
};
use serde_json::json;

use super::{credentials, form_params, no_store_json, oauth_error, param};
use crate::{
    extract::{Client, Env},
    state::AppState,
};

pub async fn token<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let form = form_params(&body)?;
        let creds = credentials(&headers, &form)?;
        let request = TokenRequest {
            grant_type: param(&form, "grant_type"),
            code: param(&form, "code"),
            redirect_uri: param(&form, "redirect_uri"),
            code_verifier: param(&form, "code_verifier"),
            refresh_token: param(&form, "refresh_token"),
            scope: param(&form, "scope"),
        };
        st.service
            .token(
                &env,
                &creds,
                request,
                &latchkey_service::Caller::anonymous(origin),
            )
            .await
    };
    match answer.await {
        Ok(t) => {
            let mut body = json!({
                "access_token": t.access_token.expose(),
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "id_token": t.id_token,
                "scope": t.scope,
            });
            if let Some(r) = &t.refresh_token {
                body["refresh_token"] = json!(r.expose());
            }
            no_store_json(&body)
        }
        Err(e) => oauth_error(&e),
    }
}

/// The bearer token of a userinfo request: the header, or (POST) the form's `access_token`.
fn bearer(headers: &HeaderMap, body: &Bytes) -> Result<String, OAuthError> {
    let missing = || OAuthError {
        status: 401,
        ..OAuthError::new("invalid_token", "an access token is required")
    };
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| missing())?;
        return match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => Ok(t.trim().to_owned()),
            _ => Err(missing()),
        };
    }
    param(&form_params(body)?, "access_token").ok_or_else(missing)
}

pub async fn userinfo<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let token = bearer(&headers, &body)?;
        st.service.userinfo(&env, &token).await
    };
    match answer.await {
        Ok(claims) => no_store_json(&serde_json::Value::Object(claims)),
        Err(e) => oauth_error(&e),
    }
}

/// A client's request about a token (`token` in the form): its credentials and the token.
fn about_a_token(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(latchkey_service::oidc::tokens::ClientCredentials, String), OAuthError> {
    let form = form_params(body)?;
    let creds = credentials(headers, &form)?;
    let token =
        param(&form, "token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    Ok((creds, token))
}

pub async fn introspect<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let (creds, token) = about_a_token(&headers, &body)?;
        st.service
            .introspect(
                &env,
                &creds,
                &token,
                &latchkey_service::Caller::anonymous(origin),
            )
            .await
    };
    match answer.await {
        Ok(v) => no_store_json(&v),
        Err(e) => oauth_error(&e),
    }
}

pub async fn revoke<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
    Client(origin): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let (creds, token) = about_a_token(&headers, &body)?;
        st.service
            .revoke(
                &env,
                &creds,
                &token,
                &latchkey_service::Caller::anonymous(origin),
            )
            .await
    };
    match answer.await {
        Ok(()) => no_store_json(&json!({})),
        Err(e) => oauth_error(&e),
    }
}
