//! First start (SPEC §7): create `system` and its first operator, who gets a one-time setup
//! link. No default password exists anywhere (SECURITY A6).

use latchkey_core::{
    HumanDuration,
    model::{DisplayName, Email, EnvSlug, Environment, Role, User, UserState},
};
use serde_json::json;

use crate::{
    AuditType, Caller, Outcome, Service, ServiceResult, SetupLink,
    store::{NewUser, SetupPurpose, Store},
};

/// How long the first operator's link lives (SPEC §7: 24 hours).
pub const OPERATOR_LINK_TTL: u64 = 86_400;

impl<S: Store> Service<S> {
    /// Create `system` and its operator `operator_email` when the database has no `system`
    /// yet, and return the operator's setup link; `None` when already initialised (a restart
    /// prints nothing).
    pub async fn bootstrap(&self, operator_email: &Email) -> ServiceResult<Option<SetupLink>> {
        let slug = EnvSlug::system();
        if self.store.get_environment(&slug).await?.is_some() {
            return Ok(None);
        }
        // The first operator is a new account: its address gets a new account's checks.
        let operator_email = &Email::parse(operator_email.as_str())?;
        let now = self.now();
        let system = Environment::new(slug.clone(), DisplayName::parse("System")?, None, now);
        let operator = User {
            id: self.new_id(),
            env: slug.clone(),
            email: operator_email.clone(),
            name: DisplayName::parse("Operator")?,
            role: Role::Admin,
            state: UserState::Invited,
            mfa_enforced: false,
            mfa_enrolled: false,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let ttl = HumanDuration::from_secs(OPERATOR_LINK_TTL)
            .map_err(|e| crate::ServiceError::Internal(e.to_string()))?;
        let (link, setup) = self.setup_link(&slug, &operator.id, SetupPurpose::Invite, ttl)?;
        let audit = [
            self.audit(
                &slug,
                &Caller::system(),
                AuditType::EnvironmentCreated,
                Some(slug.as_str()),
                Outcome::Success,
                Some(json!({"mfa_policy": system.mfa_policy}).to_string()),
            ),
            self.audit(
                &slug,
                &Caller::system(),
                AuditType::UserCreated,
                Some(&operator.id),
                Outcome::Success,
                Some(json!({"role": "admin", "first_operator": true}).to_string()),
            ),
        ];
        let created = self
            .store
            .bootstrap(
                &system,
                &NewUser {
                    user: operator,
                    password_hash: None,
                },
                &setup,
                &audit,
            )
            .await?;
        Ok(created.then_some(link))
    }
}
