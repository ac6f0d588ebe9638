//! A session's max age and idle timeout (SECURITY S5).

use latchkey_core::{HumanDuration, login::Step};
use latchkey_service::environments::EnvironmentPatch;

use crate::fixture::{Fixture, session};

pub(crate) async fn a_session_ends_at_its_max_age_and_after_its_idle_timeout(f: Fixture) {
    f.patch(EnvironmentPatch {
        session_max_age: Some(HumanDuration::from_secs(3_600).unwrap()),
        session_idle_timeout: Some(Some(HumanDuration::from_secs(600).unwrap())),
        ..EnvironmentPatch::default()
    })
    .await;
    let alice = f.enrol("alice@example.com").await;
    let signed_in = f.clock_now();

    // Used every nine minutes, it lives to its max age, and not a second beyond.
    while f.clock_now() + 540 < signed_in + 3_600 {
        f.clock.advance(540);
        assert!(
            f.valid(&alice.session).await,
            "at +{}",
            f.clock_now() - signed_in
        );
    }
    f.clock.set(signed_in + 3_599);
    assert!(f.valid(&alice.session).await);
    f.clock.set(signed_in + 3_600);
    assert!(!f.valid(&alice.session).await, "ended at its max age");
    f.clock.advance(1);
    assert!(!f.valid(&alice.session).await, "and stays ended");

    // Unused for the idle timeout, a session ends early; used just before, it does not.
    f.clock.advance(30);
    let step = f.password(&alice).await.unwrap();
    let fresh = session(&f.mfa(&step, &f.code(&alice)).await.unwrap());
    f.clock.advance(599);
    assert!(f.valid(&fresh).await, "used 1 s before the idle timeout");
    f.clock.advance(600);
    assert!(!f.valid(&fresh).await, "idle for the whole timeout");

    // Coming back takes the password and a fresh code.
    f.clock.advance(30);
    assert_eq!(f.password(&alice).await.unwrap().status, Step::MfaRequired);
}
