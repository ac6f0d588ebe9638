//! What a login step decided, and writing it: a session at the end, a new or advanced login
//! transaction otherwise, in one `write_login`; and what a lost race is answered with.

use latchkey_core::{
    model::{Environment, User, UserState},
    policy,
    token::Token,
};
use serde_json::json;

use super::{IssuedSession, LoginAnswer};
use crate::{
    AuditRecord, AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    store::{
        CounterKey, LoginNext, LoginTxnView, LoginWrite, NewLoginTxn, NewSession, Store,
        StoreError, conflict,
    },
};
use latchkey_core::login::Step;

/// What a step decided, before it is written.
pub(crate) struct Decision {
    pub next: LoginNext,
    pub answer: LoginAnswer,
}

/// What the client hears when a step's write fails on `conflict`: a code another request
/// used first is answered like a wrong code (SECURITY T5).
pub(crate) fn conflict_error(conflict: &str) -> ServiceError {
    if conflict == conflict::SETUP_LINK {
        ServiceError::LinkExpired
    } else if conflict == conflict::TOTP_STEP || conflict == conflict::RECOVERY_CODE {
        ServiceError::InvalidCode
    } else {
        ServiceError::LoginExpired
    }
}

impl<S: Store> Service<S> {
    /// Turn a step into what to write and what to answer: a session when authenticated, a
    /// new or advanced login transaction otherwise.
    pub(crate) fn decide(
        &self,
        env: &Environment,
        user: &User,
        step: Step,
        amr: &str,
        txn: Option<&LoginTxnView>,
        caller: &Caller,
    ) -> ServiceResult<Decision> {
        let now = self.now();
        if step == Step::Authenticated {
            let token = Token::generate()?;
            let id = self.new_id();
            let session = NewSession {
                id: id.clone(),
                token_hash: token.hash(),
                user_id: user.id.clone(),
                env: env.slug.clone(),
                authenticated_at: now,
                amr: amr.to_owned(),
                created_at: now,
                ip: caller.origin.ip.clone(),
                user_agent: caller.origin.user_agent.clone(),
            };
            let expires_at = policy::session_expires_at(env, now);
            let mut user = user.clone();
            user.last_login_at = Some(now);
            if user.state == UserState::Invited {
                user.state = UserState::Active;
            }
            return Ok(Decision {
                next: LoginNext::Authenticate(session),
                answer: LoginAnswer {
                    status: step,
                    login_token: None,
                    session: Some(IssuedSession {
                        id,
                        token,
                        expires_at,
                    }),
                    user: Some(user),
                    recovery_codes: None,
                    device: None,
                },
            });
        }
        if txn.is_some() {
            // The same token carries the login to its next step; the caller echoes it.
            return Ok(Decision {
                next: LoginNext::Advance {
                    state: step,
                    amr: amr.to_owned(),
                },
                answer: LoginAnswer {
                    status: step,
                    login_token: None,
                    session: None,
                    user: None,
                    recovery_codes: None,
                    device: None,
                },
            });
        }
        let token = Token::generate()?;
        let txn = NewLoginTxn {
            id: self.new_id(),
            token_hash: token.hash(),
            user_id: user.id.clone(),
            env: env.slug.clone(),
            state: step,
            amr: amr.to_owned(),
            setup_token_id: None,
            mfa_demanded: false,
            created_at: now,
            expires_at: now.saturating_add(self.config.login_ttl.as_secs_i64()),
        };
        Ok(Decision {
            next: LoginNext::Begin(txn),
            answer: LoginAnswer {
                status: step,
                login_token: Some(token),
                session: None,
                user: None,
                recovery_codes: None,
                device: None,
            },
        })
    }

    /// Write a step, mapping lost races to what the client should hear.
    pub(crate) async fn write_step(&self, write: LoginWrite) -> ServiceResult<()> {
        self.store.write_login(&write).await.map_err(|e| match e {
            StoreError::Conflict(c) => conflict_error(c),
            other => other.into(),
        })
    }

    /// Write a step that consumes an attempt claimed under `key` whose factor was found right.
    /// Another request that accepted this step or used this code first (SECURITY T4) is answered
    /// and counted like any wrong code (T5); a login ended meanwhile is counted too, since the
    /// answer shows the factor was right. Either is recorded before it is answered.
    pub(crate) async fn write_claimed_step(
        &self,
        env: &Environment,
        user: &User,
        caller: &Caller,
        (key, claim): (&CounterKey, crate::store::Claim),
        write: LoginWrite,
    ) -> ServiceResult<()> {
        match self.write_step(write).await {
            Err(ServiceError::InvalidCode) => {
                self.fail_attempt(env, key, claim, Some(user), caller, "replay")
                    .await?;
                Err(ServiceError::InvalidCode)
            }
            Err(e @ ServiceError::LoginExpired) => Err(self
                .refused_after_claim(env, key, claim, user, caller, e)
                .await),
            other => other,
        }
    }

    pub(crate) fn login_succeeded(
        &self,
        env: &Environment,
        user: &User,
        amr: &str,
        caller: &Caller,
    ) -> AuditRecord {
        self.audit(
            &env.slug,
            caller,
            AuditType::LoginSucceeded,
            Some(&user.id),
            Outcome::Success,
            Some(json!({"amr": amr.split(' ').collect::<Vec<_>>()}).to_string()),
        )
    }
}
