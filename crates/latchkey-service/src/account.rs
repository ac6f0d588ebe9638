//! The user's own account (SPEC §5.2): password change, MFA status, authenticators (add,
//! confirm, remove) and recovery codes. Adding or removing an authenticator and regenerating
//! recovery codes need a fresh second factor (SECURITY E5) — the current password for a user's
//! first authenticator — checked under the same lockout counters as a login.

use latchkey_core::{
    SecretString,
    model::{Environment, MfaPolicy, User},
    password::{self, Password, Verification},
    token::RecoveryCode,
    totp::{self, TotpSecret},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    factors::{FactorInput, Fresh, MfaOffer, open_secret, parse_code, parse_label},
    session::Principal,
    store::{Confirmation, CounterKey, CounterKind, NewAuthenticator, Store, conflict},
};

/// A pending enrolment must be confirmed within this time.
const ENROLMENT_TTL: i64 = 15 * 60;

/// An authenticator as the user sees it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct AuthenticatorInfo {
    pub id: String,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// `GET /me/mfa`.
#[derive(Debug, Clone, Serialize)]
pub struct MfaStatus {
    pub authenticators: Vec<AuthenticatorInfo>,
    pub recovery_codes_remaining: u32,
}

/// What proves the user is present for an account change.
#[derive(Debug, Clone)]
pub enum Reauth {
    Factor(FactorInput),
    Password(SecretString),
}

/// Whether the policy forbids removing the user's last authenticator.
fn must_keep_one(env: &Environment, user: &User) -> bool {
    env.mfa_policy == MfaPolicy::Required || user.mfa_enforced
}

impl<S: Store> Service<S> {
    /// `POST /me/password`: needs the current password (counted like a login); ends the
    /// user's other sessions and pending logins. Returns how many sessions ended.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn change_my_password(
        &self,
        principal: &Principal,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> ServiceResult<u64> {
        let (env, user) = (&principal.environment, &principal.user);
        let new = Password::parse(new)?;
        let min = password::min_chars(env.mfa_policy, user.mfa_enforced);
        password::check_new_password(
            &new,
            min,
            &[
                user.email.as_str(),
                user.email.local_part(),
                env.slug.as_str(),
                env.name.as_str(),
            ],
        )?;
        self.check_password(principal, caller, current).await?;
        let hash = self.hashing.run(move |h| h.hash(&new)).await??;
        let record = self.audit(
            &env.slug,
            caller,
            AuditType::PasswordChanged,
            Some(&user.id),
            Outcome::Success,
            Some(json!({"via": "account"}).to_string()),
        );
        Ok(self
            .store
            .change_password(
                &user.id,
                &hash,
                Some(&principal.session.id),
                self.now(),
                &record,
            )
            .await?)
    }

    /// Check the current password under the password counter (401 and counted when wrong).
    async fn check_password(
        &self,
        principal: &Principal,
        caller: &Caller,
        text: &str,
    ) -> ServiceResult<()> {
        let (env, user) = (&principal.environment, &principal.user);
        let password = Password::parse(text)?;
        self.check_ip(env, caller, Some(&user.id)).await?;
        let key = CounterKey {
            env: env.slug.clone(),
            kind: CounterKind::Password,
            subject: user.email.normalized(),
        };
        // A place for the hash first: "busy" must not count against the user's lockout.
        let admission = self.hashing.admit().await?;
        let claim = self.claim(env, &key, caller).await?;
        let stored = self
            .store
            .login_subject(&env.slug, &key.subject)
            .await?
            .and_then(|s| s.password_hash);
        let verification = admission
            .run(move |h| match stored {
                Some(phc) => h.verify(&password, &phc),
                None => h.verify_dummy(&password),
            })
            .await?;
        if matches!(verification, Verification::Match { .. }) {
            self.store.reset_counter(&key).await?;
            Ok(())
        } else {
            self.fail_attempt(env, &key, claim, Some(user), caller, "invalid_credentials")
                .await?;
            Err(ServiceError::InvalidCredentials)
        }
    }

    /// `GET /me/mfa`.
    pub async fn my_mfa(&self, principal: &Principal) -> ServiceResult<MfaStatus> {
        let authenticators = self
            .store
            .list_authenticators(&principal.user.id)
            .await?
            .into_iter()
            .filter(|a| a.confirmed_at.is_some())
            .map(|a| AuthenticatorInfo {
                id: a.id,
                label: a.label,
                created_at: a.created_at,
                last_used_at: a.last_used_at,
            })
            .collect();
        let recovery_codes_remaining = self
            .store
            .recovery_codes_remaining(&principal.user.id)
            .await?;
        Ok(MfaStatus {
            authenticators,
            recovery_codes_remaining,
        })
    }

    /// `POST /me/mfa/totp`: start adding an authenticator. A user who has one proves presence
    /// with a code or recovery code from it; a user who has none, with the current password.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn begin_enrolment(
        &self,
        principal: &Principal,
        caller: &Caller,
        reauth: &Reauth,
    ) -> ServiceResult<(String, MfaOffer)> {
        let (env, user) = (&principal.environment, &principal.user);
        if env.mfa_policy == MfaPolicy::Off {
            return Err(ServiceError::Refused {
                code: "mfa_not_allowed",
                message: format!("MFA is off in `{}`", env.slug),
            });
        }
        if let Some(fresh) = self.reauthenticate(principal, caller, reauth).await? {
            let consumed = self
                .store
                .consume_proof(&user.id, &fresh.proof, self.now())
                .await;
            self.settle(env, user, caller, fresh.claimed(), consumed)
                .await?;
        }
        let secret = TotpSecret::generate()?;
        let id = self.new_id();
        let sealed = self
            .keyring
            .seal(secret.expose(), id.as_bytes())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let offer = Self::offer(env, user, &secret)?;
        self.store
            .insert_authenticator(&NewAuthenticator {
                id: id.clone(),
                user_id: user.id.clone(),
                label: "New authenticator".into(),
                secret_sealed: sealed,
                params: offer.params,
                confirmed_at: None,
                last_step: None,
                created_at: self.now(),
            })
            .await?;
        Ok((id, offer))
    }

    /// Prove presence: the second factor when the user has one, else the password.
    async fn reauthenticate(
        &self,
        principal: &Principal,
        caller: &Caller,
        reauth: &Reauth,
    ) -> ServiceResult<Option<Fresh>> {
        match (principal.user.mfa_enrolled, reauth) {
            (true, Reauth::Factor(f)) => Ok(Some(
                self.fresh_factor(&principal.environment, &principal.user, f, caller)
                    .await?,
            )),
            // The request is well formed; the account calls for another proof: 409.
            (true, Reauth::Password(_)) => Err(ServiceError::Refused {
                code: "factor_required",
                message: "you have an authenticator: give a code from it (`code`) or a \
                          recovery code (`recovery_code`)"
                    .into(),
            }),
            (false, Reauth::Password(p)) => self
                .check_password(principal, caller, p.expose())
                .await
                .map(|()| None),
            (false, Reauth::Factor(_)) => Err(ServiceError::Refused {
                code: "password_required",
                message: "you have no authenticator yet: give your current password \
                          (`current_password`)"
                    .into(),
            }),
        }
    }

    /// `POST /me/mfa/totp/{id}/confirm`: a code from the new authenticator activates it (its
    /// step burnt). The first authenticator comes with ten recovery codes, shown once.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn confirm_enrolment(
        &self,
        principal: &Principal,
        caller: &Caller,
        id: &str,
        code: &SecretString,
        label: &str,
    ) -> ServiceResult<Option<Vec<RecoveryCode>>> {
        let (env, user) = (&principal.environment, &principal.user);
        let label = parse_label(label)?;
        let pending = self
            .store
            .list_authenticators(&user.id)
            .await?
            .into_iter()
            .find(|a| {
                a.id == id && a.confirmed_at.is_none() && a.created_at + ENROLMENT_TTL > self.now()
            })
            .ok_or(ServiceError::NotFound("enrolment"))?;
        let code = parse_code(code, &[pending.params.digits()])?;
        let key = crate::factors::second_factor_key(env, user);
        let claim = self.claim(env, &key, caller).await?;
        let secret = open_secret(&self.keyring, &pending.secret_sealed, &pending.id)?;
        let Some(step) = totp::verify(
            &secret,
            &pending.params,
            &code,
            self.now(),
            None,
            env.totp_window,
        ) else {
            self.fail_attempt(env, &key, claim, Some(user), caller, "invalid_code")
                .await?;
            return Err(ServiceError::InvalidCode);
        };
        let first = !user.mfa_enrolled;
        let minted = if first {
            Some(self.mint_recovery_codes(&user.id)?)
        } else {
            None
        };
        let audit = [self.audit(
            &env.slug,
            caller,
            AuditType::MfaEnrolled,
            Some(&user.id),
            Outcome::Success,
            Some(json!({"authenticator": id, "label": label}).to_string()),
        )];
        let confirmed = self
            .store
            .confirm_authenticator(&Confirmation {
                user_id: user.id.clone(),
                authenticator_id: id.to_owned(),
                label: label.clone(),
                step,
                recovery_codes: minted.as_ref().map(|(_, stored)| stored.clone()),
                now: self.now(),
                audit: Vec::from(audit),
            })
            .await;
        self.settle(env, user, caller, (&key, claim), confirmed)
            .await?;
        Ok(minted.map(|(shown, _)| shown))
    }

    /// `DELETE /me/mfa/totp/{id}`: needs a fresh second factor; the last authenticator stays
    /// where the policy requires MFA or the user is `mfa_enforced`.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn remove_my_authenticator(
        &self,
        principal: &Principal,
        caller: &Caller,
        id: &str,
        factor: &FactorInput,
    ) -> ServiceResult<()> {
        let (env, user) = (&principal.environment, &principal.user);
        let keep_one = must_keep_one(env, user);
        let confirmed: Vec<_> = self
            .store
            .list_authenticators(&user.id)
            .await?
            .into_iter()
            .filter(|a| a.confirmed_at.is_some())
            .collect();
        if !confirmed.iter().any(|a| a.id == id) {
            return Err(ServiceError::NotFound("authenticator"));
        }
        if keep_one && confirmed.len() == 1 {
            return Err(last_one_refusal());
        }
        let fresh = self.fresh_factor(env, user, factor, caller).await?;
        let record = self.audit(
            &env.slug,
            caller,
            AuditType::MfaRemoved,
            Some(&user.id),
            Outcome::Success,
            Some(json!({"authenticator": id}).to_string()),
        );
        let removed = self
            .store
            .remove_authenticator(&user.id, id, keep_one, &fresh.proof, self.now(), &record)
            .await;
        match self
            .settle(env, user, caller, fresh.claimed(), removed)
            .await
        {
            Err(ServiceError::Conflict(c)) if c == conflict::LAST_AUTHENTICATOR => {
                Err(last_one_refusal())
            }
            Err(ServiceError::NotFound(_)) => Err(ServiceError::NotFound("authenticator")),
            other => other,
        }
    }

    /// `POST /me/recovery-codes`: a new set of ten with a fresh second factor; the old void.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        caller: &Caller,
        factor: &FactorInput,
    ) -> ServiceResult<Vec<RecoveryCode>> {
        let (env, user) = (&principal.environment, &principal.user);
        if !user.mfa_enrolled {
            return Err(ServiceError::Refused {
                code: "mfa_not_enrolled",
                message: "set up an authenticator first".into(),
            });
        }
        let fresh = self.fresh_factor(env, user, factor, caller).await?;
        let (shown, stored) = self.mint_recovery_codes(&user.id)?;
        let record = self.audit(
            &env.slug,
            caller,
            AuditType::RecoveryCodesRegenerated,
            Some(&user.id),
            Outcome::Success,
            None,
        );
        let replaced = self
            .store
            .replace_recovery_codes(&user.id, &stored, &fresh.proof, self.now(), &record)
            .await;
        self.settle(env, user, caller, fresh.claimed(), replaced)
            .await?;
        Ok(shown)
    }
}

fn last_one_refusal() -> ServiceError {
    ServiceError::Refused {
        code: "mfa_required_by_policy",
        message: "this is your last authenticator and MFA is required for you; add another before removing it".into(),
    }
}
