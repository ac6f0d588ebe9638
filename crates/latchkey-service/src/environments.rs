//! Environments and their policies (SPEC §2, §4.1). `system` always requires MFA and its slug
//! is reserved; slugs never change.

use latchkey_core::{
    HumanDuration,
    model::{DisplayName, EnvSlug, Environment, MfaPolicy},
    totp::MAX_WINDOW,
};
use serde_json::json;

use crate::{AuditType, Caller, Outcome, Service, ServiceError, ServiceResult, store::Store};

/// A change to an environment's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentPatch {
    pub name: Option<DisplayName>,
    pub mfa_policy: Option<MfaPolicy>,
    pub session_max_age: Option<HumanDuration>,
    /// `Some(None)` removes the idle timeout.
    pub session_idle_timeout: Option<Option<HumanDuration>>,
    pub totp_window: Option<u8>,
    /// `Some(None)` goes back to the display name.
    pub issuer: Option<Option<String>>,
}

impl EnvironmentPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.mfa_policy.is_none()
            && self.session_max_age.is_none()
            && self.session_idle_timeout.is_none()
            && self.totp_window.is_none()
            && self.issuer.is_none()
    }
}

impl<S: Store> Service<S> {
    pub async fn create_environment(
        &self,
        caller: &Caller,
        slug: EnvSlug,
        name: Option<DisplayName>,
        mfa_policy: Option<MfaPolicy>,
    ) -> ServiceResult<Environment> {
        if slug.is_system() {
            return Err(ServiceError::Conflict(
                "the `system` environment already exists".into(),
            ));
        }
        let name = match name {
            Some(n) => n,
            None => DisplayName::parse(slug.as_str())?,
        };
        let env = Environment::new(slug, name, mfa_policy, self.now());
        let audit = self.audit(
            &env.slug,
            caller,
            AuditType::EnvironmentCreated,
            Some(env.slug.as_str()),
            Outcome::Success,
            Some(json!({"mfa_policy": env.mfa_policy, "name": env.name}).to_string()),
        );
        self.store
            .create_environment(&env, &audit)
            .await
            .map_err(|e| match e {
                crate::StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("an environment `{}` already exists", env.slug))
                }
                other => other.into(),
            })?;
        Ok(env)
    }

    pub async fn list_environments(&self) -> ServiceResult<Vec<Environment>> {
        Ok(self.store.list_environments().await?)
    }

    pub async fn environment(&self, slug: &EnvSlug) -> ServiceResult<Environment> {
        self.store
            .get_environment(slug)
            .await?
            .ok_or(ServiceError::NotFound("environment"))
    }

    /// Apply `patch`. A new session lifetime applies to open sessions at their next check,
    /// because sessions are checked against the environment's current settings.
    pub async fn update_environment(
        &self,
        caller: &Caller,
        slug: &EnvSlug,
        patch: EnvironmentPatch,
    ) -> ServiceResult<Environment> {
        if patch.is_empty() {
            return Err(ServiceError::Invalid(
                "nothing to change: name at least one setting".into(),
            ));
        }
        let mut env = self.environment(slug).await?;
        if slug.is_system() && patch.mfa_policy.is_some_and(|p| p != MfaPolicy::Required) {
            return Err(ServiceError::Refused {
                code: "mfa_required_by_policy",
                message: "MFA is always required in the `system` environment".into(),
            });
        }
        if patch.totp_window.is_some_and(|w| w > MAX_WINDOW) {
            return Err(ServiceError::Invalid(format!(
                "totp_window must be 0 to {MAX_WINDOW}"
            )));
        }
        if let Some(Some(issuer)) = &patch.issuer
            && (issuer.trim().is_empty()
                || issuer.chars().count() > 100
                || issuer.chars().any(char::is_control)
                || issuer.contains(':'))
        {
            return Err(ServiceError::Invalid(
                "issuer must be 1 to 100 characters, without control characters or `:`".into(),
            ));
        }
        let mut changed = serde_json::Map::new();
        if let Some(v) = patch.name {
            changed.insert("name".into(), json!(v));
            env.name = v;
        }
        if let Some(v) = patch.mfa_policy {
            changed.insert("mfa_policy".into(), json!(v));
            env.mfa_policy = v;
        }
        if let Some(v) = patch.session_max_age {
            changed.insert("session_max_age".into(), json!(v));
            env.session_max_age = v;
        }
        if let Some(v) = patch.session_idle_timeout {
            changed.insert(
                "session_idle_timeout".into(),
                json!(v.map_or_else(|| "none".to_owned(), |d| d.to_string())),
            );
            env.session_idle_timeout = v;
        }
        if let Some(v) = patch.totp_window {
            changed.insert("totp_window".into(), json!(v));
            env.totp_window = v;
        }
        if let Some(v) = patch.issuer {
            changed.insert("issuer".into(), json!(v));
            env.issuer = v.map(|s| s.trim().to_owned());
        }
        env.updated_at = self.now();
        let audit = self.audit(
            slug,
            caller,
            AuditType::EnvironmentUpdated,
            Some(slug.as_str()),
            Outcome::Success,
            Some(serde_json::Value::Object(changed).to_string()),
        );
        self.store.update_environment(&env, &audit).await?;
        Ok(env)
    }
}
