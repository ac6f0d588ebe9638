//! The token endpoint (codes and refresh tokens), userinfo, introspection (RFC 7662) and
//! revocation (RFC 7009), SPEC §9. Every token is checked against the session that issued it
//! at each use: when that session is over under the environment's current rules, the token
//! is refused and the session ended (which revokes the rest and queues the back-channel
//! logouts).

use latchkey_core::{
    model::EnvSlug,
    policy,
    token::{Token, pkce_matches},
};
use serde_json::{Map, Value, json};

use super::{
    ACR_MFA, ACR_PWD, ID_TOKEN_TTL, OAuthError, amr_values, clients::secret_matches,
    has_second_factor, user_claims,
};
use crate::{
    AuditType, Caller, Outcome, Service,
    session::end_reason,
    store::{ClientRecord, ClientType, SessionView, Store, TokenKind, TokenRecord, TokenView},
};

/// How a client authenticated itself at the token, introspection or revocation endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// `Authorization: Basic` (RFC 6749 §2.3.1), already form-decoded.
    pub basic: Option<(String, String)>,
    /// `client_id` and `client_secret` in the form body.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The token endpoint's form.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: Token,
    pub expires_in: i64,
    pub refresh_token: Option<Token>,
    pub id_token: String,
    pub scope: String,
}

fn invalid_token() -> OAuthError {
    OAuthError {
        status: 401,
        ..OAuthError::new(
            "invalid_token",
            "the access token is not valid (expired, revoked or unknown)",
        )
    }
}

impl<S: Store> Service<S> {
    /// The client a request comes from, authenticated as its type demands: a confidential
    /// client by its secret (one method only), a public client by its id. A failure counts
    /// against the caller's address like a failed login, and an address over the limit is
    /// refused before any secret is compared (SECURITY O6).
    pub async fn authenticate_client(
        &self,
        env: &EnvSlug,
        creds: &ClientCredentials,
        caller: &Caller,
    ) -> Result<ClientRecord, OAuthError> {
        let environment = self.environment(env).await?;
        self.check_ip(&environment, caller, None).await?;
        let result = self.client_of(env, creds).await;
        if let Err(e) = &result
            && e.error == "invalid_client"
            && let Some(ip) = &caller.origin.ip
        {
            let record = self.audit(
                env,
                caller,
                AuditType::LoginFailed,
                None,
                Outcome::Failure,
                Some(json!({"reason": "invalid_client"}).to_string()),
            );
            self.store
                .record_ip_failure(env, ip, self.now(), Some(&record))
                .await
                .map_err(svc)?;
        }
        result
    }

    async fn client_of(
        &self,
        env: &EnvSlug,
        creds: &ClientCredentials,
    ) -> Result<ClientRecord, OAuthError> {
        let (id, secret) = match (&creds.basic, &creds.client_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not two",
                ));
            }
            (Some((id, secret)), None) => {
                if creds.client_id.as_ref().is_some_and(|c| c != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the authenticated client",
                    ));
                }
                (id.as_str(), Some(secret.as_str()))
            }
            (None, secret) => match &creds.client_id {
                Some(id) => (id.as_str(), secret.as_deref()),
                None => return Err(OAuthError::invalid_client("no client authentication")),
            },
        };
        if id.is_empty() || id.len() > 64 {
            return Err(OAuthError::invalid_client("unknown client"));
        }
        let client = self
            .store
            .get_client(env, id)
            .await
            .map_err(svc)?
            .ok_or_else(|| OAuthError::invalid_client("unknown client or wrong secret"))?;
        let ok = match client.client_type {
            ClientType::Confidential => secret.is_some_and(|s| secret_matches(&client, s)),
            ClientType::Public => secret.is_none_or(str::is_empty),
        };
        if ok {
            Ok(client)
        } else {
            Err(OAuthError::invalid_client("unknown client or wrong secret"))
        }
    }

    /// `POST {issuer}/oidc/token`.
    pub async fn token(
        &self,
        env: &EnvSlug,
        creds: &ClientCredentials,
        request: TokenRequest,
        caller: &Caller,
    ) -> Result<IssuedTokens, OAuthError> {
        let client = self.authenticate_client(env, creds, caller).await?;
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.redeem_code(&client, request).await,
            Some("refresh_token") if client.refresh_token => {
                self.redeem_refresh(&client, request).await
            }
            Some("refresh_token") => Err(OAuthError::new(
                "unauthorized_client",
                "this application does not use refresh tokens",
            )),
            Some(_) => Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        }
    }

    async fn redeem_code(
        &self,
        client: &ClientRecord,
        r: TokenRequest,
    ) -> Result<IssuedTokens, OAuthError> {
        let bad = || OAuthError::invalid_grant("the code is not valid");
        let code = r.code.as_deref().and_then(Token::parse).ok_or_else(bad)?;
        let hash = code.hash();
        let rec = self.store.code(&hash).await.map_err(svc)?.ok_or_else(bad)?;
        if rec.env != client.env || rec.client_id != client.client_id {
            return Err(bad());
        }
        let now = self.now();
        if rec.used_at.is_some() {
            // Used twice: what the first use issued is revoked (RFC 6749 §4.1.2).
            self.store
                .revoke_family(&rec.family_id, None)
                .await
                .map_err(svc)?;
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        if rec.expires_at <= now {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        if r.redirect_uri.as_deref() != Some(rec.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri is not the one the code was issued for",
            ));
        }
        match (&rec.code_challenge, &r.code_verifier) {
            (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
            (Some(_), _) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier is missing or does not match the code_challenge",
                ));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "a code_verifier was sent for a code issued without a code_challenge",
                ));
            }
            (None, None) => {}
        }
        let view = self.live_session(&rec.session_id).await?;
        let (issued, records) = self.new_tokens(
            client,
            &view,
            &rec.family_id,
            &rec.scope,
            rec.nonce.as_deref(),
        )?;
        let issued = issued.sign(self, &client.env).await?;
        if !self
            .store
            .exchange_code(&hash, now, &records)
            .await
            .map_err(svc)?
        {
            self.store
                .revoke_family(&rec.family_id, None)
                .await
                .map_err(svc)?;
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        Ok(issued)
    }

    async fn redeem_refresh(
        &self,
        client: &ClientRecord,
        r: TokenRequest,
    ) -> Result<IssuedTokens, OAuthError> {
        let bad = || OAuthError::invalid_grant("the refresh token is not valid");
        let token = r
            .refresh_token
            .as_deref()
            .and_then(Token::parse)
            .ok_or_else(bad)?;
        let hash = token.hash();
        let view = self
            .store
            .oidc_token(&hash)
            .await
            .map_err(svc)?
            .ok_or_else(bad)?;
        let t = &view.token;
        if t.kind != TokenKind::Refresh || t.env != client.env || t.client_id != client.client_id {
            return Err(bad());
        }
        if t.used_at.is_some() {
            self.refresh_reused(&view).await?;
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; every token of its grant is revoked",
            ));
        }
        let now = self.now();
        if t.expires_at <= now {
            return Err(bad());
        }
        if let Some(scope) = r.scope.as_deref()
            && scope
                .split(' ')
                .any(|s| !s.is_empty() && !t.scope.split(' ').any(|g| g == s))
        {
            return Err(OAuthError::new(
                "invalid_scope",
                "a refresh cannot add scopes to the grant",
            ));
        }
        self.check_live(&view.session).await?;
        let (issued, records) =
            self.new_tokens(client, &view.session, &t.family_id, &t.scope, None)?;
        let issued = issued.sign(self, &client.env).await?;
        if !self
            .store
            .rotate_refresh(&hash, now, &records)
            .await
            .map_err(svc)?
        {
            self.refresh_reused(&view).await?;
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ));
        }
        // An application refreshing is its user at work: the session is not idle.
        self.store
            .touch_session(&view.session.session.id, now)
            .await
            .map_err(svc)?;
        Ok(issued)
    }

    /// A used refresh token came again: its whole family is revoked (RFC 9700 §4.14).
    async fn refresh_reused(&self, view: &TokenView) -> Result<(), OAuthError> {
        let t = &view.token;
        let record = self.audit(
            &t.env,
            &Caller::system(),
            AuditType::OidcRefreshReused,
            Some(&t.user_id),
            Outcome::Failure,
            Some(json!({"client": t.client_id, "family": t.family_id}).to_string()),
        );
        self.store
            .revoke_family(&t.family_id, Some(&record))
            .await
            .map_err(svc)?;
        Ok(())
    }

    /// The session `id`, if it still lasts; one that is over is ended now.
    async fn live_session(&self, id: &str) -> Result<SessionView, OAuthError> {
        let view = self
            .store
            .session_by_id(id)
            .await
            .map_err(svc)?
            .ok_or_else(|| OAuthError::invalid_grant("the session that issued it has ended"))?;
        self.check_live(&view).await?;
        Ok(view)
    }

    async fn check_live(&self, view: &SessionView) -> Result<(), OAuthError> {
        if let Some(reason) = end_reason(view, self.now()) {
            self.end_expired_session(view, reason).await?;
            return Err(OAuthError::invalid_grant(
                "the session that issued it has ended",
            ));
        }
        Ok(())
    }

    /// New access (and refresh) tokens of `family`, and the ID token's claims.
    fn new_tokens(
        &self,
        client: &ClientRecord,
        view: &SessionView,
        family: &str,
        scope: &str,
        nonce: Option<&str>,
    ) -> Result<(Unsigned, Vec<TokenRecord>), OAuthError> {
        let now = self.now();
        let session_ends =
            policy::session_expires_at(&view.environment, view.session.authenticated_at);
        let access = Token::generate().map_err(svc)?;
        let access_expires = (now + client.access_token_ttl).min(session_ends);
        let record = |token: &Token, kind, expires_at| TokenRecord {
            token_hash: token.hash(),
            kind,
            family_id: family.to_owned(),
            env: client.env.clone(),
            client_id: client.client_id.clone(),
            session_id: view.session.id.clone(),
            user_id: view.user.id.clone(),
            scope: scope.to_owned(),
            created_at: now,
            expires_at,
            used_at: None,
        };
        let mut records = vec![record(&access, TokenKind::Access, access_expires)];
        let refresh = if client.refresh_token {
            let t = Token::generate().map_err(svc)?;
            records.push(record(&t, TokenKind::Refresh, session_ends));
            Some(t)
        } else {
            None
        };
        let amr = &view.session.amr;
        let mut claims = user_claims(view, scope);
        for (k, v) in [
            (
                "iss",
                json!(super::issuer(&self.config.public_url, client.env.as_str())),
            ),
            ("aud", json!(client.client_id)),
            ("exp", json!(now + ID_TOKEN_TTL)),
            ("iat", json!(now)),
            ("auth_time", json!(view.session.authenticated_at)),
            ("sid", json!(view.session.id)),
            ("amr", json!(amr_values(amr))),
            (
                "acr",
                json!(if has_second_factor(amr) {
                    ACR_MFA
                } else {
                    ACR_PWD
                }),
            ),
        ] {
            claims.insert(k.into(), v);
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        Ok((
            Unsigned {
                access_token: access,
                expires_in: (access_expires - now).max(0),
                refresh_token: refresh,
                claims,
                scope: scope.to_owned(),
            },
            records,
        ))
    }

    /// A presented access token that is good now, with its session.
    async fn live_access_token(
        &self,
        env: &EnvSlug,
        presented: &str,
    ) -> Result<TokenView, OAuthError> {
        let token = Token::parse(presented).ok_or_else(invalid_token)?;
        let view = self
            .store
            .oidc_token(&token.hash())
            .await
            .map_err(svc)?
            .ok_or_else(invalid_token)?;
        let t = &view.token;
        if t.kind != TokenKind::Access || &t.env != env || t.expires_at <= self.now() {
            return Err(invalid_token());
        }
        if let Some(reason) = end_reason(&view.session, self.now()) {
            self.end_expired_session(&view.session, reason).await?;
            return Err(invalid_token());
        }
        Ok(view)
    }

    /// `GET|POST {issuer}/oidc/userinfo`: the claims the token's scope allows.
    pub async fn userinfo(
        &self,
        env: &EnvSlug,
        access_token: &str,
    ) -> Result<Map<String, Value>, OAuthError> {
        let view = self.live_access_token(env, access_token).await?;
        Ok(user_claims(&view.session, &view.token.scope))
    }

    /// `POST {issuer}/oidc/introspect` (RFC 7662): a client learns about its own tokens.
    pub async fn introspect(
        &self,
        env: &EnvSlug,
        creds: &ClientCredentials,
        token: &str,
        caller: &Caller,
    ) -> Result<Value, OAuthError> {
        let client = self.authenticate_client(env, creds, caller).await?;
        let inactive = json!({"active": false});
        let Some(parsed) = Token::parse(token) else {
            return Ok(inactive);
        };
        let Some(view) = self.store.oidc_token(&parsed.hash()).await.map_err(svc)? else {
            return Ok(inactive);
        };
        let t = &view.token;
        let now = self.now();
        if t.client_id != client.client_id
            || &t.env != env
            || t.expires_at <= now
            || t.used_at.is_some()
            || end_reason(&view.session, now).is_some()
        {
            return Ok(inactive);
        }
        Ok(json!({
            "active": true,
            "scope": t.scope,
            "client_id": t.client_id,
            "username": view.session.user.email.as_str(),
            "token_type": if t.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
            "exp": t.expires_at,
            "iat": t.created_at,
            "sub": t.user_id,
            "aud": t.client_id,
            "iss": super::issuer(&self.config.public_url, env.as_str()),
            "sid": t.session_id,
        }))
    }

    /// `POST {issuer}/oidc/revoke` (RFC 7009): a refresh token revokes its grant, an access
    /// token itself. Unknown tokens, and other clients' tokens, are answered the same.
    pub async fn revoke(
        &self,
        env: &EnvSlug,
        creds: &ClientCredentials,
        token: &str,
        caller: &Caller,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_client(env, creds, caller).await?;
        let Some(parsed) = Token::parse(token) else {
            return Ok(());
        };
        let hash = parsed.hash();
        let Some(view) = self.store.oidc_token(&hash).await.map_err(svc)? else {
            return Ok(());
        };
        let t = &view.token;
        if t.client_id != client.client_id || &t.env != env {
            return Ok(());
        }
        match t.kind {
            TokenKind::Refresh => {
                self.store
                    .revoke_family(&t.family_id, None)
                    .await
                    .map_err(svc)?;
            }
            TokenKind::Access => self.store.revoke_token(&hash).await.map_err(svc)?,
        }
        Ok(())
    }
}

/// Tokens made, the ID token not signed yet.
pub(crate) struct Unsigned {
    access_token: Token,
    expires_in: i64,
    refresh_token: Option<Token>,
    claims: Map<String, Value>,
    scope: String,
}

impl Unsigned {
    async fn sign<S: Store>(
        self,
        service: &Service<S>,
        env: &EnvSlug,
    ) -> Result<IssuedTokens, OAuthError> {
        let key = service.signer(env).await?;
        let id_token = key
            .sign("JWT", &self.claims)
            .map_err(|e| OAuthError::from(crate::ServiceError::Internal(e.to_string())))?;
        Ok(IssuedTokens {
            access_token: self.access_token,
            expires_in: self.expires_in,
            refresh_token: self.refresh_token,
            id_token,
            scope: self.scope,
        })
    }
}

/// A storage or entropy failure as the OAuth error it is answered with.
fn svc(e: impl Into<crate::ServiceError>) -> OAuthError {
    OAuthError::from(e.into())
}
