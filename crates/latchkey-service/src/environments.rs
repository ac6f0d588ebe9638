//! Environments and their policies (SPEC §2, §4.1). `system` always requires MFA and its slug
//! is reserved; slugs never change.

use latchkey_core::{
    HumanDuration,
    model::{DisplayName, EnvSlug, Environment, MfaPolicy},
    totp::MAX_WINDOW,
};
use serde_json::json;

use crate::{AuditType, Outcome, Service, ServiceError, ServiceResult, store::Store};

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
    /// Consecutive failures that lock an account (1 to 100).
    pub lockout_threshold: Option<u32>,
    /// The first lock's length; later ones double up to `lockout_max`.
    pub lockout_base: Option<HumanDuration>,
    pub lockout_max: Option<HumanDuration>,
    /// Failed attempts per client address per minute (1 to 100,000).
    pub ip_failures_per_minute: Option<u32>,
}

impl EnvironmentPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.mfa_policy.is_none()
            && self.session_max_age.is_none()
            && self.session_idle_timeout.is_none()
            && self.totp_window.is_none()
            && self.issuer.is_none()
            && self.lockout_threshold.is_none()
            && self.lockout_base.is_none()
            && self.lockout_max.is_none()
            && self.ip_failures_per_minute.is_none()
    }

    /// Refuse values no environment may have, before anything is read or written.
    fn validate(&self, slug: &EnvSlug) -> ServiceResult<()> {
        if self.is_empty() {
            return Err(ServiceError::Invalid(
                "nothing to change: name at least one setting".into(),
            ));
        }
        if slug.is_system() && self.mfa_policy.is_some_and(|p| p != MfaPolicy::Required) {
            return Err(ServiceError::Refused {
                code: "mfa_required_by_policy",
                message: "MFA is always required in the `system` environment".into(),
            });
        }
        if self.totp_window.is_some_and(|w| w > MAX_WINDOW) {
            return Err(ServiceError::Invalid(format!(
                "totp_window must be 0 to {MAX_WINDOW}"
            )));
        }
        if let Some(Some(issuer)) = &self.issuer
            && (issuer.trim().is_empty()
                || issuer.chars().count() > 100
                || issuer.chars().any(char::is_control)
                || issuer.contains(':'))
        {
            return Err(ServiceError::Invalid(
                "issuer must be 1 to 100 characters, without control characters or `:`".into(),
            ));
        }
        if self
            .lockout_threshold
            .is_some_and(|t| !(1..=100).contains(&t))
        {
            return Err(ServiceError::Invalid(
                "lockout_threshold must be 1 to 100".into(),
            ));
        }
        if self
            .ip_failures_per_minute
            .is_some_and(|t| !(1..=100_000).contains(&t))
        {
            return Err(ServiceError::Invalid(
                "ip_failures_per_minute must be 1 to 100000".into(),
            ));
        }
        Ok(())
    }

    /// Apply to `env`, and list what changed (for the audit record).
    fn apply(
        &self,
        env: &mut Environment,
    ) -> ServiceResult<serde_json::Map<String, serde_json::Value>> {
        let mut changed = serde_json::Map::new();
        if let Some(v) = &self.name {
            changed.insert("name".into(), json!(v));
            env.name = v.clone();
        }
        if let Some(v) = self.mfa_policy {
            changed.insert("mfa_policy".into(), json!(v));
            env.mfa_policy = v;
        }
        if let Some(v) = self.session_max_age {
            changed.insert("session_max_age".into(), json!(v));
            env.session_max_age = v;
        }
        if let Some(v) = self.session_idle_timeout {
            changed.insert(
                "session_idle_timeout".into(),
                json!(v.map_or_else(|| "none".to_owned(), |d| d.to_string())),
            );
            env.session_idle_timeout = v;
        }
        if let Some(v) = self.totp_window {
            changed.insert("totp_window".into(), json!(v));
            env.totp_window = v;
        }
        if let Some(v) = &self.issuer {
            changed.insert("issuer".into(), json!(v));
            env.issuer = v.as_ref().map(|s| s.trim().to_owned());
        }
        if let Some(v) = self.lockout_threshold {
            changed.insert("lockout_threshold".into(), json!(v));
            env.lockout.threshold = v;
        }
        if let Some(v) = self.lockout_base {
            changed.insert("lockout_base".into(), json!(v));
            env.lockout.base_lock = v;
        }
        if let Some(v) = self.lockout_max {
            changed.insert("lockout_max".into(), json!(v));
            env.lockout.max_lock = v;
        }
        if let Some(v) = self.ip_failures_per_minute {
            changed.insert("ip_failures_per_minute".into(), json!(v));
            env.lockout.ip_failures_per_minute = v;
        }
        if env.lockout.max_lock < env.lockout.base_lock {
            return Err(ServiceError::Invalid(
                "lockout_max must be at least lockout_base".into(),
            ));
        }
        Ok(changed)
    }
}

impl<S: Store> Service<S> {
    pub async fn create_environment(
        &self,
        op: &crate::authz::Operator,
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
            op.caller(),
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
    /// because sessions are checked against the environment's current settings. Concurrent
    /// changes never undo each other: the write succeeds only against what was read, and a
    /// lost race is retried on fresh settings.
    pub async fn update_environment(
        &self,
        op: &crate::authz::Operator,
        slug: &EnvSlug,
        patch: EnvironmentPatch,
    ) -> ServiceResult<Environment> {
        patch.validate(slug)?;
        for _ in 0..5 {
            let previous = self.environment(slug).await?;
            let mut env = previous.clone();
            let changed = patch.apply(&mut env)?;
            env.updated_at = self.now();
            let audit = self.audit(
                slug,
                op.caller(),
                AuditType::EnvironmentUpdated,
                Some(slug.as_str()),
                Outcome::Success,
                Some(serde_json::Value::Object(changed).to_string()),
            );
            match self.store.update_environment(&env, &previous, &audit).await {
                Ok(()) => return Ok(env),
                Err(crate::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(
            "the environment is being changed by someone else; try again".into(),
        ))
    }
}
