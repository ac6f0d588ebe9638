//! Second factors, shared by the login and the user's own account: parsing what the user
//! typed, checking it under the lockout counter, offering a new TOTP secret, and minting
//! recovery codes. Nothing here logs; codes and secrets stay in their redacting types.

use latchkey_core::{
    SecretString,
    model::{Environment, User},
    sealing::Keyring,
    token::RecoveryCode,
    totp::{self, Digits, TotpCode, TotpParams, TotpSecret},
};
use serde_json::json;

use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    store::{
        AuthenticatorRecord, Claim, CounterKey, CounterKind, Failure, FailureAudit,
        NewRecoveryCode, Proof, Store, conflict,
    },
};

/// Recovery codes issued at once (SPEC §1).
pub const RECOVERY_CODES: usize = 10;

/// The label of the subkey that keys recovery-code hashes.
const RECOVERY_PEPPER: &str = "latchkey recovery codes v1";

/// A second factor as typed: a TOTP code or a recovery code.
#[derive(Debug, Clone)]
pub enum FactorInput {
    Code(SecretString),
    RecoveryCode(SecretString),
}

/// A TOTP secret offered for enrolment, shown once.
#[derive(Debug, Clone)]
pub struct MfaOffer {
    /// Base32, for manual entry.
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
    pub qr_svg: String,
    pub params: TotpParams,
}

impl crate::metrics::StepAnswer for MfaOffer {
    fn result(&self) -> crate::metrics::LoginResult {
        crate::metrics::LoginResult::NextStep
    }
}

/// Why a well-formed factor was refused, for the audit log only (the client always sees
/// `invalid_code`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    Wrong,
    Replay,
    UsedRecoveryCode,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Wrong => "invalid_code",
            Self::Replay => "replay",
            Self::UsedRecoveryCode => "recovery_code_used",
        }
    }
}

/// Parse a TOTP code for any of the digit counts in use (SPEC §3: anything else is 400 and
/// not counted).
pub(crate) fn parse_code(input: &SecretString, digits: &[Digits]) -> ServiceResult<TotpCode> {
    let mut last = None;
    for d in digits {
        match TotpCode::parse(input.expose(), *d) {
            Ok(code) => return Ok(code),
            Err(e) => last = Some(e),
        }
    }
    Err(ServiceError::Invalid(last.map_or_else(
        || "the code must be 6 digits".to_owned(),
        |e| e.to_string(),
    )))
}

/// Parse a recovery code (400 when it cannot be one).
pub(crate) fn parse_recovery_code(input: &SecretString) -> ServiceResult<RecoveryCode> {
    RecoveryCode::parse(input.expose()).ok_or_else(|| {
        ServiceError::Invalid("a recovery code is 10 letters and digits, like 7kq2m-9xpd4".into())
    })
}

/// Open an authenticator's sealed secret (bound to its id).
pub(crate) fn open_secret(
    keyring: &Keyring,
    sealed: &[u8],
    aad: &str,
) -> ServiceResult<TotpSecret> {
    keyring
        .open(sealed, aad.as_bytes())
        .map(|s| TotpSecret::from_bytes(s.expose().to_vec()))
        .map_err(|e| ServiceError::Internal(format!("cannot open a TOTP secret: {e}")))
}

/// A confirmed authenticator with its secret opened, to check a code against.
pub(crate) struct OpenedAuthenticator {
    id: String,
    secret: TotpSecret,
    params: TotpParams,
    last_step: Option<u64>,
}

/// Open the secrets of `authenticators` (each sealed under its id).
pub(crate) fn open_authenticators(
    keyring: &Keyring,
    authenticators: &[AuthenticatorRecord],
) -> ServiceResult<Vec<OpenedAuthenticator>> {
    authenticators
        .iter()
        .map(|a| {
            Ok(OpenedAuthenticator {
                id: a.id.clone(),
                secret: open_secret(keyring, &a.secret_sealed, &a.id)?,
                params: a.params,
                last_step: a.last_step,
            })
        })
        .collect()
}

/// Check a TOTP code against the authenticators at `now`: the step to burn, or why it is
/// refused (a code of a step already used is a replay, answered like a wrong one: T5).
pub(crate) fn check_code(
    authenticators: &[OpenedAuthenticator],
    code: TotpCode,
    now: i64,
    window: u8,
) -> Result<Proof, Refusal> {
    let mut replay = false;
    for a in authenticators {
        if let Some(step) = totp::verify(&a.secret, &a.params, &code, now, a.last_step, window) {
            return Ok(Proof::Totp {
                authenticator_id: a.id.clone(),
                step,
            });
        }
        replay |= a.last_step.is_some()
            && totp::verify(&a.secret, &a.params, &code, now, None, window).is_some();
    }
    Err(if replay {
        Refusal::Replay
    } else {
        Refusal::Wrong
    })
}

/// The second-factor counter of a user.
pub(crate) fn second_factor_key(env: &Environment, user: &User) -> CounterKey {
    CounterKey {
        env: env.slug.clone(),
        kind: CounterKind::SecondFactor,
        subject: user.id.clone(),
    }
}

/// An address at its failure limit until `window_ends`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throttled {
    pub failures: u32,
    pub window_ends: i64,
}

impl<S: Store> Service<S> {
    /// Tell the operator a failure locked a counter (names only: SECURITY G2), and count it.
    pub(crate) fn locked(&self, env: &Environment, key: &CounterKey) {
        tracing::warn!(env = %env.slug, counter = key.kind.as_str(), "account locked after repeated failures");
        self.metrics().lockout(&env.slug, key.kind);
    }

    /// Claim an attempt, or answer 429 without evaluating anything (SECURITY L1, L2).
    pub(crate) async fn claim(
        &self,
        env: &Environment,
        key: &CounterKey,
        caller: &Caller,
    ) -> ServiceResult<Claim> {
        // A locked counter answers 429 from a read: hammering a locked account writes nothing
        // (the claim below still refuses atomically when a lock comes meanwhile).
        self.refuse_if_locked(key).await?;
        let claim = self
            .store
            .claim_attempt(key, &env.lockout, self.now())
            .await?;
        if let Claim::Refused { retry_after } = claim {
            return Err(self.refused_claim(env, key, caller, retry_after).await);
        }
        Ok(claim)
    }

    /// The answer to a refused claim (429 with `Retry-After`), after counting it against the
    /// client's IP with its audit record.
    pub(crate) async fn refused_claim(
        &self,
        env: &Environment,
        key: &CounterKey,
        caller: &Caller,
        retry_after: i64,
    ) -> ServiceError {
        if let Some(ip) = &caller.origin.ip {
            let record = self.audit(
                &env.slug,
                caller,
                AuditType::LoginFailed,
                None,
                Outcome::Failure,
                Some(json!({"reason": "locked", "counter": key.kind.as_str()}).to_string()),
            );
            if let Err(e) = self
                .store
                .record_ip_failure(&env.slug, ip, self.now(), Some(&record))
                .await
            {
                return e.into();
            }
        }
        ServiceError::TooManyAttempts {
            retry_after: u64::try_from(retry_after).unwrap_or(1).max(1),
        }
    }

    /// 429 while `key` is locked; reads only.
    pub(crate) async fn refuse_if_locked(&self, key: &CounterKey) -> ServiceResult<()> {
        let now = self.now();
        match self.store.locked_until(key, now).await? {
            Some(until) => Err(ServiceError::TooManyAttempts {
                retry_after: u64::try_from(until - now).unwrap_or(1).max(1),
            }),
            None => Ok(()),
        }
    }

    /// Record a failed attempt (and the lock it may cause), audited.
    pub(crate) async fn fail_attempt(
        &self,
        env: &Environment,
        key: &CounterKey,
        claim: Claim,
        user: Option<&User>,
        caller: &Caller,
        reason: &str,
    ) -> ServiceResult<()> {
        let target = user.map(|u| u.id.as_str());
        let failure = Failure::new(
            key,
            claim,
            &env.lockout,
            target,
            caller.origin.ip.as_deref(),
            self.now(),
        );
        let audit = self.failure_audit(env, key, target, caller)(reason, failure.locks());
        let outcome = self
            .store
            .record_failure(&failure.with_audit(audit))
            .await?;
        if outcome.locked_until.is_some() {
            self.locked(env, key);
        }
        Ok(())
    }

    /// The audit records of a failed attempt on `key`, for its reason: `login.failed`, and
    /// `login.locked` when the failure locks the counter.
    pub(crate) fn failure_audit(
        &self,
        env: &Environment,
        key: &CounterKey,
        target: Option<&str>,
        caller: &Caller,
    ) -> FailureAudit {
        let (recorder, env, caller) = (self.recorder.clone(), env.slug.clone(), caller.clone());
        let (kind, target) = (key.kind.as_str(), target.map(str::to_owned));
        Box::new(move |reason, locks| {
            let record = |audit_type, detail: serde_json::Value| {
                recorder.audit(
                    &env,
                    &caller,
                    audit_type,
                    target.as_deref(),
                    Outcome::Failure,
                    Some(detail.to_string()),
                )
            };
            let mut records = vec![record(
                AuditType::LoginFailed,
                json!({"reason": reason, "counter": kind}),
            )];
            if locks {
                records.push(record(AuditType::LoginLocked, json!({"counter": kind})));
            }
            records
        })
    }

    /// Whether the caller's address reached the environment's failure limit (L7): when it
    /// did, the failures and the end of the window. Reads only.
    pub(crate) async fn throttled(
        &self,
        env: &Environment,
        caller: &Caller,
    ) -> ServiceResult<Option<Throttled>> {
        let Some(ip) = &caller.origin.ip else {
            return Ok(None);
        };
        let (failures, window_ends) = self.store.ip_failures(&env.slug, ip, self.now()).await?;
        Ok(
            (failures >= env.lockout.ip_failures_per_minute).then_some(Throttled {
                failures,
                window_ends,
            }),
        )
    }

    /// Refuse a client whose address reached the limit, unless its device cookie shows it
    /// completed a login of `user` before (OWASP's device cookies: the address throttle slows
    /// anonymous guessing, and a user behind the same address as a guesser still logs in; the
    /// account's own lockout applies to everyone).
    pub(crate) async fn check_ip(
        &self,
        env: &Environment,
        caller: &Caller,
        user: Option<&str>,
    ) -> ServiceResult<()> {
        match self.throttled(env, caller).await? {
            None => Ok(()),
            Some(_)
                if user
                    .is_some_and(|u| self.device_user(&env.slug, caller).as_deref() == Some(u)) =>
            {
                Ok(())
            }
            Some(t) => Err(self.refuse_throttled(env, caller, t).await),
        }
    }

    /// The 429 of a throttled address. Nothing is written but, once per window and node, the
    /// `login.throttled` audit event with the failures that reached the limit: a refusal costs
    /// a read, so a throttled client cannot load the database.
    pub(crate) async fn refuse_throttled(
        &self,
        env: &Environment,
        caller: &Caller,
        t: Throttled,
    ) -> ServiceError {
        let now = self.now();
        if let Some(ip) = &caller.origin.ip
            && self.first_refusal_of_window(&env.slug, ip, t.window_ends, now)
        {
            let record = self.audit(
                &env.slug,
                caller,
                AuditType::LoginThrottled,
                None,
                Outcome::Failure,
                Some(json!({"failures": t.failures, "window_ends": t.window_ends}).to_string()),
            );
            if let Err(e) = self.store.append_audit(&record).await {
                tracing::warn!(error = %e, "could not record a throttled address");
            }
        }
        ServiceError::TooManyAttempts {
            retry_after: u64::try_from(t.window_ends - now).unwrap_or(1).max(1),
        }
    }

    /// Evaluate a parsed second factor against the user's authenticators or recovery codes.
    /// Returns the proof to consume in the caller's write, or why it was refused.
    pub(crate) async fn evaluate_factor(
        &self,
        env: &Environment,
        user: &User,
        input: &ParsedFactor,
    ) -> ServiceResult<Result<Proof, Refusal>> {
        match input {
            ParsedFactor::Code {
                code,
                authenticators,
            } => Ok(check_code(
                &open_authenticators(&self.keyring, authenticators)?,
                *code,
                self.now(),
                env.totp_window,
            )),
            ParsedFactor::RecoveryCode(code) => {
                // Codes are keyed by the sealing key: try the current key, then older ones.
                for pepper in self.recovery_peppers() {
                    let hash = code.hash(&user.id, pepper.expose());
                    if self.store.has_recovery_code(&user.id, &hash).await? {
                        return Ok(Ok(Proof::RecoveryCode { hash }));
                    }
                }
                Ok(Err(Refusal::UsedRecoveryCode))
            }
        }
    }

    /// Parse what the user typed against the digit counts of their authenticators.
    pub(crate) async fn parse_factor(
        &self,
        user: &User,
        input: &FactorInput,
    ) -> ServiceResult<ParsedFactor> {
        match input {
            FactorInput::Code(text) => {
                let authenticators: Vec<AuthenticatorRecord> = self
                    .store
                    .list_authenticators(&user.id)
                    .await?
                    .into_iter()
                    .filter(|a| a.confirmed_at.is_some())
                    .collect();
                let mut digits: Vec<Digits> = Vec::new();
                for a in &authenticators {
                    if !digits.contains(&a.params.digits()) {
                        digits.push(a.params.digits());
                    }
                }
                if digits.is_empty() {
                    digits.push(Digits::Six);
                }
                let code = parse_code(text, &digits)?;
                Ok(ParsedFactor::Code {
                    code,
                    authenticators,
                })
            }
            FactorInput::RecoveryCode(text) => {
                Ok(ParsedFactor::RecoveryCode(parse_recovery_code(text)?))
            }
        }
    }

    /// A fresh second factor for an account change (SECURITY E5): parsed (400), claimed (429),
    /// evaluated (401, counted), consumed, and the counter reset.
    pub(crate) async fn fresh_factor(
        &self,
        env: &Environment,
        user: &User,
        input: &FactorInput,
        caller: &Caller,
    ) -> ServiceResult<Fresh> {
        self.check_ip(env, caller, Some(&user.id)).await?;
        let parsed = self.parse_factor(user, input).await?;
        let key = second_factor_key(env, user);
        let claim = self.claim(env, &key, caller).await?;
        match self.evaluate_factor(env, user, &parsed).await? {
            // The counter is reset by the write that consumes the proof, in its transaction.
            Ok(proof) => Ok(Fresh { proof, claim, key }),
            Err(refusal) => {
                self.fail_attempt(env, &key, claim, Some(user), caller, refusal.as_str())
                    .await?;
                Err(ServiceError::InvalidCode)
            }
        }
    }

    /// Finish a write made under the claim on `key` after its factor was found right: a lost
    /// race for the step or the code is counted and answered like any wrong code (SECURITY T4,
    /// T5), and any other refusal is counted too before it is answered.
    pub(crate) async fn settle<T>(
        &self,
        env: &Environment,
        user: &User,
        caller: &Caller,
        (key, claim): (&CounterKey, Claim),
        result: Result<T, crate::StoreError>,
    ) -> ServiceResult<T> {
        match result {
            Ok(v) => Ok(v),
            Err(crate::StoreError::Conflict(c))
                if c == conflict::TOTP_STEP || c == conflict::RECOVERY_CODE =>
            {
                self.fail_attempt(env, key, claim, Some(user), caller, "replay")
                    .await?;
                Err(ServiceError::InvalidCode)
            }
            Err(e @ (crate::StoreError::Conflict(_) | crate::StoreError::NotFound)) => Err(self
                .refused_after_claim(env, key, claim, user, caller, e.into())
                .await),
            Err(e) => Err(e.into()),
        }
    }

    /// A claimed attempt whose factor was right but whose write was refused for another reason
    /// (the login expired or was ended by a lock meanwhile, the authenticator went away, the
    /// policy forbids the change): settled as a failed attempt, a synced write, before `refusal`
    /// is answered. The claim is on disk before anything tells the caller the factor was right
    /// (`docs/SECURITY.md`, R1), and the lock a concurrent failure set is never undone.
    pub(crate) async fn refused_after_claim(
        &self,
        env: &Environment,
        key: &CounterKey,
        claim: Claim,
        user: &User,
        caller: &Caller,
        refusal: ServiceError,
    ) -> ServiceError {
        let reason = match &refusal {
            ServiceError::LoginExpired => "login_expired",
            _ => "refused",
        };
        match self
            .fail_attempt(env, key, claim, Some(user), caller, reason)
            .await
        {
            Ok(()) => refusal,
            Err(e) => e,
        }
    }

    /// A new 160-bit secret with its URI and QR code, for `user` in `env`.
    pub(crate) fn offer(
        env: &Environment,
        user: &User,
        secret: &TotpSecret,
    ) -> ServiceResult<MfaOffer> {
        let params = TotpParams::default();
        let uri = totp::otpauth_uri(secret, &params, &env.issuer(), user.email.as_str());
        let qr_svg = totp::qr_svg(&uri)
            .ok_or_else(|| ServiceError::Internal("cannot draw the QR code".into()))?;
        Ok(MfaOffer {
            secret: secret.to_base32(),
            otpauth_uri: uri,
            qr_svg,
            params,
        })
    }

    /// The keys of recovery-code hashes, the current one first.
    fn recovery_peppers(&self) -> Vec<latchkey_core::SecretBytes> {
        self.keyring
            .keys()
            .map(|k| k.derive(RECOVERY_PEPPER))
            .collect()
    }

    /// Ten fresh recovery codes: the clear codes to show once, and their stored form.
    pub(crate) fn mint_recovery_codes(
        &self,
        user_id: &str,
    ) -> ServiceResult<(Vec<RecoveryCode>, Vec<NewRecoveryCode>)> {
        let pepper = self.keyring.primary().derive(RECOVERY_PEPPER);
        let mut shown = Vec::with_capacity(RECOVERY_CODES);
        let mut stored = Vec::with_capacity(RECOVERY_CODES);
        while shown.len() < RECOVERY_CODES {
            let code = RecoveryCode::generate()?;
            let hash = code.hash(user_id, pepper.expose());
            if stored.iter().any(|s: &NewRecoveryCode| s.hash == hash) {
                continue;
            }
            stored.push(NewRecoveryCode {
                id: self.new_id(),
                hash,
            });
            shown.push(code);
        }
        Ok((shown, stored))
    }
}

/// A fresh second factor, checked and not yet consumed.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub proof: Proof,
    claim: Claim,
    key: CounterKey,
}

impl Fresh {
    /// The counter and the claim the factor was checked under, for [`Service::settle`].
    pub(crate) fn claimed(&self) -> (&CounterKey, Claim) {
        (&self.key, self.claim)
    }
}

/// A second factor after parsing.
#[derive(Debug, Clone)]
pub enum ParsedFactor {
    /// A TOTP code, with the user's confirmed authenticators it is checked against: read once,
    /// before the attempt is claimed. A step another request uses in between is caught by the
    /// write that consumes it (a conditional update), and counted as a replay (SECURITY T4).
    Code {
        code: TotpCode,
        authenticators: Vec<AuthenticatorRecord>,
    },
    RecoveryCode(RecoveryCode),
}

/// Check a label for an authenticator: 1 to 100 characters, no control characters.
pub(crate) fn parse_label(label: &str) -> ServiceResult<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "a label must be 1 to 100 characters, like \"Work phone\"".into(),
        ));
    }
    Ok(label.to_owned())
}
