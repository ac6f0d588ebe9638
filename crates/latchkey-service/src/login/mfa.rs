//! The second-factor steps of a login: a code (TOTP or recovery), and setting up a first
//! authenticator inside the login (offer a secret, confirm it with a code).

use latchkey_core::{
    login::Step,
    model::EnvSlug,
    totp::{self, TotpSecret},
};
use serde_json::json;

use super::LoginAnswer;
use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    factors::{FactorInput, MfaOffer, ParsedFactor, parse_code, parse_label},
    store::{LoginWrite, NewAuthenticator, Proof, Store},
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
    #[tracing::instrument(skip_all, fields(env = %env))]
    pub async fn login_mfa(
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
        let claim = self.claim(env, &key, caller).await?;
        let proof = match self.evaluate_factor(env, user, &parsed).await? {
            Ok(proof) => proof,
            Err(refusal) => {
                self.fail_attempt(env, &key, claim, Some(user), caller, refusal.as_str())
                    .await?;
                return Err(ServiceError::InvalidCode);
            }
        };
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
        if let Proof::RecoveryCode { .. } = proof {
            audit.push(self.audit(
                &env.slug,
                caller,
                AuditType::RecoveryCodeUsed,
                Some(&user.id),
                Outcome::Success,
                None,
            ));
        }
        let write = LoginWrite {
            now: self.now(),
            user_id: user.id.clone(),
            from: Some((txn.id.clone(), Step::MfaRequired)),
            next: decision.next,
            password: None,
            rehash: None,
            proof: Some(proof),
            new_authenticator: None,
            new_recovery_codes: None,
            reset_counters: vec![key.clone()],
            audit,
        };
        self.write_claimed_step(env, user, caller, (&key, claim), write)
            .await?;
        Ok(decision.answer)
    }

    /// `POST /environments/{env}/login/mfa/setup`: offer a fresh 160-bit secret. Asking again
    /// in the same login offers the same secret, so a reloaded page shows the QR code scanned.
    #[tracing::instrument(skip_all, fields(env = %env))]
    pub async fn login_mfa_setup(
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
                        .login_txn(&token.hash(), self.now())
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

    /// `POST /environments/{env}/login/mfa/setup/confirm`: a code from the offered secret
    /// makes it the user's first authenticator (its step burnt), hands out ten recovery codes
    /// once, and ends the login.
    #[tracing::instrument(skip_all, fields(env = %env))]
    pub async fn login_mfa_confirm(
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
        let claim = self.claim(env, &key, caller).await?;
        let secret = crate::factors::open_secret(&self.keyring, sealed, &pending_aad(&txn.id))?;
        let Some(step) = totp::verify(&secret, &params, &code, self.now(), None, env.totp_window)
        else {
            self.fail_attempt(env, &key, claim, Some(user), caller, "invalid_code")
                .await?;
            return Err(ServiceError::InvalidCode);
        };
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
        let write = LoginWrite {
            now: self.now(),
            user_id: user.id.clone(),
            from: Some((txn.id.clone(), Step::MfaSetupRequired)),
            next: decision.next,
            password: None,
            rehash: None,
            proof: None,
            new_authenticator: Some(NewAuthenticator {
                id: authenticator_id,
                user_id: user.id.clone(),
                label,
                secret_sealed: sealed,
                params,
                confirmed_at: Some(self.now()),
                last_step: Some(step),
                created_at: self.now(),
            }),
            new_recovery_codes: Some(stored_codes),
            reset_counters: vec![key.clone()],
            audit,
        };
        self.write_claimed_step(env, user, caller, (&key, claim), write)
            .await?;
        let mut answer = decision.answer;
        answer.recovery_codes = Some(codes);
        if let Some(u) = answer.user.as_mut() {
            u.mfa_enrolled = true;
        }
        Ok(answer)
    }
}
