//! The login of SPEC §3 over the store: the password step, setup links, the new-password step.
//! The second-factor steps are in [`mfa`].
//!
//! Every step's writes are one `write_login` (one transaction). A login transaction is found
//! by its token's hash and only within its environment; everything that would reveal whether
//! an email exists answers the same `invalid_credentials`, after the same argon2 work.

pub mod mfa;
mod outcome;

pub(crate) use outcome::conflict_error;

use latchkey_core::{
    login::{LoginFacts, Step, next_step},
    model::{EnvSlug, Environment, User, UserState, normalize_email},
    password::{self, Password, Verification},
    token::{RecoveryCode, Token},
};
use serde_json::json;

use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    metrics::{LoginResult, LoginStep, StepAnswer},
    store::{
        CounterKey, CounterKind, LoginNext, LoginTxnView, LoginWrite, NewLoginTxn, PasswordWrite,
        Store, StoreError,
    },
};

/// A session handed out once, at the end of a login.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub id: String,
    pub token: Token,
    pub expires_at: i64,
}

/// The answer to every login step: the next step, and what comes with it.
#[derive(Debug, Clone)]
pub struct LoginAnswer {
    pub status: Step,
    /// For the next step (all but `authenticated`).
    pub login_token: Option<Token>,
    /// With `authenticated`.
    pub session: Option<IssuedSession>,
    pub user: Option<User>,
    /// With the end of an MFA setup: shown once.
    pub recovery_codes: Option<Vec<RecoveryCode>>,
    /// With `authenticated`: the browser's new device cookie (it exempts this browser from the
    /// address throttle for this user; `check_ip`).
    pub device: Option<crate::DeviceCookie>,
}

impl StepAnswer for LoginAnswer {
    fn result(&self) -> LoginResult {
        if self.session.is_some() {
            LoginResult::Authenticated
        } else {
            LoginResult::NextStep
        }
    }
}

impl<S: Store> Service<S> {
    /// `POST /environments/{env}/login`: check the password, then open the next step.
    pub async fn login_password(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        email: &str,
        password: &str,
    ) -> ServiceResult<LoginAnswer> {
        self.login_password_demanding(caller, env, email, password, false)
            .await
    }

    /// [`Self::login_password`] for an application that needs a second factor (`mfa`:
    /// step-up, SPEC §9): the login then asks for one, or has one set up, under any policy.
    pub async fn login_password_demanding(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        email: &str,
        password: &str,
        mfa: bool,
    ) -> ServiceResult<LoginAnswer> {
        let r = self
            .login_password_step(caller, env, email, password, mfa)
            .await;
        let r = self.with_device(env, r);
        self.count_step(env, LoginStep::Password, r).await
    }

    /// `POST /environments/{env}/setup-link`: open a login at `password_change_required` from
    /// an invitation or reset link, voiding the logins this link opened before.
    pub async fn start_setup_link(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        token: &str,
    ) -> ServiceResult<LoginAnswer> {
        let r = self.start_setup_link_step(caller, env, token).await;
        self.count_step(env, LoginStep::SetupLink, r).await
    }

    /// `POST /environments/{env}/login/password`: choose the new password, then the next
    /// step. A user who has an authenticator must still use it (SECURITY A2).
    pub async fn login_new_password(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        new_password: &str,
    ) -> ServiceResult<LoginAnswer> {
        let r = self
            .login_new_password_step(caller, env, login_token, new_password)
            .await;
        let r = self.with_device(env, r);
        self.count_step(env, LoginStep::NewPassword, r).await
    }

    /// A completed login hands the browser a device cookie for its user.
    pub(crate) fn with_device(
        &self,
        env: &EnvSlug,
        result: ServiceResult<LoginAnswer>,
    ) -> ServiceResult<LoginAnswer> {
        result.map(|mut answer| {
            if answer.session.is_some()
                && let Some(user) = &answer.user
            {
                answer.device = Some(self.device_cookie(env, &user.id));
            }
            answer
        })
    }

    /// Count a step's outcome for `/metrics`, under `env` only once it is known to exist: a
    /// step of an unknown environment (its slug is the caller's word) is not counted.
    pub(crate) async fn count_step<T: StepAnswer>(
        &self,
        env: &EnvSlug,
        step: LoginStep,
        result: ServiceResult<T>,
    ) -> ServiceResult<T> {
        // An unknown environment is answered before anything else: nothing to count, nothing
        // to look up again.
        if matches!(result, Err(ServiceError::NotFound("environment"))) {
            return result;
        }
        let exists = self.metrics().counts_env(env)
            || matches!(self.store.get_environment(env).await, Ok(Some(_)));
        if exists {
            self.metrics().login(env, step, &result);
        }
        result
    }

    /// The password step (counted by [`Self::login_password`]).
    #[tracing::instrument(skip_all, fields(env = %env))]
    async fn login_password_step(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        email: &str,
        password: &str,
        mfa_demanded: bool,
    ) -> ServiceResult<LoginAnswer> {
        let env = self.environment(env).await?;
        let password = Password::parse(password)?;
        // No stored email has control characters; such input is malformed, not a guess.
        if email.chars().count() > 320
            || email.trim().is_empty()
            || email.chars().any(char::is_control)
        {
            return Err(ServiceError::Invalid("enter an email address".into()));
        }
        // The address throttle, unless this browser logged this user in before (its device
        // cookie). Without a valid cookie the refusal comes from one read, before the email is
        // looked up, for known and unknown emails alike.
        let throttled = self.throttled(&env, caller).await?;
        let exempt_user = match throttled {
            Some(t) => match self.device_user(&env.slug, caller) {
                Some(user) => Some((user, t)),
                None => return Err(self.refuse_throttled(&env, caller, t).await),
            },
            None => None,
        };
        let key = CounterKey {
            env: env.slug.clone(),
            kind: CounterKind::Password,
            subject: normalize_email(email),
        };
        let subject = self.store.login_subject(&env.slug, &key.subject).await?;
        if let Some((user, t)) = exempt_user
            && subject.as_ref().is_none_or(|s| s.user.id != user)
        {
            return Err(self.refuse_throttled(&env, caller, t).await);
        }
        // A user whose second factor is locked is refused before anything is evaluated or
        // counted. The same read is made for unknown emails, so timing tells nothing.
        let second = CounterKey {
            env: env.slug.clone(),
            kind: CounterKind::SecondFactor,
            subject: subject
                .as_ref()
                .map_or_else(String::new, |s| s.user.id.clone()),
        };
        self.refuse_if_locked(&second).await?;
        // A place for the hash before the attempt is counted: "busy" must not count against
        // the user's lockout. A throttled or locked caller hears 429 first, as SPEC §2 says.
        let admission = self.hashing.admit().await?;
        let claim = self.claim(&env, &key, caller).await?;
        let stored = subject.as_ref().and_then(|s| s.password_hash.clone());
        // One argon2 run for known and unknown emails alike (P7); a hash weaker than the
        // current parameters is replaced while the password is at hand (P5).
        let (verification, rehash) = admission
            .run(move |h| match stored {
                Some(phc) => match h.verify(&password, &phc) {
                    v @ Verification::Match { needs_rehash: true } => (v, h.hash(&password).ok()),
                    v => (v, None),
                },
                None => (h.verify_dummy(&password), None),
            })
            .await?;
        let subject = match (subject, verification) {
            (Some(s), Verification::Match { .. }) if s.user.state != UserState::Disabled => s,
            (s, _) => {
                let user = s.map(|s| s.user);
                self.fail_attempt(
                    &env,
                    &key,
                    claim,
                    user.as_ref(),
                    caller,
                    "invalid_credentials",
                )
                .await?;
                return Err(ServiceError::InvalidCredentials);
            }
        };
        let facts = LoginFacts {
            policy: env.mfa_policy,
            password_change_required: subject.password_change_required,
            has_authenticator: subject.user.mfa_enrolled,
            mfa_enforced: subject.user.mfa_enforced,
            second_factor_done: false,
            mfa_demanded,
        };
        let mut decision =
            self.decide(&env, &subject.user, next_step(facts), "pwd", None, caller)?;
        if let LoginNext::Begin(txn) = &mut decision.next {
            txn.mfa_demanded = mfa_demanded;
        }
        let mut audit = Vec::new();
        if decision.answer.status == Step::Authenticated {
            audit.push(self.login_succeeded(&env, &subject.user, "pwd", caller));
        }
        self.store
            .write_login(&LoginWrite {
                now: self.now(),
                user_id: subject.user.id.clone(),
                from: None,
                next: decision.next,
                password: None,
                rehash,
                proof: None,
                new_authenticator: None,
                new_recovery_codes: None,
                reset_counters: vec![key],
                audit,
            })
            .await?;
        Ok(decision.answer)
    }

    /// Opening a setup link (counted by [`Self::start_setup_link`]).
    #[tracing::instrument(skip_all, fields(env = %env))]
    async fn start_setup_link_step(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        token: &str,
    ) -> ServiceResult<LoginAnswer> {
        let env = self.environment(env).await?;
        self.check_ip(&env, caller, None).await?;
        let now = self.now();
        let view = match Token::parse(token) {
            Some(t) => self
                .store
                .setup_token(&t.hash(), now)
                .await?
                .filter(|v| v.env == env.slug),
            None => None,
        };
        let Some(view) = view else {
            if let Some(ip) = &caller.origin.ip {
                let record = self.audit(
                    &env.slug,
                    caller,
                    AuditType::LoginFailed,
                    None,
                    Outcome::Failure,
                    Some(json!({"reason": "link_expired"}).to_string()),
                );
                self.store
                    .record_ip_failure(&env.slug, ip, now, Some(&record))
                    .await?;
            }
            return Err(ServiceError::LinkExpired);
        };
        // A locked user cannot start a login this way either (SECURITY L5).
        self.refuse_if_user_locked(&env, &view.user_id, &view.email_normalized)
            .await?;
        let login_token = Token::generate()?;
        let txn = NewLoginTxn {
            id: self.new_id(),
            token_hash: login_token.hash(),
            user_id: view.user_id,
            env: env.slug.clone(),
            state: Step::PasswordChangeRequired,
            amr: String::new(),
            setup_token_id: Some(view.id),
            mfa_demanded: false,
            created_at: now,
            expires_at: now
                .saturating_add(self.config.login_ttl.as_secs_i64())
                .min(view.expires_at.max(now + 1)),
        };
        self.store
            .begin_setup_login(&txn, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::LinkExpired,
                other => other.into(),
            })?;
        Ok(LoginAnswer {
            status: Step::PasswordChangeRequired,
            login_token: Some(login_token),
            session: None,
            user: None,
            recovery_codes: None,
            device: None,
        })
    }

    /// The new-password step (counted by [`Self::login_new_password`]).
    #[tracing::instrument(skip_all, fields(env = %env))]
    async fn login_new_password_step(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        new_password: &str,
    ) -> ServiceResult<LoginAnswer> {
        let txn = self
            .login_txn(caller, env, login_token, Step::PasswordChangeRequired)
            .await?;
        let password = Password::parse(new_password)?;
        let env = &txn.environment;
        let user = &txn.user;
        let min = password::min_chars(env.mfa_policy, user.mfa_enforced);
        password::check_new_password(
            &password,
            min,
            &[
                user.email.as_str(),
                user.email.local_part(),
                env.slug.as_str(),
                env.name.as_str(),
            ],
        )?;
        let hash = self.hashing.run(move |h| h.hash(&password)).await??;
        let facts = LoginFacts {
            policy: env.mfa_policy,
            password_change_required: false,
            has_authenticator: user.mfa_enrolled,
            mfa_enforced: user.mfa_enforced,
            second_factor_done: false,
            mfa_demanded: txn.mfa_demanded,
        };
        let decision = self.decide(env, user, next_step(facts), "pwd", Some(&txn), caller)?;
        let via = if txn.setup_token_id.is_some() {
            "setup_link"
        } else {
            "login"
        };
        let mut audit = vec![self.audit(
            &env.slug,
            caller,
            AuditType::PasswordChanged,
            Some(&user.id),
            Outcome::Success,
            Some(json!({"via": via}).to_string()),
        )];
        if decision.answer.status == Step::Authenticated {
            audit.push(self.login_succeeded(env, user, "pwd", caller));
        }
        self.write_step(LoginWrite {
            now: self.now(),
            user_id: user.id.clone(),
            from: Some((txn.id.clone(), Step::PasswordChangeRequired)),
            next: decision.next,
            password: Some(PasswordWrite {
                hash,
                setup_token_id: txn.setup_token_id.clone(),
            }),
            rehash: None,
            proof: None,
            new_authenticator: None,
            new_recovery_codes: None,
            reset_counters: Vec::new(),
            audit,
        })
        .await?;
        let mut answer = decision.answer;
        if answer.status != Step::Authenticated {
            answer.login_token = Token::parse(login_token);
        }
        Ok(answer)
    }

    /// The login transaction behind `login_token`, in `env`, at `expected`.
    pub(crate) async fn login_txn(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        expected: Step,
    ) -> ServiceResult<LoginTxnView> {
        let token = Token::parse(login_token).ok_or(ServiceError::LoginExpired)?;
        let now = self.now();
        let txn = self
            .store
            .login_txn(&token.hash())
            .await?
            .filter(|t| &t.environment.slug == env && t.user.state != UserState::Disabled)
            .ok_or(ServiceError::LoginExpired)?;
        self.check_ip(&txn.environment, caller, Some(&txn.user.id))
            .await?;
        // While either of the user's counters is locked, every step answers 429 without
        // evaluating anything; a lock expired the transaction, so afterwards it is
        // `login_expired` and the password is needed again (SECURITY L1, L4).
        self.refuse_if_user_locked(&txn.environment, &txn.user.id, &txn.user.email.normalized())
            .await?;
        if txn.expires_at <= now {
            return Err(ServiceError::LoginExpired);
        }
        if txn.state != expected {
            return Err(ServiceError::WrongStep(txn.state.as_str()));
        }
        Ok(txn)
    }

    /// 429 while the user's password or second-factor counter is locked; reads only.
    pub(crate) async fn refuse_if_user_locked(
        &self,
        env: &Environment,
        user_id: &str,
        email_normalized: &str,
    ) -> ServiceResult<()> {
        for (kind, subject) in [
            (CounterKind::SecondFactor, user_id),
            (CounterKind::Password, email_normalized),
        ] {
            self.refuse_if_locked(&CounterKey {
                env: env.slug.clone(),
                kind,
                subject: subject.to_owned(),
            })
            .await?;
        }
        Ok(())
    }
}
