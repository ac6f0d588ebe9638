//! Authorization as types (`docs/ARCHITECTURE.md`, Conventions 3): an administrative use case takes
//! an [`EnvAdmin`] or an [`Operator`], and only the checks here make one, so a forgotten check
//! does not compile. Also here: who presented a bearer credential ([`Identity`]: a session or
//! an API token), the CLI's admin, and the audit record of a refused act.
//!
//! Environment admins (role `admin` in that environment, or an API token of it) act on their
//! environment; operators (admins of `system`, or operator API tokens) on every environment.
//! The environment always comes from the path, never from a body (SECURITY A5).

use latchkey_core::{
    model::{EnvSlug, Environment, Role, UserState},
    token::Token,
};

use serde_json::json;

use crate::{
    Actor, AuditType, Caller, Origin, Outcome, Service, ServiceError, ServiceResult,
    session::Principal,
    store::{ApiTokenRecord, Store},
};

/// Prefix of API tokens, so that secret scanners and people can tell them from sessions.
pub const API_TOKEN_PREFIX: &str = "lk_";

/// Who presented a credential.
#[derive(Debug, Clone)]
pub enum Identity {
    User(Box<Principal>),
    ApiToken(ApiTokenRecord),
}

impl Identity {
    pub fn caller(&self, origin: Origin) -> Caller {
        match self {
            Self::User(p) => p.caller(origin),
            Self::ApiToken(t) => Caller {
                actor: Actor::ApiToken(t.id.clone()),
                origin,
            },
        }
    }

    fn is_operator(&self) -> bool {
        match self {
            Self::User(p) => {
                p.user.env.is_system()
                    && p.user.role == Role::Admin
                    && p.user.state == UserState::Active
            }
            Self::ApiToken(t) => t.env.is_none(),
        }
    }
}

/// An admin of one environment, or an operator acting on it.
#[derive(Debug, Clone)]
pub struct EnvAdmin {
    env: Environment,
    caller: Caller,
}

impl EnvAdmin {
    pub fn env(&self) -> &Environment {
        &self.env
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// An operator.
#[derive(Debug, Clone)]
pub struct Operator {
    caller: Caller,
}

impl Operator {
    /// The `latchkey` command: whoever can read the database and the key file is an operator
    /// (SECURITY A6).
    pub fn local_cli() -> Self {
        Self {
            caller: Caller::cli(),
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// How often, at most, an API token's use is written (seconds).
const API_TOKEN_USE_RESOLUTION: i64 = 60;

impl<S: Store> Service<S> {
    /// A bearer credential: an API token (`lk_…`) or a session token.
    pub async fn identify(&self, token: &str) -> ServiceResult<Identity> {
        if let Some(secret) = token.strip_prefix(API_TOKEN_PREFIX)
            && let Some(parsed) = Token::parse(secret)
            && let Some(record) = self.store.find_api_token(&parsed.hash()).await?
        {
            // Its use is recorded at most once a minute: a busy automation writes once a
            // minute, not at every request.
            let now = self.now();
            if record
                .last_used_at
                .is_none_or(|used| now - used >= API_TOKEN_USE_RESOLUTION)
            {
                self.store.mark_api_token_used(&record.id, now).await?;
            }
            return Ok(Identity::ApiToken(record));
        }
        // Not an API token (a session token may begin with `lk_` too, by chance).
        self.authenticate(token)
            .await
            .map(|p| Identity::User(Box::new(p)))
    }

    /// Only an operator passes.
    pub fn operator(&self, who: &Identity, origin: Origin) -> ServiceResult<Operator> {
        if who.is_operator() {
            Ok(Operator {
                caller: who.caller(origin),
            })
        } else {
            Err(ServiceError::Forbidden(
                "this needs an operator (an admin of `system`)".into(),
            ))
        }
    }

    /// An admin of `env` or an operator passes. An unknown environment is 404 for operators;
    /// anyone else learns nothing about environments that are not theirs (403).
    pub async fn admin_of(
        &self,
        who: &Identity,
        origin: Origin,
        env: &EnvSlug,
    ) -> ServiceResult<EnvAdmin> {
        let allowed = who.is_operator()
            || match who {
                Identity::User(p) => {
                    &p.user.env == env
                        && p.user.role == Role::Admin
                        && p.user.state == UserState::Active
                }
                Identity::ApiToken(t) => t.env.as_ref() == Some(env),
            };
        if !allowed {
            return Err(ServiceError::Forbidden(format!(
                "this needs an admin of `{env}`"
            )));
        }
        let env = self.environment(env).await?;
        Ok(EnvAdmin {
            env,
            caller: who.caller(origin),
        })
    }

    /// Record an administrative act refused with 403 (SECURITY G1): an `admin.refused` event
    /// in the caller's own environment, where its admins read it, naming the act (`METHOD
    /// /path`, at most 200 characters) and the environment asked for. Only the HTTP layer calls
    /// this, once per refused request; a check used to decide what a page shows records nothing.
    pub async fn record_refused(
        &self,
        who: &Identity,
        origin: Origin,
        act: &str,
        asked: Option<&EnvSlug>,
    ) -> ServiceResult<()> {
        let own = match who {
            Identity::User(p) => p.user.env.clone(),
            Identity::ApiToken(t) => t.env.clone().unwrap_or_else(EnvSlug::system),
        };
        let act: String = act.chars().take(200).collect();
        let record = self.audit(
            &own,
            &who.caller(origin),
            AuditType::AdminRefused,
            None,
            Outcome::Failure,
            Some(json!({"act": act, "environment": asked.map(EnvSlug::as_str)}).to_string()),
        );
        Ok(self.store.append_audit(&record).await?)
    }

    /// The CLI administers every environment, as an operator.
    pub async fn cli_admin(&self, env: &EnvSlug) -> ServiceResult<EnvAdmin> {
        Ok(EnvAdmin {
            env: self.environment(env).await?,
            caller: Caller::cli(),
        })
    }
}
