//! `{issuer}/.well-known/openid-configuration` (Discovery 1.0) and `{issuer}/oidc/jwks`.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use latchkey_service::{
    Store,
    oidc::{ACR_MFA, ACR_PWD, SCOPES, issuer},
};
use serde_json::json;

use crate::{extract::Env, problem::Problem, state::AppState};

/// The provider's metadata. The issuer is byte for byte the one in tokens and in `iss`.
pub async fn configuration<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
) -> Result<Response, Problem> {
    st.service.environment(&env).await?;
    let iss = issuer(&st.web.public_url, env.as_str());
    let at = |path: &str| format!("{iss}/oidc/{path}");
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    Ok(super::no_store_json(&json!({
        "issuer": iss,
        "authorization_endpoint": at("authorize"),
        "token_endpoint": at("token"),
        "userinfo_endpoint": at("userinfo"),
        "jwks_uri": at("jwks"),
        "revocation_endpoint": at("revoke"),
        "introspection_endpoint": at("introspect"),
        "end_session_endpoint": at("logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr",
            "email", "email_verified", "name", "preferred_username", "role", "groups",
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "acr_values_supported": [ACR_PWD, ACR_MFA],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })))
}

/// The environment's published public keys.
pub async fn jwks<S: Store>(
    State(st): State<AppState<S>>,
    Env(env): Env,
) -> Result<Response, Problem> {
    let keys = st.service.jwks(&env).await?;
    let mut r = axum::Json(keys).into_response();
    // Relying parties may cache the set briefly; a rotation publishes a key an hour early.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    Ok(r)
}
