//! Applications (OpenID Connect clients), registered by an environment's admins (SPEC §9):
//! created, listed, changed, deleted, and given a new secret. A confidential client's secret
//! is 256 random bits, shown once and stored as its SHA-256 (no stretching is needed for a
//! random value, and the token endpoint stays fast); a public client has none and must use
//! PKCE.

use latchkey_core::token::Token;
use serde_json::json;

use crate::{
    AuditType, Service, ServiceError, ServiceResult,
    authz::EnvAdmin,
    store::{ClientRecord, ClientType, Store, StoreError},
};

/// The default lifetime of an access token (SPEC §9: 10 minutes), and the bounds an admin may
/// choose within.
pub const DEFAULT_ACCESS_TTL: i64 = 600;
const ACCESS_TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=86_400;
/// The longest URI accepted, and the most of each kind a client may register.
const MAX_URI: usize = 2000;
const MAX_URIS: usize = 20;

/// What an admin gives to register a client.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    /// A slug of the admin's choosing, or `None` for a generated id.
    pub client_id: Option<String>,
    pub name: String,
    pub client_type: Option<ClientType>,
    pub require_pkce: Option<bool>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub require_mfa: Option<bool>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token: Option<bool>,
}

/// A change to a client: `None` leaves a field as it is. The type cannot change.
#[derive(Debug, Clone, Default)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub require_pkce: Option<bool>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `Some(None)` removes it.
    pub backchannel_logout_uri: Option<Option<String>>,
    pub require_mfa: Option<bool>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token: Option<bool>,
}

/// A registered client, and its secret when one was just made (shown once).
#[derive(Debug)]
pub struct IssuedClient {
    pub client: ClientRecord,
    pub secret: Option<Token>,
}

fn invalid(m: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(m.into())
}

/// A client id an admin chose: 1–64 letters, digits, `-`, `_` or `.`, not starting with `.`
/// (so `.` and `..` never stand in a URL path).
fn check_client_id(id: &str) -> ServiceResult<()> {
    let ok = (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "client_id must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'",
        ))
    }
}

/// Whether `host` is a loopback host (RFC 8252 §7.3).
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// A URI a client may register: absolute, `https`, or `http` on a loopback host; no
/// fragment, no user information, no line break.
pub fn check_uri(uri: &str, what: &str) -> ServiceResult<()> {
    let refuse = |why: &str| Err(invalid(format!("{what} {uri:?} {why}")));
    if uri.is_empty() || uri.len() > MAX_URI || uri.chars().any(char::is_control) {
        return refuse("must be an absolute URI of at most 2000 characters");
    }
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("is not an absolute URI");
    };
    if parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return refuse("must have no fragment and no user information");
    }
    match (parsed.scheme(), parsed.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(host)) if is_loopback(&host) => Ok(()),
        _ => refuse("must be https, or http on a loopback host"),
    }
}

fn check_uris(uris: &[String], what: &str) -> ServiceResult<()> {
    if uris.len() > MAX_URIS {
        return Err(invalid(format!("at most {MAX_URIS} {what}s")));
    }
    uris.iter().try_for_each(|u| check_uri(u, what))
}

/// Whether `presented` is one of the client's redirect URIs: byte for byte, except that a
/// public client's `http` loopback URI may come with any port (RFC 8252 §7.3).
pub fn redirect_matches(client: &ClientRecord, presented: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == presented) {
        return true;
    }
    if client.client_type != ClientType::Public {
        return false;
    }
    let Ok(p) = url::Url::parse(presented) else {
        return false;
    };
    let loopback_ip = |u: &url::Url| {
        u.scheme() == "http"
            && match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            }
    };
    loopback_ip(&p)
        && client.redirect_uris.iter().any(|r| {
            url::Url::parse(r).is_ok_and(|mut r| {
                loopback_ip(&r) && {
                    let mut p = p.clone();
                    let _ = (r.set_port(None), p.set_port(None));
                    r == p
                }
            })
        })
}

/// An application's name: 1 to 200 characters, not only white space, no control characters.
fn name(text: &str) -> ServiceResult<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 || trimmed.chars().any(char::is_control)
    {
        return Err(invalid(
            "name must be 1 to 200 characters, without control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

fn access_ttl(ttl: i64) -> ServiceResult<i64> {
    if ACCESS_TTL_RANGE.contains(&ttl) {
        Ok(ttl)
    } else {
        Err(invalid(
            "access_token_ttl must be between 60 and 86400 seconds",
        ))
    }
}

/// The checks every client passes, new or changed.
fn check(client: &ClientRecord) -> ServiceResult<()> {
    if client.redirect_uris.is_empty() {
        return Err(invalid("a client needs at least one redirect URI"));
    }
    check_uris(&client.redirect_uris, "redirect URI")?;
    check_uris(
        &client.post_logout_redirect_uris,
        "post-logout redirect URI",
    )?;
    if let Some(uri) = &client.backchannel_logout_uri {
        check_uri(uri, "back-channel logout URI")?;
    }
    if client.client_type == ClientType::Public && !client.require_pkce {
        return Err(invalid("a public client must use PKCE"));
    }
    Ok(())
}

impl<S: Store> Service<S> {
    /// Register a client (SPEC §9); a confidential one's secret is returned once.
    pub async fn create_client(
        &self,
        admin: &EnvAdmin,
        spec: ClientSpec,
    ) -> ServiceResult<IssuedClient> {
        let client_id = match spec.client_id {
            Some(id) => {
                check_client_id(&id)?;
                id
            }
            None => self.new_id(),
        };
        let client_type = spec.client_type.unwrap_or(ClientType::Confidential);
        let secret = match client_type {
            ClientType::Confidential => Some(Token::generate()?),
            ClientType::Public => None,
        };
        let now = self.now();
        let client = ClientRecord {
            env: admin.env().slug.clone(),
            client_id,
            name: name(&spec.name)?,
            client_type,
            secret_hash: secret.as_ref().map(Token::hash),
            require_pkce: spec.require_pkce.unwrap_or(true),
            redirect_uris: spec.redirect_uris,
            post_logout_redirect_uris: spec.post_logout_redirect_uris,
            backchannel_logout_uri: spec.backchannel_logout_uri,
            require_mfa: spec.require_mfa.unwrap_or(false),
            access_token_ttl: access_ttl(spec.access_token_ttl.unwrap_or(DEFAULT_ACCESS_TTL))?,
            refresh_token: spec.refresh_token.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        check(&client)?;
        let record = self.client_record(admin, AuditType::OidcClientCreated, &client);
        self.store
            .create_client(&client, &record)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "a client {:?} already exists in this environment",
                    client.client_id
                )),
                other => other.into(),
            })?;
        Ok(IssuedClient { client, secret })
    }

    pub async fn list_clients(&self, admin: &EnvAdmin) -> ServiceResult<Vec<ClientRecord>> {
        Ok(self.store.list_clients(&admin.env().slug).await?)
    }

    pub async fn get_client(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<ClientRecord> {
        self.store
            .get_client(&admin.env().slug, id)
            .await?
            .ok_or(ServiceError::NotFound("client"))
    }

    /// Change a client's settings.
    pub async fn update_client(
        &self,
        admin: &EnvAdmin,
        id: &str,
        patch: ClientPatch,
    ) -> ServiceResult<ClientRecord> {
        let mut client = self.get_client(admin, id).await?;
        if let Some(n) = patch.name {
            client.name = name(&n)?;
        }
        if let Some(v) = patch.require_pkce {
            client.require_pkce = v;
        }
        if let Some(v) = patch.redirect_uris {
            client.redirect_uris = v;
        }
        if let Some(v) = patch.post_logout_redirect_uris {
            client.post_logout_redirect_uris = v;
        }
        if let Some(v) = patch.backchannel_logout_uri {
            client.backchannel_logout_uri = v;
        }
        if let Some(v) = patch.require_mfa {
            client.require_mfa = v;
        }
        if let Some(v) = patch.access_token_ttl {
            client.access_token_ttl = access_ttl(v)?;
        }
        if let Some(v) = patch.refresh_token {
            client.refresh_token = v;
        }
        client.updated_at = self.now();
        check(&client)?;
        let record = self.client_record(admin, AuditType::OidcClientUpdated, &client);
        if self.store.update_client(&client, &record).await? {
            Ok(client)
        } else {
            Err(ServiceError::NotFound("client"))
        }
    }

    /// Delete a client; its codes and tokens go with it.
    pub async fn delete_client(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<()> {
        let record = self.audit(
            &admin.env().slug,
            admin.caller(),
            AuditType::OidcClientDeleted,
            Some(id),
            crate::Outcome::Success,
            None,
        );
        if self
            .store
            .delete_client(&admin.env().slug, id, &record)
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound("client"))
        }
    }

    /// A new secret for a confidential client; the old one stops working at once.
    pub async fn rotate_client_secret(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<Token> {
        let mut client = self.get_client(admin, id).await?;
        if client.client_type == ClientType::Public {
            return Err(ServiceError::Refused {
                code: "public_client",
                message: "a public client has no secret".into(),
            });
        }
        let secret = Token::generate()?;
        client.secret_hash = Some(secret.hash());
        client.updated_at = self.now();
        let record = self.client_record(admin, AuditType::OidcClientSecretRotated, &client);
        if self.store.update_client(&client, &record).await? {
            Ok(secret)
        } else {
            Err(ServiceError::NotFound("client"))
        }
    }

    /// A client's name, for a page that asks the user about it.
    pub async fn client_name(
        &self,
        env: &latchkey_core::model::EnvSlug,
        id: &str,
    ) -> ServiceResult<Option<String>> {
        Ok(self.store.get_client(env, id).await?.map(|c| c.name))
    }

    /// Whether a browser application at `origin` may call the token side (CORS): the origin
    /// of one of the environment's registered redirect URIs.
    pub async fn cors_allowed(&self, env: &latchkey_core::model::EnvSlug, origin: &str) -> bool {
        let Ok(clients) = self.store.list_clients(env).await else {
            return false;
        };
        clients
            .iter()
            .flat_map(|c| &c.redirect_uris)
            .any(|u| url::Url::parse(u).is_ok_and(|u| u.origin().ascii_serialization() == origin))
    }

    fn client_record(
        &self,
        admin: &EnvAdmin,
        kind: AuditType,
        client: &ClientRecord,
    ) -> crate::AuditRecord {
        self.audit(
            &admin.env().slug,
            admin.caller(),
            kind,
            Some(&client.client_id),
            crate::Outcome::Success,
            Some(
                json!({
                    "name": client.name,
                    "type": client.client_type.as_str(),
                    "redirect_uris": client.redirect_uris,
                    "require_mfa": client.require_mfa,
                })
                .to_string(),
            ),
        )
    }
}

/// Whether `secret` is the client's (constant time over the hashes).
pub(crate) fn secret_matches(client: &ClientRecord, secret: &str) -> bool {
    match (&client.secret_hash, Token::parse(secret)) {
        (Some(stored), Some(given)) => stored.matches(&given.hash()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(kind: ClientType, uris: &[&str]) -> ClientRecord {
        ClientRecord {
            env: latchkey_core::model::EnvSlug::parse("prod").unwrap_or_else(|e| panic!("{e}")),
            client_id: "app".into(),
            name: "App".into(),
            client_type: kind,
            secret_hash: None,
            require_pkce: true,
            redirect_uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            require_mfa: false,
            access_token_ttl: 600,
            refresh_token: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/callback?x=1",
        ] {
            assert!(check_uri(ok, "redirect URI").is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user@app.example.com/cb",
            "/relative",
            "javascript:alert(1)",
            "https://app.example.com/\ncb",
            "",
        ] {
            assert!(check_uri(bad, "redirect URI").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redirect_uris_match_exactly_but_a_native_clients_loopback_port() {
        let conf = client(
            ClientType::Confidential,
            &["https://app.example.com/cb", "http://127.0.0.1:9000/cb"],
        );
        assert!(redirect_matches(&conf, "https://app.example.com/cb"));
        for bad in [
            "https://app.example.com/cb/",
            "https://app.example.com/CB",
            "https://app.example.com/cb?x=1",
            "https://APP.example.com/cb",
            "http://127.0.0.1:9001/cb",
        ] {
            assert!(!redirect_matches(&conf, bad), "{bad}");
        }
        let native = client(ClientType::Public, &["http://127.0.0.1/cb"]);
        assert!(redirect_matches(&native, "http://127.0.0.1:51234/cb"));
        assert!(!redirect_matches(&native, "http://127.0.0.1:51234/other"));
        assert!(!redirect_matches(&native, "http://localhost:51234/cb"));
    }

    #[test]
    fn client_ids_are_slugs() {
        assert!(check_client_id("grafana-prod.v2_x").is_ok());
        for bad in ["", "a b", "é", &"a".repeat(65), "a/b", ".", "..", ".x"] {
            assert!(check_client_id(bad).is_err(), "{bad:?}");
        }
    }
}
