//! What an admin does to users and tokens: resets, enforce-MFA, API tokens' use.

use latchkey_core::{
    login::Step,
    model::{Email, MfaPolicy},
};
use latchkey_service::{ServiceError, authz::Identity, environments::EnvironmentPatch};

use crate::fixture::{Fixture, caller, session, token};

pub(crate) async fn resets_sign_out_and_ask_for_a_new_password_or_device(f: Fixture) {
    let s = &f.service;
    let alice = f.enrol("alice@example.com").await;
    let admin = s.cli_admin(&f.env).await.unwrap();
    let id = s
        .user_by_email(&f.env, &Email::parse(&alice.email).unwrap())
        .await
        .unwrap()
        .id;

    // A password reset: signed out, the old password gone, a new one chosen through the link,
    // and the authenticator still asked for (a reset never skips the second factor).
    let reset = s.reset_password(&admin, &id).await.unwrap();
    assert_eq!(reset.sessions_ended, 1);
    assert!(!f.valid(&alice.session).await);
    let r = f.password(&alice).await;
    assert!(matches!(r, Err(ServiceError::InvalidCredentials)), "{r:?}");
    let started = s
        .start_setup_link(&caller(), &f.env, reset.link.token.expose())
        .await
        .unwrap();
    let chosen = s
        .login_new_password(
            &caller(),
            &f.env,
            token(&started),
            "a new and longer passphrase",
        )
        .await
        .unwrap();
    assert_eq!(chosen.status, Step::MfaRequired);
    f.clock.advance(30);
    let done = f.mfa(&chosen, &f.code(&alice)).await.unwrap();
    assert_eq!(done.status, Step::Authenticated);
    let r = s
        .start_setup_link(&caller(), &f.env, reset.link.token.expose())
        .await;
    assert!(
        matches!(r, Err(ServiceError::LinkExpired)),
        "a link is used once: {r:?}"
    );

    // A lost device: signed out, the authenticator gone, a new one set up at the next login.
    let session = session(&done);
    let (ended, removed) = s.reset_mfa(&admin, &id).await.unwrap();
    assert_eq!((ended, removed), (1, 1));
    assert!(!f.valid(&session).await);
    let next = s
        .login_password(
            &caller(),
            &f.env,
            &alice.email,
            "a new and longer passphrase",
        )
        .await
        .unwrap();
    assert_eq!(next.status, Step::MfaSetupRequired);
}

pub(crate) async fn enforcing_mfa_signs_out_whoever_has_none(f: Fixture) {
    f.patch(EnvironmentPatch {
        mfa_policy: Some(MfaPolicy::Optional),
        ..EnvironmentPatch::default()
    })
    .await;
    let s = &f.service;
    let bob = f.enrol("bob@example.com").await;
    assert!(
        f.valid(&bob.session).await,
        "signed in with a password alone"
    );
    let admin = s.cli_admin(&f.env).await.unwrap();

    let preview = s.enforce_mfa_preview(&admin, true).await.unwrap();
    let counts = s.enforce_mfa(&admin, true).await.unwrap();
    assert_eq!(counts, preview, "the preview is what the act does");
    assert_eq!(
        (
            counts.users_marked,
            counts.users_signed_out,
            counts.sessions_ended
        ),
        (1, 1, 1)
    );
    assert!(!f.valid(&bob.session).await);
    let r = f.password(&bob).await.unwrap();
    assert_eq!(r.status, Step::MfaSetupRequired, "MFA is now his to set up");
    // Again: nobody is left to sign out.
    let counts = s.enforce_mfa(&admin, true).await.unwrap();
    assert_eq!((counts.users_signed_out, counts.sessions_ended), (0, 0));
}

pub(crate) async fn an_api_token_records_its_use_at_most_once_a_minute(f: Fixture) {
    let s = &f.service;
    let admin = s.cli_admin(&f.env).await.unwrap();
    let bearer = s
        .create_env_token(&admin, "deploys")
        .await
        .unwrap()
        .bearer();
    let start = f.clock_now();
    // What a use finds recorded (each use reads the token, then records itself when due).
    let recorded = || async {
        match s.identify(&bearer).await.unwrap() {
            Identity::ApiToken(record) => record.last_used_at,
            Identity::User(_) => panic!("an API token was taken for a session"),
        }
    };
    assert_eq!(recorded().await, None, "never used before");
    f.clock.advance(59);
    assert_eq!(recorded().await, Some(start), "recorded at its first use");
    assert_eq!(recorded().await, Some(start), "not again within the minute");
    f.clock.advance(1);
    assert_eq!(recorded().await, Some(start));
    assert_eq!(
        recorded().await,
        Some(start + 60),
        "a minute on, recorded again"
    );
}
