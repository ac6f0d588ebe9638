//! A user's own credentials: password, authenticators and recovery codes, and the fresh second
//! factor an account change consumes.

use std::future::Future;

use super::StoreResult;
use crate::audit::AuditRecord;
use latchkey_core::{token::TokenHash, totp::TotpParams};

/// A TOTP authenticator to insert; `confirmed_at: None` is a pending enrolment (SECURITY E3).
#[derive(Debug, Clone)]
pub struct NewAuthenticator {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub secret_sealed: Vec<u8>,
    pub params: TotpParams,
    pub confirmed_at: Option<i64>,
    /// The step of the code that confirmed it, burnt at once (SECURITY T4).
    pub last_step: Option<u64>,
    pub created_at: i64,
}

/// A stored authenticator.
#[derive(Debug, Clone)]
pub struct AuthenticatorRecord {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub secret_sealed: Vec<u8>,
    pub params: TotpParams,
    pub confirmed_at: Option<i64>,
    pub last_step: Option<u64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A recovery code to store (hash only).
#[derive(Debug, Clone)]
pub struct NewRecoveryCode {
    pub id: String,
    pub hash: TokenHash,
}

/// A fresh second factor that a write consumes in its own transaction.
#[derive(Debug, Clone)]
pub enum Proof {
    /// Record this TOTP step for this authenticator (must be later than the last).
    Totp { authenticator_id: String, step: u64 },
    /// Mark this recovery code of the user used (must be unused).
    RecoveryCode { hash: TokenHash },
}

/// A pending enrolment to confirm.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub user_id: String,
    pub authenticator_id: String,
    pub label: String,
    /// The step of the confirming code, burnt (SECURITY T4).
    pub step: u64,
    /// Recovery codes to store (with the first authenticator).
    pub recovery_codes: Option<Vec<NewRecoveryCode>>,
    pub now: i64,
    pub audit: Vec<AuditRecord>,
}

/// A user's own credentials.
pub trait CredentialStore: Clone + Send + Sync + 'static {
    fn insert_authenticator(
        &self,
        authenticator: &NewAuthenticator,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn list_authenticators(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<AuthenticatorRecord>>> + Send;

    /// Record `step` as the authenticator's last accepted step if, and only if, it is later
    /// than the one recorded (`docs/ARCHITECTURE.md`, Conventions 7: one conditional update).
    /// Returns whether it changed a row; `false` means another request got there first, or the
    /// step was not later.
    fn advance_totp_step(
        &self,
        authenticator_id: &str,
        step: u64,
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Set a new password, ending the user's other sessions (all but `keep_session`).
    fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Confirm a pending enrolment: burn `step`, set the label, and store recovery codes when
    /// given (the first authenticator).
    fn confirm_authenticator(
        &self,
        confirmation: &Confirmation,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Remove an authenticator after consuming `proof`; with `keep_one`, refuse to remove the
    /// last confirmed one. Removing the last one also removes the recovery codes.
    fn remove_authenticator(
        &self,
        user_id: &str,
        authenticator_id: &str,
        keep_one: bool,
        proof: &Proof,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Replace the user's recovery codes after consuming `proof`.
    fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[NewRecoveryCode],
        proof: &Proof,
        now: i64,
        audit: &AuditRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Consume a fresh second factor on its own (before adding an authenticator). Every write
    /// that consumes a proof also resets the user's second-factor counter in its transaction.
    fn consume_proof(
        &self,
        user_id: &str,
        proof: &Proof,
        now: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Unused recovery codes of the user.
    fn recovery_codes_remaining(
        &self,
        user_id: &str,
    ) -> impl Future<Output = StoreResult<u32>> + Send;

    /// Whether the user has an unused recovery code with this hash.
    fn has_recovery_code(
        &self,
        user_id: &str,
        hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
