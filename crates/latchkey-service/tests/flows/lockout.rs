//! Wrong codes lock the account on the policy's schedule (SECURITY L1, L4).

use latchkey_core::{
    HumanDuration,
    login::Step,
    model::{Email, EnvSlug, LockoutSettings, MfaPolicy, Role},
    policy,
};
use latchkey_service::{
    ServiceError,
    authz::Operator,
    environments::EnvironmentPatch,
    store::{AuditQuery, AuditStore},
};

use crate::fixture::{Fixture, caller, token, wrong};

pub(crate) async fn wrong_codes_lock_the_account_on_the_policys_schedule(f: Fixture) {
    f.patch(EnvironmentPatch {
        lockout_threshold: Some(3),
        lockout_base: Some(HumanDuration::from_secs(60).unwrap()),
        lockout_max: Some(HumanDuration::from_secs(200).unwrap()),
        ..EnvironmentPatch::default()
    })
    .await;
    let settings = LockoutSettings {
        threshold: 3,
        base_lock: HumanDuration::from_secs(60).unwrap(),
        max_lock: HumanDuration::from_secs(200).unwrap(),
        ..LockoutSettings::default()
    };
    let alice = f.enrol("alice@example.com").await;
    // The same email in another environment is another user, with counters of its own.
    let s = &f.service;
    let staging = EnvSlug::parse("staging").unwrap();
    s.create_environment(
        &Operator::local_cli(),
        staging.clone(),
        None,
        Some(MfaPolicy::Off),
    )
    .await
    .unwrap();
    let (_, link) = s
        .create_user(
            &s.cli_admin(&staging).await.unwrap(),
            Email::parse("alice@example.com").unwrap(),
            None,
            Role::User,
        )
        .await
        .unwrap();
    let started = s
        .start_setup_link(&caller(), &staging, link.token.expose())
        .await
        .unwrap();
    s.login_new_password(
        &caller(),
        &staging,
        token(&started),
        "staging only passphrase",
    )
    .await
    .unwrap();

    // Each round of the series: the wrong codes it allows, then the right code refused for the
    // lock's whole length, then taken once it has passed.
    for locks in 0..4u32 {
        f.clock.advance(30);
        let step = f.password(&alice).await.unwrap();
        let allowed = policy::attempts_allowed(&settings, locks);
        for attempt in 1..=allowed {
            let r = f.mfa(&step, &wrong(&f.code(&alice))).await;
            assert!(
                matches!(r, Err(ServiceError::InvalidCode)),
                "round {locks}, attempt {attempt}: {r:?}"
            );
        }
        let length = policy::lock_seconds(&settings, locks);
        assert_eq!(
            length,
            [60, 120, 200, 200][locks as usize],
            "base, doubled, capped"
        );
        // Locked: the right code is not even judged, and the lock ended this login (L4).
        let r = f.mfa(&step, &f.code(&alice)).await;
        match r {
            Err(ServiceError::TooManyAttempts { retry_after }) => {
                assert_eq!(i64::try_from(retry_after).unwrap(), length, "round {locks}");
            }
            other => panic!("round {locks}: {other:?}"),
        }
        // The lock is the account's in its environment only.
        let elsewhere = s
            .login_password(
                &caller(),
                &staging,
                "alice@example.com",
                "staging only passphrase",
            )
            .await
            .unwrap();
        assert_eq!(elsewhere.status, Step::Authenticated);
        // The lock is the account's: even the password step waits for its last second, and
        // the login the lock ended stays ended.
        f.clock.advance(length - 1);
        let r = f.password(&alice).await;
        assert!(
            matches!(r, Err(ServiceError::TooManyAttempts { retry_after: 1 })),
            "{r:?}"
        );
        f.clock.advance(1);
        let r = f.mfa(&step, &f.code(&alice)).await;
        assert!(matches!(r, Err(ServiceError::LoginExpired)), "{r:?}");
        let step = f.password(&alice).await.unwrap();
        if locks == 3 {
            // A success ends the series: the next round allows the threshold again.
            let done = f.mfa(&step, &f.code(&alice)).await.unwrap();
            assert_eq!(done.status, Step::Authenticated);
        }
    }
    f.clock.advance(30);
    let step = f.password(&alice).await.unwrap();
    for _ in 0..2 {
        let r = f.mfa(&step, &wrong(&f.code(&alice))).await;
        assert!(matches!(r, Err(ServiceError::InvalidCode)), "{r:?}");
    }
    let done = f.mfa(&step, &f.code(&alice)).await.unwrap();
    assert_eq!(
        done.status,
        Step::Authenticated,
        "the threshold is back after a success"
    );
    let query = AuditQuery {
        limit: 200,
        ..AuditQuery::default()
    };
    let events = s.store().list_audit(&f.env, &query).await.unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("login.locked"), 4, "one record per lock");
    assert!(count("login.failed") >= 3 + 1 + 1 + 1 + 2);
}
