//! The login, replay, lockout, session-lifetime, reset and enforce-MFA use cases, on both stores
//! and a test clock: moving time is a call, never a sleep, so a TOTP step, a lock or a session's
//! end is reached exactly.
//!
//! Every test runs twice: on SQLite (a file in a temporary directory) and on PostgreSQL (a
//! database of its own on `LATCHKEY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, dropped afterwards). Where PostgreSQL cannot be
//! reached its half skips with a printed reason, unless `LATCHKEY_REQUIRE_POSTGRES=1` (set by
//! `.ci/run`), which makes it fail instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use std::sync::Arc;

use latchkey_core::{
    HumanDuration, SecretString,
    login::Step,
    model::{Email, EnvSlug, LockoutSettings, MfaPolicy, Role},
    password::HashCost,
    policy,
    sealing::{Keyring, SealingKey},
    totp::{self, TotpParams, TotpSecret},
};
use latchkey_service::{
    Actor, Caller, Origin, Service, ServiceConfig, ServiceError, TestClock,
    authz::{Identity, Operator},
    environments::EnvironmentPatch,
    factors::FactorInput,
    login::LoginAnswer,
    store::{AuditQuery, AuditStore},
};
use latchkey_store::AnyStore;
use latchkey_testkit::ScratchDatabase;

/// A Tuesday in 2027, at the start of a TOTP step.
const T0: i64 = 1_800_000_000;
const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    service: Service<AnyStore>,
    clock: TestClock,
    env: EnvSlug,
    _dir: tempfile::TempDir,
    _database: Option<ScratchDatabase>,
}

/// Someone who finished their first login: their authenticator and their session's token.
struct Person {
    email: String,
    secret: TotpSecret,
    params: TotpParams,
    session: String,
}

fn config() -> ServiceConfig {
    let mut c = ServiceConfig::new("https://auth.example.com/");
    c.hash_cost = HashCost::insecure_for_tests();
    c
}

/// A browser at one address (no device cookie), as every login here comes from.
fn caller() -> Caller {
    Caller {
        actor: Actor::Anonymous,
        origin: Origin {
            ip: Some("192.0.2.7".into()),
            ..Origin::local()
        },
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::new(s.to_owned())
}

impl Fixture {
    /// The service on `store`, an environment `prod` with MFA `policy`, at [`T0`].
    async fn start(
        store: AnyStore,
        dir: tempfile::TempDir,
        database: Option<ScratchDatabase>,
    ) -> Self {
        let clock = TestClock::at(T0);
        let service = Service::start(
            store,
            Arc::new(clock.clone()),
            Keyring::new(SealingKey::generate().unwrap()),
            config(),
        )
        .await
        .unwrap();
        let env = EnvSlug::parse("prod").unwrap();
        service
            .create_environment(
                &Operator::local_cli(),
                env.clone(),
                None,
                Some(MfaPolicy::Required),
            )
            .await
            .unwrap();
        Self {
            service,
            clock,
            env,
            _dir: dir,
            _database: database,
        }
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("flows.db").display());
        let store = AnyStore::open(&url, 4).await.unwrap();
        Self::start(store, dir, None).await
    }

    /// `None` (skip) when PostgreSQL is not here and not required.
    async fn postgres() -> Option<Self> {
        let database = ScratchDatabase::create("flows").await?;
        let store = AnyStore::open(&database.url, 8).await.unwrap();
        Some(Self::start(store, tempfile::tempdir().unwrap(), Some(database)).await)
    }

    async fn patch(&self, patch: EnvironmentPatch) {
        self.service
            .update_environment(&Operator::local_cli(), &self.env, patch)
            .await
            .unwrap();
    }

    fn code(&self, p: &Person) -> SecretString {
        secret(&totp::code_at(&p.secret, &p.params, self.clock_now()))
    }

    fn clock_now(&self) -> i64 {
        latchkey_service::Clock::now(&self.clock)
    }

    /// Invite `email`, then walk their setup link: a password, then (under a required policy)
    /// an authenticator whose first code ends the login.
    async fn enrol(&self, email: &str) -> Person {
        let s = &self.service;
        let admin = s.cli_admin(&self.env).await.unwrap();
        let (_, link) = s
            .create_user(&admin, Email::parse(email).unwrap(), None, Role::User)
            .await
            .unwrap();
        let started = s
            .start_setup_link(&caller(), &self.env, link.token.expose())
            .await
            .unwrap();
        assert_eq!(started.status, Step::PasswordChangeRequired);
        let chosen = s
            .login_new_password(&caller(), &self.env, token(&started), PASSWORD)
            .await
            .unwrap();
        if chosen.status == Step::Authenticated {
            return Person {
                email: email.to_owned(),
                secret: TotpSecret::from_bytes(Vec::new()),
                params: TotpParams::default(),
                session: session(&chosen),
            };
        }
        assert_eq!(chosen.status, Step::MfaSetupRequired);
        let offer = s
            .login_mfa_setup(&caller(), &self.env, token(&chosen))
            .await
            .unwrap();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(offer.secret.expose().as_bytes())
            .unwrap();
        let person = Person {
            email: email.to_owned(),
            secret: TotpSecret::from_bytes(bytes),
            params: offer.params,
            session: String::new(),
        };
        let done = s
            .login_mfa_confirm(
                &caller(),
                &self.env,
                token(&chosen),
                &self.code(&person),
                "phone",
            )
            .await
            .unwrap();
        assert_eq!(done.status, Step::Authenticated);
        assert_eq!(done.recovery_codes.as_ref().map(Vec::len), Some(10));
        Person {
            session: session(&done),
            ..person
        }
    }

    /// The password step; its answer.
    async fn password(&self, p: &Person) -> Result<LoginAnswer, ServiceError> {
        self.service
            .login_password(&caller(), &self.env, &p.email, PASSWORD)
            .await
    }

    /// The code step of the login `answer` opened.
    async fn mfa(
        &self,
        answer: &LoginAnswer,
        code: &SecretString,
    ) -> Result<LoginAnswer, ServiceError> {
        self.service
            .login_mfa(
                &caller(),
                &self.env,
                token(answer),
                &FactorInput::Code(code.clone()),
            )
            .await
    }

    /// Whether the session `token` is valid now.
    async fn valid(&self, token: &str) -> bool {
        match self.service.authenticate(token).await {
            Ok(_) => true,
            Err(ServiceError::Unauthenticated) => false,
            Err(e) => panic!("a session check failed: {e:?}"),
        }
    }
}

fn token(answer: &LoginAnswer) -> &str {
    answer.login_token.as_ref().expect("a login token").expose()
}

fn session(answer: &LoginAnswer) -> String {
    answer
        .session
        .as_ref()
        .expect("a session")
        .token
        .expose()
        .to_owned()
}

/// A code that is not the one of `now`'s step nor of its neighbours.
fn wrong(right: &SecretString) -> SecretString {
    let n: u32 = right.expose().parse().unwrap();
    secret(&format!("{:06}", (n + 500_000) % 1_000_000))
}

/// Each test, once per store.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Fixture::sqlite().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(f) = super::Fixture::postgres().await {
                        super::$name(f).await;
                    }
                }
            )*
        }
    };
}

on_both_stores!(
    a_login_takes_the_password_then_a_fresh_code,
    a_code_is_never_accepted_twice,
    of_twelve_concurrent_submissions_of_one_code_exactly_one_wins,
    wrong_codes_lock_the_account_on_the_policys_schedule,
    a_session_ends_at_its_max_age_and_after_its_idle_timeout,
    resets_sign_out_and_ask_for_a_new_password_or_device,
    enforcing_mfa_signs_out_whoever_has_none,
    an_api_token_records_its_use_at_most_once_a_minute,
);

async fn a_login_takes_the_password_then_a_fresh_code(f: Fixture) {
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

async fn a_code_is_never_accepted_twice(f: Fixture) {
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

async fn of_twelve_concurrent_submissions_of_one_code_exactly_one_wins(f: Fixture) {
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

async fn wrong_codes_lock_the_account_on_the_policys_schedule(f: Fixture) {
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

async fn a_session_ends_at_its_max_age_and_after_its_idle_timeout(f: Fixture) {
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

async fn resets_sign_out_and_ask_for_a_new_password_or_device(f: Fixture) {
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

async fn enforcing_mfa_signs_out_whoever_has_none(f: Fixture) {
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

async fn an_api_token_records_its_use_at_most_once_a_minute(f: Fixture) {
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
