//! Users (SPEC §4.2, §4.7): invitation with a one-time setup link, lookup by email, listing
//! with filters and cursor pagination, and what a stored email or name has that a new one could
//! not ([`identity_issues`]). An admin never chooses or sees a password (SECURITY A1).

use latchkey_core::model::{DisplayName, Email, EnvSlug, Role, User, UserState};
use serde_json::json;

use crate::{
    AuditType, Outcome, Service, ServiceError, ServiceResult, SetupLink,
    store::{MfaFilter, NewUser, SetupPurpose, Store, UserQuery},
};

/// Default and largest page sizes of every paginated list (SPEC §4.7).
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// What a user's stored email or name has that a new account could not have (both were
/// accepted before the checks of [`Email::parse`] and [`DisplayName::parse`] existed).
pub fn identity_issues(user: &User) -> Vec<&'static str> {
    let mut issues = Vec::new();
    if user.email.is_ambiguous() {
        issues.push(
            "the email has characters with a plainer form, or invisible formatting: an \
             application that applies NFKC may take it for another user's",
        );
    }
    if user.name.is_suspicious() {
        issues.push(
            "the name holds invisible formatting characters (direction marks, separators): \
             it can show differently from what it is",
        );
    }
    issues
}

/// Filters of the users list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub mfa: Option<MfaFilter>,
    pub role: Option<Role>,
    pub state: Option<UserState>,
    pub q: Option<String>,
}

/// One page of users and the cursor of the next (None at the end).
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

/// Check a requested page size: 1 to 500, default 50.
pub fn page_limit(limit: Option<u32>) -> ServiceResult<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(l) if (1..=MAX_PAGE).contains(&l) => Ok(l),
        Some(_) => Err(ServiceError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        ))),
    }
}

impl<S: Store> Service<S> {
    /// Invite a user: state `invited`, no password, and a setup link valid 7 days.
    pub async fn create_user(
        &self,
        admin: &crate::authz::EnvAdmin,
        email: Email,
        name: Option<DisplayName>,
        role: Role,
    ) -> ServiceResult<(User, SetupLink)> {
        let (caller, env) = (admin.caller(), &admin.env().slug);
        let now = self.now();
        let name = match name {
            Some(n) => n,
            None => DisplayName::parse(email.local_part())?,
        };
        let user = User {
            id: self.new_id(),
            env: env.clone(),
            email,
            name,
            role,
            state: UserState::Invited,
            mfa_enforced: false,
            mfa_enrolled: false,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let (link, setup) =
            self.setup_link(env, &user.id, SetupPurpose::Invite, self.config.invite_ttl)?;
        let audit = self.audit(
            env,
            caller,
            AuditType::UserCreated,
            Some(&user.id),
            Outcome::Success,
            Some(json!({"role": role, "email": user.email}).to_string()),
        );
        self.store
            .create_user(
                &NewUser {
                    user: user.clone(),
                    password_hash: None,
                },
                &setup,
                &audit,
            )
            .await
            .map_err(|e| match e {
                crate::StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "a user with the email {} already exists in `{env}`",
                    user.email
                )),
                other => other.into(),
            })?;
        Ok((user, link))
    }

    /// A page of users, oldest first, after `cursor` (an opaque value from the previous page).
    pub async fn list_users(
        &self,
        admin: &crate::authz::EnvAdmin,
        filter: UserFilter,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> ServiceResult<UserPage> {
        let env = &admin.env().slug;
        let limit = page_limit(limit)?;
        if cursor
            .as_ref()
            .is_some_and(|c| uuid::Uuid::parse_str(c).is_err())
        {
            return Err(ServiceError::Invalid(
                "the cursor is not one this server handed out".into(),
            ));
        }
        let q = filter
            .q
            .map(|q| latchkey_core::model::normalize_email(&q))
            .filter(|q| !q.is_empty());
        if q.as_ref()
            .is_some_and(|q| q.len() > 254 || q.chars().any(char::is_control))
        {
            return Err(ServiceError::Invalid(
                "the search text must be at most 254 characters, without control characters".into(),
            ));
        }
        let query = UserQuery {
            mfa: filter.mfa,
            role: filter.role,
            state: filter.state,
            email_contains: q,
            after: cursor,
            limit: limit + 1,
        };
        let mut users = self.store.list_users(env, &query).await?;
        let next_cursor = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|u| u.id.clone())
        } else {
            None
        };
        Ok(UserPage { users, next_cursor })
    }

    /// Find a user by email (case-insensitive).
    pub async fn user_by_email(&self, env: &EnvSlug, email: &Email) -> ServiceResult<User> {
        self.store
            .find_user_by_email(env, &email.normalized())
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }
}
