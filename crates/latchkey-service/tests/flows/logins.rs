//! A login, and a code never accepted twice (SECURITY T4, T5).

use std::sync::Arc;

use latchkey_core::{login::Step, totp};
use latchkey_service::{ServiceError, factors::FactorInput};

use crate::fixture::{Fixture, PASSWORD, caller, secret, session, token};

pub(crate) async fn a_login_takes_the_password_then_a_fresh_code(f: Fixture) {
    let alice = f.enrol("alice@example.com").await;
    assert!(f.valid(&alice.session).await);

    // A wrong password and an unknown email are answered alike.
    let s = &f.service;
    for (email, password) in [
        ("alice@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let r = s.login_password(&caller(), &f.env, email, password).await;
        assert!(matches!(r, Err(ServiceError::InvalidCredentials)), "{r:?}");
    }

    // The code that confirmed the authenticator was burnt: the next step's code signs in.
    f.clock.advance(30);
    let step = f.password(&alice).await.unwrap();
    assert_eq!(step.status, Step::MfaRequired);
    assert!(
        step.session.is_none(),
        "no session before the second factor"
    );
    let done = f.mfa(&step, &f.code(&alice)).await.unwrap();
    assert_eq!(done.status, Step::Authenticated);
    assert_eq!(
        done.user.as_ref().map(|u| u.email.as_str()),
        Some("alice@example.com")
    );
    assert!(
        done.device.is_some(),
        "a completed login hands out a device cookie"
    );
    let second = session(&done);
    assert!(f.valid(&second).await && f.valid(&alice.session).await);

    // The login token was used up with the step.
    let again = f.mfa(&step, &f.code(&alice)).await;
    assert!(
        matches!(again, Err(ServiceError::LoginExpired)),
        "{again:?}"
    );
}

pub(crate) async fn a_code_is_never_accepted_twice(f: Fixture) {
    let alice = f.enrol("alice@example.com").await;
    let at = |offset: i64| {
        secret(&totp::code_at(
            &alice.secret,
            &alice.params,
            f.clock_now() + offset,
        ))
    };
    // The enrolment's own code, in the same step: refused.
    let step = f.password(&alice).await.unwrap();
    let r = f.mfa(&step, &at(0)).await;
    assert!(matches!(r, Err(ServiceError::InvalidCode)), "{r:?}");

    // The next step's code, used early (the window takes it), signs in once…
    let next = at(30);
    let step = f.password(&alice).await.unwrap();
    assert_eq!(
        f.mfa(&step, &next).await.unwrap().status,
        Step::Authenticated
    );
    // …and never again: not in another login of this step, nor when its own step comes.
    for advance in [0, 30] {
        f.clock.advance(advance);
        let step = f.password(&alice).await.unwrap();
        let r = f.mfa(&step, &next).await;
        assert!(
            matches!(r, Err(ServiceError::InvalidCode)),
            "+{advance} s: {r:?}"
        );
    }

    // Steps only move forward: a code used early uses up the current step and the one before,
    // though both are still inside the window and were never used.
    f.clock.advance(60);
    let (earlier, current, ahead) = (at(-30), at(0), at(30));
    let step = f.password(&alice).await.unwrap();
    assert_eq!(
        f.mfa(&step, &ahead).await.unwrap().status,
        Step::Authenticated
    );
    for (which, code) in [("current", &current), ("previous", &earlier)] {
        if code.expose() == ahead.expose() {
            continue; // the same six digits by chance (one in a million): nothing to tell apart
        }
        let step = f.password(&alice).await.unwrap();
        let r = f.mfa(&step, code).await;
        assert!(
            matches!(r, Err(ServiceError::InvalidCode)),
            "the {which} step: {r:?}"
        );
    }
    // A later step signs in as usual.
    f.clock.advance(60);
    let step = f.password(&alice).await.unwrap();
    assert_eq!(
        f.mfa(&step, &at(0)).await.unwrap().status,
        Step::Authenticated
    );
}

pub(crate) async fn of_twelve_concurrent_submissions_of_one_code_exactly_one_wins(f: Fixture) {
    let alice = f.enrol("alice@example.com").await;
    f.clock.advance(30);
    let mut steps = Vec::new();
    for _ in 0..12 {
        steps.push(f.password(&alice).await.unwrap());
    }
    let code = f.code(&alice);
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let racers: Vec<_> = steps
        .into_iter()
        .map(|step| {
            let (service, env, code) = (f.service.clone(), f.env.clone(), code.clone());
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                service
                    .login_mfa(&caller(), &env, token(&step), &FactorInput::Code(code))
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.unwrap());
    }
    let wins = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(wins, 1, "{answers:?}");
    assert!(
        answers.iter().all(|a| matches!(
            a,
            Ok(_) | Err(ServiceError::InvalidCode | ServiceError::TooManyAttempts { .. })
        )),
        "a losing copy is a wrong code (or meets the lock the others set): {answers:?}"
    );
}
