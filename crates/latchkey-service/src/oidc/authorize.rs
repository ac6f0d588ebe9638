//! The authorization endpoint (SPEC §9): check a request, then either answer the application
//! at once (a code, or an error by redirect) or keep the request waiting in the database while
//! the browser signs in through the environment's own login pages — any node finishes it.
//!
//! An unknown client or a redirect URI it did not register is answered on a page, never by a
//! redirect: that is what makes an open redirect impossible.

use latchkey_core::token::Token;
use serde_json::json;

use super::{ACR_MFA, CODE_TTL, REQUEST_TTL, clients::redirect_matches, has_second_factor};
use crate::{
    AuditType, Caller, Outcome, Service, ServiceResult,
    session::Principal,
    store::{AuthRequest, ClientRecord, ClientType, CodeRecord, Store},
};

/// An authorization request's parameters, as the browser brought them.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub acr_values: Option<String>,
    pub login_hint: Option<String>,
}

/// What the browser is to do next.
#[derive(Debug)]
pub enum Authorization {
    /// Go back to the application: its redirect URI with a code, or with an error.
    Return(String),
    /// Sign in first (the login pages), then come back with `handle`.
    SignIn(SignIn),
    /// The request names no client we know or a redirect URI it did not register: say so on a
    /// page, and send the browser nowhere.
    Refuse(String),
}

/// The login an authorization request waits for. The login pages show their form even to a
/// browser with a session: what it has falls short.
#[derive(Debug)]
pub struct SignIn {
    /// The waiting request's handle (a secret of this browser's: only its hash is stored).
    pub handle: Token,
    pub login_hint: Option<String>,
    /// A second factor is needed.
    pub mfa: bool,
}

const EXPIRED: &str = "this sign-in request has expired or was already used; go back to the \
                       application and sign in again";

/// The longest value of a parameter we keep (`state`, `nonce`, `login_hint`).
const MAX_PARAM: usize = 512;

/// A redirect to the application: `redirect_uri` with `pairs` added to its query, and `iss`
/// (RFC 9207).
fn back_to(redirect_uri: &str, issuer: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q.append_pair("iss", issuer);
    }
    url.into()
}

/// A request that passed the checks that come before any redirect.
struct Checked {
    client: ClientRecord,
    redirect_uri: String,
    state: Option<String>,
}

impl Checked {
    fn error(&self, issuer: &str, error: &str, description: &str) -> Authorization {
        Authorization::Return(back_to(
            &self.redirect_uri,
            issuer,
            &[
                ("error", Some(error)),
                ("error_description", Some(description)),
                ("state", self.state.as_deref()),
            ],
        ))
    }
}

fn bounded(value: Option<String>, name: &str) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.len() > MAX_PARAM || v.chars().any(char::is_control) => {
            Err(format!("{name} is too long or holds control characters"))
        }
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A PKCE challenge (RFC 7636 §4.2): 43 base64url characters, the S256 of a verifier.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<S: Store> Service<S> {
    /// `GET|POST {issuer}/oidc/authorize`.
    pub async fn authorize(
        &self,
        env: &latchkey_core::model::EnvSlug,
        params: AuthorizeParams,
        session: Option<&Principal>,
        caller: &Caller,
    ) -> ServiceResult<Authorization> {
        self.environment(env).await?;
        let issuer = super::issuer(&self.config.public_url, env.as_str());
        let Some(client_id) = params.client_id.as_deref().filter(|c| c.len() <= 64) else {
            return Ok(Authorization::Refuse(
                "the request names no application (client_id)".into(),
            ));
        };
        let Some(client) = self.store.get_client(env, client_id).await? else {
            return Ok(Authorization::Refuse(
                "the request names an application that is not registered here".into(),
            ));
        };
        let Some(redirect_uri) = params
            .redirect_uri
            .clone()
            .filter(|r| redirect_matches(&client, r))
        else {
            return Ok(Authorization::Refuse(
                "the request's redirect_uri is not one the application registered".into(),
            ));
        };
        let state = match bounded(params.state.clone(), "state") {
            Ok(s) => s,
            Err(m) => return Ok(Authorization::Refuse(m)),
        };
        let checked = Checked {
            client,
            redirect_uri,
            state,
        };
        match self.check_request(&checked, params, env) {
            Ok(pending) => {
                self.answer(&issuer, &checked, pending, session, caller)
                    .await
            }
            Err((error, description)) => Ok(checked.error(&issuer, error, &description)),
        }
    }

    /// The checks whose failure goes back to the application by redirect; the request to
    /// keep if it must wait, with its handle, and whether it said `prompt=none`.
    fn check_request(
        &self,
        checked: &Checked,
        p: AuthorizeParams,
        env: &latchkey_core::model::EnvSlug,
    ) -> Result<(AuthRequest, Token, bool), (&'static str, String)> {
        let invalid = |m: &str| ("invalid_request", m.to_owned());
        if p.response_type.as_deref() != Some("code") {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
        let scope = p.scope.unwrap_or_default();
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(("invalid_scope", "the scope must include openid".into()));
        }
        let client = &checked.client;
        let challenge = match (p.code_challenge, p.code_challenge_method.as_deref()) {
            (Some(c), Some("S256")) if valid_challenge(&c) => Some(c),
            (Some(_), Some("S256")) => {
                return Err(invalid("code_challenge must be 43 base64url characters"));
            }
            (Some(_), _) => return Err(invalid("code_challenge_method must be S256")),
            (None, Some(_)) => return Err(invalid("code_challenge_method without code_challenge")),
            (None, None) if client.require_pkce || client.client_type == ClientType::Public => {
                return Err(invalid("this application must use PKCE (S256)"));
            }
            (None, None) => None,
        };
        let prompts: Vec<&str> = p
            .prompt
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        let prompt_none = prompts.contains(&"none");
        if prompt_none && prompts.len() > 1 {
            return Err(invalid("prompt=none cannot be combined with another value"));
        }
        let max_age = match p.max_age.as_deref() {
            None | Some("") => None,
            Some(m) => Some(
                m.parse::<u32>()
                    .map(i64::from)
                    .map_err(|_| invalid("max_age must be a number of seconds"))?,
            ),
        };
        let nonce = bounded(p.nonce, "nonce").map_err(|m| invalid(&m))?;
        let login_hint = bounded(p.login_hint, "login_hint").map_err(|m| invalid(&m))?;
        let needs_mfa = client.require_mfa
            || p.acr_values
                .as_deref()
                .is_some_and(|a| a.split(' ').any(|v| v == ACR_MFA));
        let handle = Token::generate().map_err(|_| {
            (
                "temporarily_unavailable",
                "the server could not make a random value".to_owned(),
            )
        })?;
        let now = self.now();
        let request = AuthRequest {
            handle_hash: handle.hash(),
            env: env.clone(),
            client_id: client.client_id.clone(),
            redirect_uri: checked.redirect_uri.clone(),
            scope: super::granted_scope(&scope),
            state: checked.state.clone(),
            nonce,
            code_challenge: challenge,
            max_age,
            // `max_age=0` is a new login, as `prompt=login` (OpenID Connect Core §3.1.2.1).
            fresh_login: prompts.contains(&"login") || max_age == Some(0),
            needs_mfa,
            login_hint,
            prior_session: None,
            created_at: now,
            expires_at: now + REQUEST_TTL,
        };
        Ok((request, handle, prompt_none))
    }

    /// Whether `session` satisfies `request`: of its environment; if it asked for a new
    /// login, signed in after the request began and not the session the browser had then
    /// (times are seconds), else no longer ago than `max_age`; with a second factor if one is
    /// needed.
    fn satisfies(&self, request: &AuthRequest, session: Option<&Principal>) -> bool {
        let Some(p) = session.filter(|p| p.environment.slug == request.env) else {
            return false;
        };
        let s = &p.session;
        let fresh_enough = if request.fresh_login {
            s.authenticated_at >= request.created_at
                && request.prior_session.as_deref() != Some(s.id.as_str())
        } else {
            request
                .max_age
                .is_none_or(|max| self.now() - s.authenticated_at <= max)
        };
        fresh_enough && (!request.needs_mfa || has_second_factor(&s.amr))
    }

    /// Answer a new request: a code if the session satisfies it, `login_required` for
    /// `prompt=none`, else keep it waiting for a new login.
    async fn answer(
        &self,
        issuer: &str,
        checked: &Checked,
        (mut request, handle, prompt_none): (AuthRequest, Token, bool),
        session: Option<&Principal>,
        caller: &Caller,
    ) -> ServiceResult<Authorization> {
        // The session the browser has now never satisfies a request for a new login.
        request.prior_session = session
            .filter(|p| p.environment.slug == request.env)
            .map(|p| p.session.id.clone());
        if let Some(p) = session
            && self.satisfies(&request, session)
        {
            return self
                .issue_code(issuer, checked, &request, None, p, caller)
                .await;
        }
        if prompt_none {
            return Ok(checked.error(
                issuer,
                "login_required",
                "the user is not signed in as this request needs",
            ));
        }
        // What is there falls short (none, too old, or without a second factor): only a login
        // made after this request satisfies it.
        request.fresh_login = true;
        self.store.save_auth_request(&request).await?;
        Ok(Authorization::SignIn(SignIn {
            handle,
            login_hint: request.login_hint,
            mfa: request.needs_mfa,
        }))
    }

    async fn issue_code(
        &self,
        issuer: &str,
        checked: &Checked,
        request: &AuthRequest,
        handle: Option<&latchkey_core::token::TokenHash>,
        p: &Principal,
        caller: &Caller,
    ) -> ServiceResult<Authorization> {
        let code = Token::generate()?;
        let now = self.now();
        let record = CodeRecord {
            code_hash: code.hash(),
            env: request.env.clone(),
            client_id: request.client_id.clone(),
            session_id: p.session.id.clone(),
            user_id: p.user.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            family_id: self.new_id(),
            created_at: now,
            expires_at: now + CODE_TTL,
            used_at: None,
        };
        let audit = self.audit(
            &request.env,
            &p.caller(caller.origin.clone()),
            AuditType::OidcAuthorized,
            Some(&p.user.id),
            Outcome::Success,
            Some(json!({"client": request.client_id, "scope": request.scope}).to_string()),
        );
        if !self.store.issue_code(handle, &record, now, &audit).await? {
            return Ok(Authorization::Refuse(EXPIRED.into()));
        }
        Ok(Authorization::Return(back_to(
            &checked.redirect_uri,
            issuer,
            &[
                ("code", Some(code.expose())),
                ("state", checked.state.as_deref()),
            ],
        )))
    }

    /// `GET {issuer}/oidc/authorize/resume?handle=…`: the browser is back from the login pages.
    pub async fn resume_authorization(
        &self,
        env: &latchkey_core::model::EnvSlug,
        handle: &str,
        session: Option<&Principal>,
        caller: &Caller,
    ) -> ServiceResult<Authorization> {
        let expired = || Authorization::Refuse(EXPIRED.into());
        let Some(token) = Token::parse(handle) else {
            return Ok(expired());
        };
        let hash = token.hash();
        let Some(request) = self.store.auth_request(&hash, self.now()).await? else {
            return Ok(expired());
        };
        if &request.env != env {
            return Ok(expired());
        }
        let Some(client) = self.store.get_client(env, &request.client_id).await? else {
            return Ok(expired());
        };
        let issuer = super::issuer(&self.config.public_url, env.as_str());
        let checked = Checked {
            client,
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
        };
        match session {
            Some(p) if self.satisfies(&request, session) => {
                self.issue_code(&issuer, &checked, &request, Some(&hash), p, caller)
                    .await
            }
            // The login fell short (the second factor was skipped): it waits on.
            _ => Ok(Authorization::SignIn(SignIn {
                handle: token,
                login_hint: request.login_hint,
                mfa: request.needs_mfa,
            })),
        }
    }
}
