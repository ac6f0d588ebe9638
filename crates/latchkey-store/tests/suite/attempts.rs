//! Failure counters and step attempts: a claim before any evaluation (SECURITY L1, L2), and
//! an attempt claimed, judged and settled as one unit (`LoginStore::attempt_step`).

use std::sync::{
    Arc,
    atomic::{AtomicU32, AtomicUsize, Ordering},
};

use latchkey_core::{login::Step, model::LockoutSettings};
use latchkey_service::{
    AuditRecord, Store,
    store::{
        AttemptFacts, AuditQuery, Claim, CounterKey, CounterKind, LoginNext, LoginWrite,
        NewLoginTxn, NewSession, Proof, StepAttempt, StepOutcome, conflict,
    },
};

use super::{T0, add_user, audit, authenticator, id, ok, seed, slug};

pub async fn an_abandoned_attempt_never_locks_for_good<S: Store>(store: S) {
    seed(&store).await;
    let key = CounterKey {
        env: slug("prod"),
        kind: CounterKind::Password,
        subject: "victim@example.com".into(),
    };
    let settings = LockoutSettings::default();
    // Five attempts claimed and never settled (clients that hung up, a busy pool).
    for n in 1..=5 {
        assert!(
            matches!(ok(store.claim_attempt(&key, &settings, T0).await), Claim::Allowed { attempt, .. } if attempt == n)
        );
    }
    assert!(matches!(
        ok(store.claim_attempt(&key, &settings, T0).await),
        Claim::Refused { .. }
    ));
    // It is an ordinary lock: over when its time is up.
    assert_eq!(ok(store.locked_until(&key, T0).await), Some(T0 + 60));
    assert_eq!(ok(store.locked_until(&key, T0 + 60).await), None);
    assert!(matches!(
        ok(store.claim_attempt(&key, &settings, T0 + 60).await),
        Claim::Allowed { .. }
    ));
}

pub async fn concurrent_claims_evaluate_at_most_the_threshold<S: Store>(store: S) {
    seed(&store).await;
    let key = CounterKey {
        env: slug("prod"),
        kind: CounterKind::SecondFactor,
        subject: id(1),
    };
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, k) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move { s.claim_attempt(&k, &LockoutSettings::default(), T0).await })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if matches!(ok(ok(t.await)), Claim::Allowed { .. }) {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 5,
        "of 50 concurrent guesses exactly the threshold are evaluated (L2)"
    );
}

/// Numbers for the audit records' ids, unique in each database.
static RECORDS: AtomicU32 = AtomicU32::new(1000);

fn second_factor() -> CounterKey {
    CounterKey {
        env: slug("prod"),
        kind: CounterKind::SecondFactor,
        subject: id(1),
    }
}

/// A session-opening write that burns `step` of `auth-1` and resets the counter.
fn right_code(session: u32, step: u64) -> LoginWrite {
    LoginWrite {
        now: T0,
        user_id: id(1),
        from: None,
        next: LoginNext::Authenticate(NewSession {
            id: format!("s{session}"),
            token_hash: latchkey_core::token::Token::generate()
                .unwrap_or_else(|e| panic!("{e}"))
                .hash(),
            user_id: id(1),
            env: slug("prod"),
            authenticated_at: T0,
            amr: "pwd otp".into(),
            created_at: T0,
            ip: None,
            user_agent: None,
        }),
        password: None,
        rehash: None,
        proof: Some(Proof::Totp {
            authenticator_id: "auth-1".into(),
            step,
        }),
        new_authenticator: None,
        new_recovery_codes: None,
        reset_counters: vec![second_factor()],
        audit: vec![audit(
            "prod",
            200 + session,
            "login.succeeded",
            Some(&id(1)),
        )],
    }
}

/// An attempt whose judge counts its calls in `judged` and gives `verdict`; failures are
/// audited as `login.failed` (detail: the reason) and `login.locked`.
fn attempt(
    judged: &Arc<AtomicUsize>,
    verdict: impl FnOnce() -> Result<LoginWrite, &'static str> + Send + 'static,
) -> StepAttempt {
    let judged = Arc::clone(judged);
    StepAttempt {
        facts: AttemptFacts {
            key: second_factor(),
            settings: LockoutSettings::default(),
            user_id: id(1),
            ip: Some("192.0.2.7".into()),
            now: T0,
        },
        judge: Box::new(move || {
            judged.fetch_add(1, Ordering::SeqCst);
            verdict()
        }),
        failure_audit: Box::new(move |reason, locks| {
            let n = RECORDS.fetch_add(2, Ordering::SeqCst);
            let mut failed = audit("prod", n, "login.failed", Some(&id(1)));
            failed.detail = Some(reason.to_owned());
            let mut records = vec![failed];
            if locks {
                records.push(audit("prod", n + 1, "login.locked", Some(&id(1))));
            }
            records
        }),
    }
}

/// The environments, user 1 and their confirmed authenticator `auth-1`.
async fn user_with_authenticator<S: Store>(store: &S) {
    seed(store).await;
    ok(add_user(store, "prod", 1, "a@example.com").await);
    ok(store
        .insert_authenticator(&authenticator("auth-1", &id(1), true))
        .await);
}

/// A pending login of user 1 at the second factor, `txn-1`, for five minutes; its token.
async fn pending_login<S: Store>(store: &S) -> latchkey_core::token::Token {
    let token = latchkey_core::token::Token::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut begin = right_code(9, 0);
    (begin.proof, begin.reset_counters, begin.audit) = (None, Vec::new(), Vec::new());
    begin.next = LoginNext::Begin(NewLoginTxn {
        id: "txn-1".into(),
        token_hash: token.hash(),
        user_id: id(1),
        env: slug("prod"),
        state: Step::MfaRequired,
        amr: "pwd".into(),
        setup_token_id: None,
        created_at: T0,
        expires_at: T0 + 300,
        mfa_demanded: false,
    });
    ok(store.write_login(&begin).await);
    token
}

/// The next claim on the second-factor counter: which attempt of its round it is.
async fn next_claim<S: Store>(store: &S) -> Claim {
    ok(store
        .claim_attempt(&second_factor(), &LockoutSettings::default(), T0)
        .await)
}

async fn records<S: Store>(store: &S, kind: &str) -> Vec<AuditRecord> {
    ok(store
        .list_audit(
            &slug("prod"),
            &AuditQuery {
                kind: Some(kind.into()),
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await)
}

pub async fn a_step_attempt_is_claimed_judged_and_settled_at_once<S: Store>(store: S) {
    user_with_authenticator(&store).await;
    let judged = Arc::new(AtomicUsize::new(0));

    // A wrong code: judged once, counted, audited with its reason; nothing else written.
    let wrong = ok(store
        .attempt_step(attempt(&judged, || Err("invalid_code")))
        .await);
    assert_eq!(
        wrong,
        StepOutcome::Failed {
            reason: "invalid_code",
            conflict: None,
            locked_until: None
        }
    );
    assert_eq!(judged.load(Ordering::SeqCst), 1);
    let failed = records(&store, "login.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail.as_deref(), Some("invalid_code"));
    assert!(
        records(&store, "login.locked").await.is_empty(),
        "no lock, no lock record"
    );
    assert_eq!(
        ok(store.ip_failures(&slug("prod"), "192.0.2.7", T0).await).0,
        1
    );

    // A right code: the write is applied, the step burnt and the counter reset.
    let right = ok(store
        .attempt_step(attempt(&judged, || Ok(right_code(1, 100))))
        .await);
    assert_eq!(right, StepOutcome::Written);
    assert_eq!(ok(store.list_sessions(&id(1)).await).len(), 1);
    assert_eq!(
        ok(store.list_authenticators(&id(1)).await)[0].last_step,
        Some(100)
    );
    assert_eq!(records(&store, "login.succeeded").await.len(), 1);
    assert!(
        matches!(next_claim(&store).await, Claim::Allowed { attempt: 1, .. }),
        "the success reset the counter"
    );

    // Failures up to the threshold lock the counter, and the lock is audited and ends the
    // user's pending logins (L4).
    let token = pending_login(&store).await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(ok(store
            .attempt_step(attempt(&judged, || Err("invalid_code")))
            .await));
    }
    assert!(
        matches!(last, Some(StepOutcome::Failed { locked_until: Some(until), .. }) if until > T0),
        "the fifth attempt of the round locks: {last:?}"
    );
    assert_eq!(records(&store, "login.locked").await.len(), 1);
    let pending = ok(store.login_txn(&token.hash()).await);
    assert!(
        pending.is_some_and(|t| t.expires_at <= T0),
        "the lock expired the pending login"
    );

    // While locked, nothing is judged, even a right code.
    let before = judged.load(Ordering::SeqCst);
    let refused = ok(store
        .attempt_step(attempt(&judged, || Ok(right_code(2, 101))))
        .await);
    assert!(matches!(refused, StepOutcome::Refused { retry_after } if retry_after > 0));
    assert_eq!(
        judged.load(Ordering::SeqCst),
        before,
        "a refused claim is not judged"
    );
    assert_eq!(ok(store.list_sessions(&id(1)).await).len(), 1);
}

pub async fn a_right_code_that_loses_its_race_is_counted_and_writes_nothing<S: Store>(store: S) {
    user_with_authenticator(&store).await;
    let judged = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        ok(store
            .attempt_step(attempt(&judged, || Ok(right_code(1, 100))))
            .await),
        StepOutcome::Written
    );
    // A pending login at the second factor, which the next write consumes first.
    let token = pending_login(&store).await;
    // The same step again, as another request judged before the first wrote it (T4): the
    // write's condition fails after it consumed the login, everything it wrote is rolled
    // back, and a failure is recorded instead.
    let replay = ok(store
        .attempt_step(attempt(&judged, || {
            let mut w = right_code(2, 100);
            w.from = Some(("txn-1".into(), Step::MfaRequired));
            Ok(w)
        }))
        .await);
    assert_eq!(
        replay,
        StepOutcome::Failed {
            reason: "replay",
            conflict: Some(conflict::TOTP_STEP),
            locked_until: None
        }
    );
    let sessions: Vec<String> = ok(store.list_sessions(&id(1)).await)
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(sessions, ["s1"], "the losing write opened no session");
    assert!(
        ok(store.login_txn(&token.hash()).await).is_some(),
        "nor consumed the pending login"
    );
    assert_eq!(
        records(&store, "login.succeeded").await.len(),
        1,
        "and wrote none of its audit"
    );
    let failed = records(&store, "login.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail.as_deref(), Some("replay"));
    assert!(
        matches!(next_claim(&store).await, Claim::Allowed { attempt: 2, .. }),
        "the replay counts as a failure"
    );
    assert_eq!(
        ok(store.ip_failures(&slug("prod"), "192.0.2.7", T0).await).0,
        1,
        "and against the client's IP"
    );

    // A write that fails on its very last statement (an audit id already used) after opening
    // its session: all of it is rolled back, and the failure recorded.
    let used_id = failed[0].id.clone();
    let late = ok(store
        .attempt_step(attempt(&judged, move || {
            let mut w = right_code(3, 101);
            w.audit[0].id = used_id;
            Ok(w)
        }))
        .await);
    assert!(
        matches!(
            late,
            StepOutcome::Failed {
                reason: "login_expired",
                conflict: Some(_),
                ..
            }
        ),
        "{late:?}"
    );
    assert_eq!(
        ok(store.list_sessions(&id(1)).await).len(),
        1,
        "no session s3"
    );
    assert_eq!(
        ok(store.list_authenticators(&id(1)).await)[0].last_step,
        Some(100),
        "the step of the rolled-back write is not burnt"
    );

    // A write that fails for another reason (its session names no user): rolled back, and the
    // attempt stays counted — a judged attempt is never forgotten.
    let broken = store
        .attempt_step(attempt(&judged, || {
            let mut w = right_code(4, 102);
            if let LoginNext::Authenticate(s) = &mut w.next {
                s.user_id = "nobody".into();
            }
            Ok(w)
        }))
        .await;
    assert!(
        !matches!(
            broken,
            Ok(StepOutcome::Written | StepOutcome::Failed { .. })
        ),
        "{broken:?}"
    );
    assert_eq!(ok(store.list_sessions(&id(1)).await).len(), 1);
    assert_eq!(
        ok(store.list_authenticators(&id(1)).await)[0].last_step,
        Some(100)
    );
    assert!(
        matches!(next_claim(&store).await, Claim::Allowed { attempt: 5, .. }),
        "claims 2 (replay), 3 (late failure), 4 (broken write) and this one"
    );
}

pub async fn concurrent_step_attempts_judge_at_most_the_threshold<S: Store>(store: S) {
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    let store = Arc::new(store);
    let judged = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, a) = (Arc::clone(&store), attempt(&judged, || Err("invalid_code")));
            tokio::spawn(async move { s.attempt_step(a).await })
        })
        .collect();
    let (mut failed, mut refused, mut locks) = (0, 0, 0);
    for t in tasks {
        match ok(ok(t.await)) {
            StepOutcome::Failed { locked_until, .. } => {
                failed += 1;
                locks += usize::from(locked_until.is_some());
            }
            StepOutcome::Refused { .. } => refused += 1,
            other => panic!("no code was right: {other:?}"),
        }
    }
    assert_eq!(
        judged.load(Ordering::SeqCst),
        5,
        "of 50 concurrent wrong codes exactly the threshold are judged (L2)"
    );
    assert_eq!((failed, refused, locks), (5, 45, 1));
}

/// The lock a claim sets provisionally is computed in SQL (one upsert, never read-then-write);
/// it must be exactly `policy::lock_seconds`, the schedule the service and the confirmed lock
/// follow: base, twice that, four times… up to the maximum, round after round.
pub async fn the_claims_lock_is_the_policys<S: Store>(store: S) {
    use latchkey_core::{HumanDuration, policy};
    use latchkey_service::store::Failure;

    seed(&store).await;
    let secs = |s| HumanDuration::from_secs(s).unwrap_or_else(|e| panic!("{e}"));
    for (threshold, base, max) in [(3, 60, 3600), (1, 60, 90), (5, 1, 86_400)] {
        let settings = LockoutSettings {
            threshold,
            base_lock: secs(base),
            max_lock: secs(max),
            ..LockoutSettings::default()
        };
        let key = CounterKey {
            env: slug("prod"),
            kind: CounterKind::Password,
            subject: format!("schedule-{threshold}-{base}-{max}@example.com"),
        };
        let mut now = T0;
        for round in 0..20 {
            let allowed = policy::attempts_allowed(&settings, round);
            let mut last = None;
            for n in 1..=allowed {
                let claim = ok(store.claim_attempt(&key, &settings, now).await);
                assert!(
                    matches!(claim, Claim::Allowed { attempt, locks } if attempt == n && locks == round),
                    "round {round}, attempt {n}: {claim:?}"
                );
                last = Some(claim);
            }
            let expected = now + policy::lock_seconds(&settings, round);
            assert_eq!(
                ok(store.locked_until(&key, now).await),
                Some(expected),
                "the claim's lock in round {round} ({threshold}, {base} s, {max} s)"
            );
            let outcome = ok(store
                .record_failure(&Failure::new(
                    &key,
                    last.unwrap_or_else(|| panic!("no claim")),
                    &settings,
                    None,
                    None,
                    now,
                ))
                .await);
            assert_eq!(outcome.locked_until, Some(expected), "the confirmed lock");
            now = expected;
        }
    }
}
