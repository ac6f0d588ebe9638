//! `AuthStore` for SQLite: each write one transaction on the writer thread (`writer.rs`), each
//! point read inline (`readers.rs`), over the modules beside it.

use latchkey_core::{model::EnvSlug, model::LockoutSettings, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        AuthStore, Claim, Confirmation, CounterKey, Failure, FailureOutcome, LoginSubject,
        LoginTxnView, LoginWrite, NewLoginTxn, NewRecoveryCode, Proof, SessionRecord, SessionView,
        SetupTokenView, StepAttempt, StepOutcome, StoreResult,
    },
};

use super::{SqliteStore, exec::Lite, logins, writer::Durability};
use crate::sql::{self, run_now};

impl AuthStore for SqliteStore {
    async fn login_subject(
        &self,
        env: &EnvSlug,
        email_normalized: &str,
    ) -> StoreResult<Option<LoginSubject>> {
        self.fast
            .read(|c| run_now(sql::logins::subject(&mut Lite(c), env, email_normalized)))
    }

    async fn login_txn(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<LoginTxnView>> {
        let _ = now; // expired or not: the caller tells a lockout from an expiry
        self.fast
            .read(|c| run_now(sql::logins::txn(&mut Lite(c), token_hash.as_str())))
    }

    async fn set_pending_secret(&self, txn_id: &str, sealed: &[u8], now: i64) -> StoreResult<()> {
        let (id, sealed) = (txn_id.to_owned(), sealed.to_vec());
        self.writer
            .run(move |tx| {
                run_now(sql::logins::set_pending_secret(
                    &mut Lite(tx),
                    &id,
                    &sealed,
                    now,
                ))
            })
            .await
    }

    async fn write_login(&self, write: &LoginWrite) -> StoreResult<()> {
        let write = write.clone();
        self.writer
            .run(move |tx| run_now(sql::logins::write(&mut Lite(tx), &write)))
            .await
    }

    async fn setup_token(
        &self,
        token_hash: &TokenHash,
        now: i64,
    ) -> StoreResult<Option<SetupTokenView>> {
        self.fast.read(|c| {
            run_now(sql::logins::setup_token(
                &mut Lite(c),
                token_hash.as_str(),
                now,
            ))
        })
    }

    async fn begin_setup_login(&self, txn: &NewLoginTxn, now: i64) -> StoreResult<()> {
        let txn = txn.clone();
        self.writer
            .run(move |tx| run_now(sql::logins::begin_setup(&mut Lite(tx), &txn, now)))
            .await
    }

    async fn claim_attempt(
        &self,
        key: &CounterKey,
        settings: &LockoutSettings,
        now: i64,
    ) -> StoreResult<Claim> {
        let (key, settings) = (key.clone(), *settings);
        // On disk with the attempt's verdict, which is written (synced) before it is answered.
        self.writer
            .run_with(Durability::WithNextSync, move |tx| {
                run_now(sql::throttle::claim(&mut Lite(tx), &key, &settings, now))
            })
            .await
    }

    async fn record_failure(&self, f: &Failure<'_>) -> StoreResult<FailureOutcome> {
        let (key, lock_until, now) = (f.key.clone(), f.lock_until, f.now);
        let (user_id, ip) = (f.user_id.map(str::to_owned), f.ip.map(str::to_owned));
        let audit = f.audit.to_vec();
        self.writer
            .run(move |tx| {
                run_now(sql::throttle::record_failure(
                    &mut Lite(tx),
                    &Failure {
                        key: &key,
                        user_id: user_id.as_deref(),
                        lock_until,
                        ip: ip.as_deref(),
                        now,
                        audit: &audit,
                    },
                ))
            })
            .await
    }

    async fn attempt_step(&self, attempt: StepAttempt) -> StoreResult<StepOutcome> {
        // Claim, judge and settle in one job and one synced commit: a code step costs one
        // hand-off to the writer and back, not two (`BENCHMARKS.md`).
        self.writer
            .run_or_redo(
                move |tx| logins::attempt(tx, attempt),
                |tx, redo| logins::settle_after_rollback(tx, redo),
            )
            .await
    }

    async fn locked_until(&self, key: &CounterKey, now: i64) -> StoreResult<Option<i64>> {
        self.fast
            .read(|c| run_now(sql::throttle::locked_until(&mut Lite(c), key, now)))
    }

    async fn reset_counter(&self, key: &CounterKey) -> StoreResult<()> {
        let key = key.clone();
        self.writer
            .run(move |tx| run_now(sql::throttle::reset(&mut Lite(tx), &key)))
            .await
    }

    async fn ip_failures(&self, env: &EnvSlug, ip: &str, now: i64) -> StoreResult<(u32, i64)> {
        self.fast
            .read(|c| run_now(sql::throttle::ip_failures(&mut Lite(c), env, ip, now)))
    }

    async fn record_ip_failure(
        &self,
        env: &EnvSlug,
        ip: &str,
        now: i64,
        record: Option<&AuditRecord>,
    ) -> StoreResult<()> {
        let (env, ip, record) = (env.clone(), ip.to_owned(), record.cloned());
        self.writer
            .run(move |tx| {
                run_now(sql::throttle::record_ip_failure(
                    &mut Lite(tx),
                    &env,
                    &ip,
                    now,
                    record.as_ref(),
                ))
            })
            .await
    }

    async fn session_by_token(&self, token_hash: &TokenHash) -> StoreResult<Option<SessionView>> {
        self.fast.session_by_token(token_hash.as_str())
    }

    async fn touch_session(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer
            .run(move |tx| run_now(sql::account::touch_session(&mut Lite(tx), &id, now)))
            .await
    }

    async fn end_session(
        &self,
        user_id: &str,
        id: &str,
        record: Option<&AuditRecord>,
    ) -> StoreResult<bool> {
        let (user_id, id, record) = (user_id.to_owned(), id.to_owned(), record.cloned());
        self.writer
            .run(move |tx| {
                run_now(sql::account::end_session(
                    &mut Lite(tx),
                    &user_id,
                    &id,
                    record.as_ref(),
                ))
            })
            .await
    }

    async fn list_sessions(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let user_id = user_id.to_owned();
        self.fast
            .scan(move |c| run_now(sql::sessions::list(&mut Lite(c), &user_id)))
            .await
    }

    async fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let (user_id, hash, keep, record) = (
            user_id.to_owned(),
            hash.to_owned(),
            keep_session.map(str::to_owned),
            record.clone(),
        );
        self.writer
            .run(move |tx| {
                run_now(sql::account::change_password(
                    &mut Lite(tx),
                    &user_id,
                    &hash,
                    keep.as_deref(),
                    now,
                    &record,
                ))
            })
            .await
    }

    async fn confirm_authenticator(&self, c: &Confirmation<'_>) -> StoreResult<()> {
        let (user_id, id, label) = (
            c.user_id.to_owned(),
            c.authenticator_id.to_owned(),
            c.label.to_owned(),
        );
        let (step, now) = (c.step, c.now);
        let (codes, records) = (c.recovery_codes.map(<[_]>::to_vec), c.audit.to_vec());
        self.writer
            .run(move |tx| {
                run_now(sql::account::confirm_authenticator(
                    &mut Lite(tx),
                    &Confirmation {
                        user_id: &user_id,
                        authenticator_id: &id,
                        label: &label,
                        step,
                        recovery_codes: codes.as_deref(),
                        now,
                        audit: &records,
                    },
                ))
            })
            .await
    }

    async fn remove_authenticator(
        &self,
        user_id: &str,
        id: &str,
        keep_one: bool,
        proof: &Proof,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<()> {
        let (user_id, id, proof, record) = (
            user_id.to_owned(),
            id.to_owned(),
            proof.clone(),
            record.clone(),
        );
        self.writer
            .run(move |tx| {
                run_now(sql::account::remove_authenticator(
                    &mut Lite(tx),
                    &user_id,
                    &id,
                    keep_one,
                    &proof,
                    now,
                    &record,
                ))
            })
            .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[NewRecoveryCode],
        proof: &Proof,
        now: i64,
        record: &AuditRecord,
    ) -> StoreResult<()> {
        let (user_id, codes, proof, record) = (
            user_id.to_owned(),
            codes.to_vec(),
            proof.clone(),
            record.clone(),
        );
        self.writer
            .run(move |tx| {
                run_now(sql::account::replace_recovery_codes(
                    &mut Lite(tx),
                    &user_id,
                    &codes,
                    &proof,
                    now,
                    &record,
                ))
            })
            .await
    }

    async fn consume_proof(&self, user_id: &str, proof: &Proof, now: i64) -> StoreResult<()> {
        let (user_id, proof) = (user_id.to_owned(), proof.clone());
        self.writer
            .run(move |tx| {
                run_now(sql::account::consume_proof(
                    &mut Lite(tx),
                    &user_id,
                    &proof,
                    now,
                ))
            })
            .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.writer
            .run(move |tx| run_now(sql::meta::purge_expired(&mut Lite(tx), now)))
            .await
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> StoreResult<u32> {
        let user_id = user_id.to_owned();
        self.fast
            .scan(move |c| run_now(sql::credentials::remaining(&mut Lite(c), &user_id)))
            .await
    }

    async fn has_recovery_code(&self, user_id: &str, hash: &TokenHash) -> StoreResult<bool> {
        self.fast.read(|c| {
            run_now(sql::credentials::has_code(
                &mut Lite(c),
                user_id,
                hash.as_str(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_service::store::CounterKind;

    /// A claim commits without waiting for the disk; every write that settles it (the verdict,
    /// a reset) commits synced, and so flushes the claim with it before anything is answered.
    #[tokio::test]
    async fn a_claim_is_flushed_by_the_synced_write_that_settles_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("latchkey.db");
        let store = SqliteStore::open_path(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rusqlite::Connection::open(&path)
            .and_then(|c| {
                c.execute_batch(
                    "INSERT INTO environments (slug, name, mfa_policy, session_max_age, created_at, updated_at)
                         VALUES ('shop', 'Shop', 'optional', 86400, 1, 1)",
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let key = CounterKey {
            env: EnvSlug::parse("shop").unwrap_or_else(|e| panic!("{e}")),
            kind: CounterKind::Password,
            subject: "dan@example.com".into(),
        };
        let settings = LockoutSettings::default();
        let claim = store
            .claim_attempt(&key, &settings, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(claim, Claim::Allowed { attempt: 1, .. }));
        assert_eq!(store.writer.last_commit(), Some(Durability::WithNextSync));
        store
            .record_failure(&Failure::new(
                &key,
                claim,
                &settings,
                None,
                Some("192.0.2.1"),
                100,
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.writer.last_commit(), Some(Durability::Synced));
        store
            .claim_attempt(&key, &settings, 101)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .reset_counter(&key)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.writer.last_commit(), Some(Durability::Synced));
        store.close().await;
    }
}
