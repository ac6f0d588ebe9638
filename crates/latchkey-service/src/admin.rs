//! Administration (SPEC §4): users, resets, sign-outs, bulk enforcement, lockouts, statistics,
//! the audit log and API tokens. Each use case takes the principal that authorizes it and is one
//! store call, so one transaction, audit record included. The CLI and the API call these same
//! functions, so both write the same audit events for the same act.

use latchkey_core::{
    model::{DisplayName, MfaPolicy, Role, User},
    token::Token,
};
use serde_json::json;

use crate::{
    AuditRecord, AuditType, Outcome, Service, ServiceError, ServiceResult, SetupLink,
    authz::{API_TOKEN_PREFIX, EnvAdmin, Operator},
    store::{
        ApiTokenRecord, AuditQuery, EnforceCounts, EnvStats, NewApiToken, SetupPurpose, Store,
        UserUpdate,
    },
    users::page_limit,
};

/// Changes an admin may make to a user (SPEC §5.3: name, role, disabled, `mfa_enforced`).
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<DisplayName>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub mfa_enforced: Option<bool>,
}

/// What a password reset hands back.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub sessions_ended: u64,
    pub link: SetupLink,
}

/// An API token, shown once.
#[derive(Debug, Clone)]
pub struct IssuedApiToken {
    pub record: ApiTokenRecord,
    pub token: Token,
}

impl IssuedApiToken {
    /// The bearer value: `lk_` and the token.
    pub fn bearer(&self) -> String {
        format!("{API_TOKEN_PREFIX}{}", self.token.expose())
    }
}

/// A page of audit events and the cursor of the next.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

/// Statistics with the adoption share.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub counts: EnvStats,
    /// Users with an authenticator ÷ users (0 when there are none).
    pub mfa_share: f64,
}

impl<S: Store> Service<S> {
    fn record(
        &self,
        admin: &EnvAdmin,
        kind: AuditType,
        target: &str,
        detail: Option<serde_json::Value>,
    ) -> AuditRecord {
        self.audit(
            &admin.env().slug,
            admin.caller(),
            kind,
            Some(target),
            Outcome::Success,
            detail.map(|d| d.to_string()),
        )
    }

    fn is_self(admin: &EnvAdmin, user_id: &str) -> bool {
        matches!(&admin.caller().actor, crate::Actor::User(id) if id == user_id)
    }

    /// A user of the admin's environment; 404 for any other.
    pub async fn admin_user(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<User> {
        self.store
            .get_user(&admin.env().slug, id)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// `PATCH …/users/{id}`. Disabling ends the user's sessions and logins (SECURITY S7). An
    /// admin cannot disable, demote or delete themselves (so an environment keeps an admin).
    pub async fn update_user(
        &self,
        admin: &EnvAdmin,
        id: &str,
        patch: UserPatch,
    ) -> ServiceResult<User> {
        if patch.name.is_none()
            && patch.role.is_none()
            && patch.disabled.is_none()
            && patch.mfa_enforced.is_none()
        {
            return Err(ServiceError::Invalid(
                "nothing to change: give name, role, disabled or mfa_enforced".into(),
            ));
        }
        if Self::is_self(admin, id)
            && (patch.disabled == Some(true) || patch.role == Some(Role::User))
        {
            return Err(ServiceError::Forbidden(
                "you cannot disable or demote yourself".into(),
            ));
        }
        if patch.mfa_enforced == Some(true) && admin.env().mfa_policy == MfaPolicy::Off {
            return Err(ServiceError::Refused {
                code: "mfa_not_allowed",
                message: format!("MFA is off in `{}`", admin.env().slug),
            });
        }
        let mut changed = serde_json::Map::new();
        if let Some(n) = &patch.name {
            changed.insert("name".into(), json!(n));
        }
        if let Some(r) = patch.role {
            changed.insert("role".into(), json!(r));
        }
        if let Some(m) = patch.mfa_enforced {
            changed.insert("mfa_enforced".into(), json!(m));
        }
        let mut records = Vec::new();
        if !changed.is_empty() {
            records.push(self.record(
                admin,
                AuditType::UserUpdated,
                id,
                Some(serde_json::Value::Object(changed)),
            ));
        }
        match patch.disabled {
            Some(true) => records.push(self.record(admin, AuditType::UserDisabled, id, None)),
            Some(false) => records.push(self.record(
                admin,
                AuditType::UserUpdated,
                id,
                Some(json!({"disabled": false})),
            )),
            None => {}
        }
        let update = UserUpdate {
            name: patch.name.map(|n| n.to_string()),
            role: patch.role,
            disabled: patch.disabled,
            mfa_enforced: patch.mfa_enforced,
        };
        let (user, _) = self
            .store
            .update_user(&admin.env().slug, id, &update, self.now(), &records)
            .await
            .map_err(last_operator)?
            .ok_or(ServiceError::NotFound("user"))?;
        Ok(user)
    }

    /// `DELETE …/users/{id}`: the user and everything theirs.
    pub async fn delete_user(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<()> {
        if Self::is_self(admin, id) {
            return Err(ServiceError::Forbidden("you cannot delete yourself".into()));
        }
        let user = self.admin_user(admin, id).await?;
        let record = self.record(
            admin,
            AuditType::UserDeleted,
            id,
            Some(json!({"email": user.email})),
        );
        if self
            .store
            .delete_user(&admin.env().slug, id, &record)
            .await
            .map_err(last_operator)?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound("user"))
        }
    }

    /// `POST …/users/{id}/reset-password` (SPEC §4.3): one transaction ends the sessions and
    /// logins, voids the password and older links, and stores a 24-hour setup link. A user who
    /// has an authenticator keeps it and must use it (SECURITY A2).
    pub async fn reset_password(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<PasswordReset> {
        let user = self.admin_user(admin, id).await?;
        if user.state == latchkey_core::model::UserState::Disabled {
            return Err(ServiceError::Refused {
                code: "conflict",
                message: "the user is disabled: enable them first".into(),
            });
        }
        let (link, setup) = self.setup_link(
            &admin.env().slug,
            &user.id,
            SetupPurpose::Reset,
            self.config.reset_ttl,
        )?;
        let record = self.record(admin, AuditType::PasswordReset, id, None);
        let sessions_ended = self
            .store
            .reset_password(&admin.env().slug, id, &setup, self.now(), &record)
            .await?;
        Ok(PasswordReset {
            sessions_ended,
            link,
        })
    }

    /// `POST …/users/{id}/reset-mfa` (SPEC §4.4, SECURITY A3): one transaction. Returns
    /// (sessions ended, authenticators removed).
    pub async fn reset_mfa(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<(u64, u64)> {
        self.admin_user(admin, id).await?;
        let record = self.record(admin, AuditType::MfaReset, id, None);
        Ok(self.store.reset_mfa(&admin.env().slug, id, &record).await?)
    }

    /// `POST …/users/{id}/sign-out` (SPEC §4.5).
    pub async fn sign_out(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<u64> {
        self.admin_user(admin, id).await?;
        let record = self.record(admin, AuditType::UserSignedOut, id, None);
        Ok(self.store.sign_out(&admin.env().slug, id, &record).await?)
    }

    /// `POST …/users/{id}/clear-lockout` (SECURITY L6).
    pub async fn clear_lockout(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<bool> {
        let user = self.admin_user(admin, id).await?;
        let record = self.record(admin, AuditType::LockoutCleared, id, None);
        Ok(self
            .store
            .clear_lockout(&admin.env().slug, id, &user.email.normalized(), &record)
            .await?)
    }

    /// `POST …/enforce-mfa` (SPEC §4.6): refused where the policy is `off`.
    pub async fn enforce_mfa(&self, admin: &EnvAdmin, all: bool) -> ServiceResult<EnforceCounts> {
        refuse_if_mfa_off(admin.env())?;
        let record = self.record(
            admin,
            AuditType::MfaEnforced,
            admin.env().slug.as_str(),
            None,
        );
        Ok(self
            .store
            .enforce_mfa(&admin.env().slug, all, &record)
            .await?)
    }

    /// What enforce-MFA would do now (for the page that asks before it acts); refused where
    /// the policy is `off`, like the act itself.
    pub async fn enforce_mfa_preview(
        &self,
        admin: &EnvAdmin,
        all: bool,
    ) -> ServiceResult<EnforceCounts> {
        refuse_if_mfa_off(admin.env())?;
        Ok(self.store.enforce_preview(&admin.env().slug, all).await?)
    }

    /// `GET …/stats` (SPEC §4.7).
    pub async fn stats(&self, admin: &EnvAdmin) -> ServiceResult<Stats> {
        let counts = self.store.stats(&admin.env().slug, self.now()).await?;
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let mfa_share = if counts.users == 0 {
            0.0
        } else {
            counts.users_with_mfa as f64 / counts.users as f64
        };
        Ok(Stats { counts, mfa_share })
    }

    /// `GET …/audit` (SPEC §4.7): newest first, by cursor.
    pub async fn audit_log(
        &self,
        admin: &EnvAdmin,
        mut query: AuditQuery,
        limit: Option<u32>,
    ) -> ServiceResult<AuditPage> {
        let limit = page_limit(limit)?;
        if query
            .kind
            .as_deref()
            .is_some_and(|k| k.parse::<AuditType>().is_err())
        {
            return Err(ServiceError::Invalid(
                "unknown event type; see docs/API.md for the list".into(),
            ));
        }
        if query
            .user
            .as_deref()
            .is_some_and(|u| u.len() > 64 || u.chars().any(char::is_control))
        {
            return Err(ServiceError::Invalid("user must be a user id".into()));
        }
        if query
            .before
            .as_deref()
            .is_some_and(|c| uuid::Uuid::parse_str(c).is_err())
        {
            return Err(ServiceError::Invalid(
                "the cursor is not one this server handed out".into(),
            ));
        }
        query.limit = limit + 1;
        let mut events = self.store.list_audit(&admin.env().slug, &query).await?;
        let next_cursor = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }

    /// `POST …/api-tokens`: a token for the admin's environment, shown once.
    pub async fn create_env_token(
        &self,
        admin: &EnvAdmin,
        name: &str,
    ) -> ServiceResult<IssuedApiToken> {
        Self::people_manage_tokens(admin.caller())?;
        if admin.env().slug.is_system() {
            return Err(ServiceError::Refused {
                code: "conflict",
                message:
                    "`system` takes operator tokens only: latchkey token create --operator NAME"
                        .into(),
            });
        }
        self.issue_token(Some(admin.env()), admin.caller(), name)
            .await
    }

    /// A leaked token must not be able to mint more or revoke the good ones: tokens are
    /// managed by people (or the CLI).
    fn people_manage_tokens(caller: &crate::Caller) -> ServiceResult<()> {
        if matches!(caller.actor, crate::Actor::ApiToken(_)) {
            return Err(ServiceError::Forbidden(
                "API tokens are managed by people, not by tokens".into(),
            ));
        }
        Ok(())
    }

    /// Operator tokens, revoked ones included.
    pub async fn list_operator_tokens(&self, _op: &Operator) -> ServiceResult<Vec<ApiTokenRecord>> {
        Ok(self.store.list_api_tokens(None).await?)
    }

    /// Revoke an operator token.
    pub async fn revoke_operator_token(&self, op: &Operator, id: &str) -> ServiceResult<()> {
        Self::people_manage_tokens(op.caller())?;
        let record = self.audit(
            &latchkey_core::model::EnvSlug::system(),
            op.caller(),
            AuditType::ApiTokenRevoked,
            Some(id),
            Outcome::Success,
            Some(json!({"operator": true}).to_string()),
        );
        if self
            .store
            .revoke_api_token(None, id, self.now(), &record)
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound("api token"))
        }
    }

    /// An operator token (all environments), shown once.
    pub async fn create_operator_token(
        &self,
        op: &Operator,
        name: &str,
    ) -> ServiceResult<IssuedApiToken> {
        Self::people_manage_tokens(op.caller())?;
        self.issue_token(None, op.caller(), name).await
    }

    async fn issue_token(
        &self,
        env: Option<&latchkey_core::model::Environment>,
        caller: &crate::Caller,
        name: &str,
    ) -> ServiceResult<IssuedApiToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(
                "a token name must be 1 to 100 characters".into(),
            ));
        }
        let token = Token::generate()?;
        let record = ApiTokenRecord {
            id: self.new_id(),
            env: env.map(|e| e.slug.clone()),
            name: name.to_owned(),
            created_by: caller.actor.audit_name(),
            created_at: self.now(),
            last_used_at: None,
            revoked_at: None,
        };
        let audit_env = env.map_or_else(latchkey_core::model::EnvSlug::system, |e| e.slug.clone());
        let audit = self.audit(
            &audit_env,
            caller,
            AuditType::ApiTokenCreated,
            Some(&record.id),
            Outcome::Success,
            Some(json!({"name": name, "operator": env.is_none()}).to_string()),
        );
        let new = NewApiToken {
            id: record.id.clone(),
            hash: token.hash(),
            env: record.env.clone(),
            name: record.name.clone(),
            created_by: record.created_by.clone(),
            created_at: record.created_at,
        };
        self.store.create_api_token(&new, &audit).await?;
        Ok(IssuedApiToken { record, token })
    }

    pub async fn list_env_tokens(&self, admin: &EnvAdmin) -> ServiceResult<Vec<ApiTokenRecord>> {
        Ok(self.store.list_api_tokens(Some(&admin.env().slug)).await?)
    }

    pub async fn revoke_env_token(&self, admin: &EnvAdmin, id: &str) -> ServiceResult<()> {
        Self::people_manage_tokens(admin.caller())?;
        let record = self.record(admin, AuditType::ApiTokenRevoked, id, None);
        if self
            .store
            .revoke_api_token(Some(&admin.env().slug), id, self.now(), &record)
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound("api token"))
        }
    }
}

/// `system` keeps at least one active admin.
fn last_operator(e: crate::StoreError) -> ServiceError {
    match e {
        crate::StoreError::Conflict(_) => ServiceError::Refused {
            code: "conflict",
            message:
                "this would leave `system` without an active operator; make another admin first"
                    .into(),
        },
        other => other.into(),
    }
}

/// Enforcing MFA where it is off would lock every user out of a login that never asks for it.
fn refuse_if_mfa_off(env: &latchkey_core::model::Environment) -> ServiceResult<()> {
    if env.mfa_policy == MfaPolicy::Off {
        return Err(ServiceError::Refused {
            code: "mfa_not_allowed",
            message: format!(
                "MFA is off in `{}`: set the policy to optional or required first",
                env.slug
            ),
        });
    }
    Ok(())
}
