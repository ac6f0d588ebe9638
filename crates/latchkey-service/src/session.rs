//! Sessions (SPEC §3, §5.2; SECURITY S1–S6): the [`Principal`] a live session yields, checking
//! a presented token against the environment's current lifetime rules, logout, a user's own
//! sessions (list, end one), and purging rows nobody can use any more.

use latchkey_core::{
    model::{Environment, User, UserState},
    policy::{self, SessionEnd},
    token::Token,
};
use serde_json::json;

use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    metrics::SessionCheck,
    store::{SessionRecord, SessionView, Store},
};

/// Why a session check refused: the session ended at this check, or another error.
enum Ended {
    Now,
    Error(ServiceError),
}

impl<E: Into<ServiceError>> From<E> for Ended {
    fn from(e: E) -> Self {
        Self::Error(e.into())
    }
}

/// Last-seen times are written at most this often (less often than a quarter of the idle
/// timeout), so a session check is usually a read.
const TOUCH_EVERY: i64 = 60;

/// A user authenticated by a live session. Only [`Service::authenticate`] makes one, so a use
/// case that takes it cannot run for an anonymous caller (`docs/ARCHITECTURE.md`,
/// Conventions 3).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub environment: Environment,
    pub session: SessionRecord,
    /// `authenticated_at + session_max_age`, under the environment's current setting.
    pub expires_at: i64,
}

impl Principal {
    /// The caller as the audit log names it.
    pub fn caller(&self, origin: crate::Origin) -> Caller {
        Caller {
            actor: crate::Actor::User(self.user.id.clone()),
            origin,
        }
    }
}

/// Why a session is over at `now`, under its environment's current rules, or `None` while it
/// lasts: past `session_max_age`, idle too long, or its user is no longer active.
pub(crate) fn end_reason(view: &SessionView, now: i64) -> Option<&'static str> {
    if view.user.state != UserState::Active {
        return Some("user_not_active");
    }
    let s = &view.session;
    policy::session_end(&view.environment, s.authenticated_at, s.last_seen_at, now).map(|end| {
        match end {
            SessionEnd::MaxAge => "max_age",
            SessionEnd::Idle => "idle",
        }
    })
}

impl<S: Store> Service<S> {
    /// Check a session token: unknown, ended, expired (absolute or idle) or belonging to a
    /// user who is no longer active is `unauthenticated`. The rules are read from the
    /// environment now, so a change of `session_max_age` applies at the next check.
    pub async fn authenticate(&self, token: &str) -> ServiceResult<Principal> {
        let (check, result) = self.check_session(token).await;
        self.metrics().session_check(check);
        result
    }

    /// [`Self::authenticate`], and how the check ended (for `/metrics`).
    async fn check_session(&self, token: &str) -> (SessionCheck, ServiceResult<Principal>) {
        let outcome = self.check_session_inner(token).await;
        let check = match &outcome {
            Ok(_) => SessionCheck::Valid,
            Err(Ended::Now) => SessionCheck::Expired,
            Err(Ended::Error(ServiceError::Unavailable(_) | ServiceError::Internal(_))) => {
                SessionCheck::Unavailable
            }
            Err(Ended::Error(_)) => SessionCheck::Unknown,
        };
        let result = outcome.map_err(|e| match e {
            Ended::Now => ServiceError::Unauthenticated,
            Ended::Error(e) => e,
        });
        (check, result)
    }

    async fn check_session_inner(&self, token: &str) -> Result<Principal, Ended> {
        let token = Token::parse(token).ok_or(ServiceError::Unauthenticated)?;
        // The store's futures are boxed: a store future (PostgreSQL's above all) is kilobytes,
        // and inline it would make every handler's future as large, copied on each move (a
        // tenth of a session check's instructions in the profile in `BENCHMARKS.md`).
        let view = Box::pin(self.store.session_by_token(&token.hash()))
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let now = self.now();
        if let Some(reason) = end_reason(&view, now) {
            self.end_expired_session(&view, reason).await?;
            return Err(Ended::Now);
        }
        let s = &view.session;
        // Often enough that the idle timeout is accurate to a quarter of itself.
        let every = view
            .environment
            .session_idle_timeout
            .map_or(TOUCH_EVERY, |idle| {
                (idle.as_secs_i64() / 4).clamp(1, TOUCH_EVERY)
            });
        if now - s.last_seen_at >= every {
            Box::pin(self.store.touch_session(&s.id, now)).await?;
        }
        let expires_at = policy::session_expires_at(&view.environment, s.authenticated_at);
        Ok(Principal {
            user: view.user,
            environment: view.environment,
            session: view.session,
            expires_at,
        })
    }

    /// End a session a check found over (`reason` from [`end_reason`]), with its audit record.
    pub(crate) async fn end_expired_session(
        &self,
        view: &SessionView,
        reason: &str,
    ) -> ServiceResult<()> {
        let record = self.audit(
            &view.environment.slug,
            &Caller::system(),
            AuditType::SessionEnded,
            Some(&view.user.id),
            Outcome::Success,
            Some(json!({"session": view.session.id, "reason": reason}).to_string()),
        );
        Box::pin(
            self.store
                .end_session(&view.user.id, &view.session.id, Some(&record)),
        )
        .await?;
        Ok(())
    }

    /// Delete expired rows (run periodically by the server). Sessions past their environment's
    /// max age, logins and setup links long expired, abandoned enrolments, settled counters.
    pub async fn purge_expired(&self) -> ServiceResult<u64> {
        Ok(self.store.purge_expired(self.now()).await?)
    }

    /// End the caller's session (`POST /logout`): the token is dead everywhere at once.
    pub async fn logout(&self, principal: &Principal, caller: &Caller) -> ServiceResult<()> {
        self.end_own_session(principal, &principal.session.id, caller, "logout")
            .await
            .map(|_| ())
    }

    /// The user's sessions.
    pub async fn my_sessions(&self, principal: &Principal) -> ServiceResult<Vec<SessionRecord>> {
        Ok(self.store.list_sessions(&principal.user.id).await?)
    }

    /// End one of the user's sessions (`DELETE /me/sessions/{id}`); 404 if not theirs.
    pub async fn end_my_session(
        &self,
        principal: &Principal,
        id: &str,
        caller: &Caller,
    ) -> ServiceResult<()> {
        if self
            .end_own_session(principal, id, caller, "ended_by_user")
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound("session"))
        }
    }

    async fn end_own_session(
        &self,
        principal: &Principal,
        id: &str,
        caller: &Caller,
        reason: &str,
    ) -> ServiceResult<bool> {
        let record = self.audit(
            &principal.environment.slug,
            caller,
            AuditType::SessionEnded,
            Some(&principal.user.id),
            Outcome::Success,
            Some(json!({"session": id, "reason": reason}).to_string()),
        );
        Ok(self
            .store
            .end_session(&principal.user.id, id, Some(&record))
            .await?)
    }
}
