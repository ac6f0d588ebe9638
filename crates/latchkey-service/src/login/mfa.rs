//! The second-factor steps of a login: a code (TOTP or recovery), and setting up a first
//! authenticator inside the login (offer a secret, confirm it with a code).

use latchkey_core::{
    login::Step,
    model::{EnvSlug, Environment, User},
    totp::{self, TotpSecret},
};
use serde_json::json;

use super::LoginAnswer;
use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    factors::{
        FactorInput, MfaOffer, ParsedFactor, Refusal, check_code, open_authenticators, parse_code,
        parse_label,
    },
    metrics::LoginStep,
    store::{
        AttemptFacts, CounterKey, Judge, LoginWrite, NewAuthenticator, StepAttempt, StepOutcome,
        Store,
    },
};

/// Setting up a first authenticator inside a login is only for a user who still has none and
/// whom the policy still asks to (SECURITY A2, E5): another login or the account page may have
/// enrolled one, or the policy may have changed, since this login began.
fn ensure_setup_still_due(txn: &crate::store::LoginTxnView) -> ServiceResult<()> {
    let facts = latchkey_core::login::LoginFacts {
        policy: txn.environment.mfa_policy,
        password_change_required: false,
        has_authenticator: txn.user.mfa_enrolled,
        mfa_enforced: txn.user.mfa_enforced,
        second_factor_done: false,
        mfa_demanded: txn.mfa_demanded,
    };
    if latchkey_core::login::next_step(facts) == Step::MfaSetupRequired {
        Ok(())
    } else {
        Err(ServiceError::LoginExpired)
    }
}

/// What a pending secret in a login transaction is bound to.
fn pending_aad(txn_id: &str) -> String {
    format!("login:{txn_id}")
}

impl<S: Store> Service<S> {
    /// `POST /environments/{env}/login/mfa`: a TOTP code or a recovery code.
    pub async fn login_mfa(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        factor: &FactorInput,
    ) -> ServiceResult<LoginAnswer> {
        let r = self.login_mfa_step(caller, env, login_token, factor).await;
        let r = self.with_device(env, r);
        self.count_step(env, LoginStep::SecondFactor, r).await
    }

    /// `POST /environments/{env}/login/mfa/setup`: offer a fresh 160-bit secret. Asking again
    /// in the same login offers the same secret, so a reloaded page shows the QR code scanned.
    pub async fn login_mfa_setup(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
    ) -> ServiceResult<MfaOffer> {
        let r = self.login_mfa_setup_step(caller, env, login_token).await;
        self.count_step(env, LoginStep::MfaSetup, r).await
    }

    /// `POST /environments/{env}/login/mfa/setup/confirm`: a code from the offered secret
    /// makes it the user's first authenticator (its step burnt), hands out ten recovery codes
    /// once, and ends the login.
    pub async fn login_mfa_confirm(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        code: &latchkey_core::SecretString,
        label: &str,
    ) -> ServiceResult<LoginAnswer> {
        let r = self
            .login_mfa_confirm_step(caller, env, login_token, code, label)
            .await;
        let r = self.with_device(env, r);
        self.count_step(env, LoginStep::MfaConfirm, r).await
    }

    /// The second-factor step (counted by [`Self::login_mfa`]).
    #[tracing::instrument(skip_all, fields(env = %env))]
    async fn login_mfa_step(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        factor: &FactorInput,
    ) -> ServiceResult<LoginAnswer> {
        let txn = self
            .login_txn(caller, env, login_token, Step::MfaRequired)
            .await?;
        let (env, user) = (&txn.environment, &txn.user);
        let parsed = self.parse_factor(user, factor).await?;
        let key = crate::factors::second_factor_key(env, user);
        let method = if matches!(parsed, ParsedFactor::RecoveryCode(_)) {
            "rec"
        } else {
            "otp"
        };
        let amr = format!(
            "{} {method}",
            if txn.amr.is_empty() { "pwd" } else { &txn.amr }
        );
        let decision = self.decide(env, user, Step::Authenticated, &amr, Some(&txn), caller)?;
        let mut audit = vec![self.login_succeeded(env, user, &amr, caller)];
        if method == "rec" {
            audit.push(self.audit(
                &env.slug,
                caller,
                AuditType::RecoveryCodeUsed,
                Some(&user.id),
                Outcome::Success,
                None,
            ));
        }
        let mut write = LoginWrite {
            now: self.now(),
            user_id: user.id.clone(),
            from: Some((txn.id.clone(), Step::MfaRequired)),
            next: decision.next,
            password: None,
            rehash: None,
            proof: None,
            new_authenticator: None,
            new_recovery_codes: None,
            reset_counters: vec![key.clone()],
            audit,
        };
        match &parsed {
            ParsedFactor::Code {
                code,
                authenticators,
            } => {
                let opened = open_authenticators(&self.keyring, authenticators)?;
                let (code, now, window) = (*code, self.now(), env.totp_window);
                let judge = move || {
                    write.proof =
                        Some(check_code(&opened, code, now, window).map_err(Refusal::as_str)?);
                    Ok(write)
                };
                self.attempt_code_step(env, user, caller, key, Box::new(judge))
                    .await?;
            }
            // A recovery code is looked up before it is consumed, which a judge inside the
            // store's transaction cannot do: claimed, checked and settled in three calls.
            ParsedFactor::RecoveryCode(_) => {
                let claim = self.claim(env, &key, caller).await?;
                match self.evaluate_factor(env, user, &parsed).await? {
                    Ok(proof) => write.proof = Some(proof),
                    Err(refusal) => {
                        self.fail_attempt(env, &key, claim, Some(user), caller, refusal.as_str())
                            .await?;
                        return Err(ServiceError::InvalidCode);
                    }
                }
                self.write_claimed_step(env, user, caller, (&key, claim), write)
                    .await?;
            }
        }
        Ok(decision.answer)
    }

    /// Claim an attempt on `key`, judge it with `judge` and settle it, in one call to the
    /// store (one transaction on SQLite): the step's write if the code is right; otherwise a
    /// counted failure (SECURITY L1), also when the write loses a race for the step (T4, T5)
    /// or the login ended meanwhile.
    async fn attempt_code_step(
        &self,
        env: &Environment,
        user: &User,
        caller: &Caller,
        key: CounterKey,
        judge: Judge,
    ) -> ServiceResult<()> {
        let attempt = StepAttempt {
            failure_audit: self.failure_audit(env, &key, Some(&user.id), caller),
            facts: AttemptFacts {
                key: key.clone(),
                settings: env.lockout,
                user_id: user.id.clone(),
                ip: caller.origin.ip.clone(),
                now: self.now(),
            },
            judge,
        };
        match self.store.attempt_step(attempt).await? {
            StepOutcome::Written => Ok(()),
            StepOutcome::Unsettled(error) => Err(crate::StoreError::Unavailable(error).into()),
            StepOutcome::Refused { retry_after } => {
                Err(self.refused_claim(env, &key, caller, retry_after).await)
            }
            StepOutcome::Failed {
                conflict,
                locked_until,
                ..
            } => {
                if locked_until.is_some() {
                    self.locked(env, &key);
                }
                Err(conflict.map_or(ServiceError::InvalidCode, super::conflict_error))
            }
        }
    }

    /// Offering a secret (counted by [`Self::login_mfa_setup`]).
    #[tracing::instrument(skip_all, fields(env = %env))]
    async fn login_mfa_setup_step(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
    ) -> ServiceResult<MfaOffer> {
        let txn = self
            .login_txn(caller, env, login_token, Step::MfaSetupRequired)
            .await?;
        ensure_setup_still_due(&txn)?;
        let aad = pending_aad(&txn.id);
        let secret = if let Some(sealed) = &txn.pending_secret_sealed {
            crate::factors::open_secret(&self.keyring, sealed, &aad)?
        } else {
            let secret = TotpSecret::generate()?;
            let sealed = self
                .keyring
                .seal(secret.expose(), aad.as_bytes())
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            match self
                .store
                .set_pending_secret(&txn.id, &sealed, self.now())
                .await
            {
                Ok(()) => secret,
                // Another request offered one first: show that one, so both see the same.
                Err(crate::StoreError::Conflict(_)) => {
                    let token = latchkey_core::token::Token::parse(login_token)
                        .ok_or(ServiceError::LoginExpired)?;
                    let again = self
                        .store
                        .login_txn(&token.hash())
                        .await?
                        .ok_or(ServiceError::LoginExpired)?;
                    let sealed = again
                        .pending_secret_sealed
                        .ok_or(ServiceError::LoginExpired)?;
                    crate::factors::open_secret(&self.keyring, &sealed, &aad)?
                }
                Err(e) => return Err(e.into()),
            }
        };
        Self::offer(&txn.environment, &txn.user, &secret)
    }

    /// Confirming the first authenticator (counted by [`Self::login_mfa_confirm`]).
    #[tracing::instrument(skip_all, fields(env = %env))]
    async fn login_mfa_confirm_step(
        &self,
        caller: &Caller,
        env: &EnvSlug,
        login_token: &str,
        code: &latchkey_core::SecretString,
        label: &str,
    ) -> ServiceResult<LoginAnswer> {
        let txn = self
            .login_txn(caller, env, login_token, Step::MfaSetupRequired)
            .await?;
        ensure_setup_still_due(&txn)?;
        let (env, user) = (&txn.environment, &txn.user);
        let sealed = txn.pending_secret_sealed.as_ref().ok_or_else(|| {
            ServiceError::Invalid("ask for a secret first (login/mfa/setup)".into())
        })?;
        let label = parse_label(label)?;
        let params = totp::TotpParams::default();
        let code = parse_code(code, &[params.digits()])?;
        let key = crate::factors::second_factor_key(env, user);
        let secret = crate::factors::open_secret(&self.keyring, sealed, &pending_aad(&txn.id))?;
        let authenticator_id = self.new_id();
        let sealed = self
            .keyring
            .seal(secret.expose(), authenticator_id.as_bytes())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (codes, stored_codes) = self.mint_recovery_codes(&user.id)?;
        let amr = format!("{} otp", if txn.amr.is_empty() { "pwd" } else { &txn.amr });
        let decision = self.decide(env, user, Step::Authenticated, &amr, Some(&txn), caller)?;
        let audit = vec![
            self.audit(
                &env.slug,
                caller,
                AuditType::MfaEnrolled,
                Some(&user.id),
                Outcome::Success,
                Some(json!({"authenticator": authenticator_id, "label": label}).to_string()),
            ),
            self.login_succeeded(env, user, &amr, caller),
        ];
        let now = self.now();
        let mut authenticator = NewAuthenticator {
            id: authenticator_id,
            user_id: user.id.clone(),
            label,
            secret_sealed: sealed,
            params,
            confirmed_at: Some(now),
            last_step: None,
            created_at: now,
        };
        let mut write = LoginWrite {
            now,
            user_id: user.id.clone(),
            from: Some((txn.id.clone(), Step::MfaSetupRequired)),
            next: decision.next,
            password: None,
            rehash: None,
            proof: None,
            new_authenticator: None,
            new_recovery_codes: Some(stored_codes),
            reset_counters: vec![key.clone()],
            audit,
        };
        let window = env.totp_window;
        // The confirming code's step is burnt with the new authenticator (SECURITY T4).
        let judge = move || {
            let step =
                totp::verify(&secret, &params, &code, now, None, window).ok_or("invalid_code")?;
            authenticator.last_step = Some(step);
            write.new_authenticator = Some(authenticator);
            Ok(write)
        };
        self.attempt_code_step(env, user, caller, key, Box::new(judge))
            .await?;
        let mut answer = decision.answer;
        answer.recovery_codes = Some(codes);
        if let Some(u) = answer.user.as_mut() {
            u.mfa_enrolled = true;
        }
        Ok(answer)
    }
}
