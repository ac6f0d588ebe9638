//! The use cases of the foundation over a real (SQLite) store and a test clock: first start,
//! the sealing key's fingerprint, environments, invitations, listing, the hashing pool.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use std::{sync::Arc, time::Duration};

use latchkey_core::{
    HumanDuration,
    model::{DisplayName, Email, EnvSlug, MfaPolicy, Role},
    password::HashCost,
    sealing::{Keyring, SealingKey},
};
use latchkey_service::{
    HashPool, Service, ServiceConfig, ServiceError, TestClock,
    authz::Operator,
    environments::EnvironmentPatch,
    store::{AuditQuery, AuditStore},
    users::UserFilter,
};
use latchkey_store::SqliteStore;
use tempfile::TempDir;

const T0: i64 = 1_800_000_000;

struct Fixture {
    service: Service<SqliteStore>,
    clock: TestClock,
    key: SealingKey,
    dir: TempDir,
}

fn config() -> ServiceConfig {
    let mut c = ServiceConfig::new("https://auth.example.com/");
    c.hash_cost = HashCost::insecure_for_tests();
    c
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("t.db"))
        .await
        .unwrap();
    let clock = TestClock::at(T0);
    let key = SealingKey::generate().unwrap();
    let service = Service::start(
        store,
        Arc::new(clock.clone()),
        Keyring::new(key.clone()),
        config(),
    )
    .await
    .unwrap();
    Fixture {
        service,
        clock,
        key,
        dir,
    }
}

fn slug(s: &str) -> EnvSlug {
    EnvSlug::parse(s).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

#[tokio::test]
async fn first_start_creates_system_and_one_operator_link() {
    let f = fixture().await;
    let link = f
        .service
        .bootstrap(&email("ops@example.com"))
        .await
        .unwrap()
        .expect("a link on first start");
    assert!(
        link.url
            .starts_with("https://auth.example.com/e/system/setup?token="),
        "{}",
        link.url
    );
    assert!(link.url.ends_with(link.token.expose()));
    assert_eq!(link.token.expose().len(), 43);
    assert_eq!(link.expires_at, T0 + 86_400);
    assert_eq!(link.valid_for.to_string(), "24h");
    assert!(
        f.service
            .bootstrap(&email("ops@example.com"))
            .await
            .unwrap()
            .is_none(),
        "a restart prints none"
    );
    let system = f.service.environment(&slug("system")).await.unwrap();
    assert_eq!(system.mfa_policy, MfaPolicy::Required);
    let op = f
        .service
        .user_by_email(&slug("system"), &email("OPS@example.com"))
        .await
        .unwrap();
    assert_eq!(op.role, Role::Admin);
    let events = f
        .service
        .store()
        .list_audit(
            &slug("system"),
            &AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"environment.created") && kinds.contains(&"user.created"));
    assert!(events.iter().all(|e| e.actor.as_deref() == Some("system")));
}

#[tokio::test]
async fn a_different_key_is_refused() {
    let f = fixture().await;
    let store = f.service.store().clone();
    // The same key again is fine.
    let same = Service::start(
        store.clone(),
        Arc::new(f.clock.clone()),
        Keyring::new(f.key.clone()),
        config(),
    )
    .await;
    assert!(same.is_ok());
    let other = Service::start(
        store,
        Arc::new(f.clock.clone()),
        Keyring::new(SealingKey::generate().unwrap()),
        config(),
    )
    .await;
    match other {
        Err(ServiceError::Refused {
            code: "key_mismatch",
            message,
        }) => {
            assert!(message.contains(&f.key.id_hex()), "{message}");
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("a second key was accepted"),
    }
    drop(f.dir);
}

#[tokio::test]
async fn environments_follow_the_rules() {
    let f = fixture().await;
    let s = &f.service;
    f.service
        .bootstrap(&email("ops@example.com"))
        .await
        .unwrap();
    let prod = s
        .create_environment(
            &Operator::local_cli(),
            slug("prod"),
            None,
            Some(MfaPolicy::Required),
        )
        .await
        .unwrap();
    assert_eq!(prod.name.as_str(), "prod");
    assert_eq!(prod.session_max_age.as_secs(), 30 * 86_400);
    let dev = s
        .create_environment(
            &Operator::local_cli(),
            slug("dev"),
            Some(DisplayName::parse("Development").unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        dev.mfa_policy,
        MfaPolicy::Off,
        "new environments default to off"
    );
    assert!(matches!(
        s.create_environment(&Operator::local_cli(), slug("prod"), None, None)
            .await,
        Err(ServiceError::Conflict(_))
    ));
    assert!(matches!(
        s.create_environment(&Operator::local_cli(), slug("system"), None, None)
            .await,
        Err(ServiceError::Conflict(_))
    ));

    f.clock.advance(60);
    let patch = EnvironmentPatch {
        session_max_age: Some("12h".parse().unwrap()),
        session_idle_timeout: Some(Some(HumanDuration::from_secs(900).unwrap())),
        totp_window: Some(0),
        ..EnvironmentPatch::default()
    };
    let updated = s
        .update_environment(&Operator::local_cli(), &slug("prod"), patch)
        .await
        .unwrap();
    assert_eq!(updated.session_max_age.as_secs(), 43_200);
    assert_eq!(updated.updated_at, T0 + 60);
    assert_eq!(s.environment(&slug("prod")).await.unwrap(), updated);

    let off = EnvironmentPatch {
        mfa_policy: Some(MfaPolicy::Off),
        ..EnvironmentPatch::default()
    };
    assert!(matches!(
        s.update_environment(&Operator::local_cli(), &slug("system"), off)
            .await,
        Err(ServiceError::Refused {
            code: "mfa_required_by_policy",
            ..
        })
    ));
    let wide = EnvironmentPatch {
        totp_window: Some(11),
        ..EnvironmentPatch::default()
    };
    assert!(matches!(
        s.update_environment(&Operator::local_cli(), &slug("prod"), wide)
            .await,
        Err(ServiceError::Invalid(_))
    ));
    assert!(matches!(
        s.update_environment(
            &Operator::local_cli(),
            &slug("prod"),
            EnvironmentPatch::default()
        )
        .await,
        Err(ServiceError::Invalid(_))
    ));
    let ghost = EnvironmentPatch {
        mfa_policy: Some(MfaPolicy::Optional),
        ..EnvironmentPatch::default()
    };
    assert!(matches!(
        s.update_environment(&Operator::local_cli(), &slug("ghost"), ghost)
            .await,
        Err(ServiceError::NotFound(_))
    ));
    let bad_issuer = EnvironmentPatch {
        issuer: Some(Some("a:b".into())),
        ..EnvironmentPatch::default()
    };
    assert!(matches!(
        s.update_environment(&Operator::local_cli(), &slug("prod"), bad_issuer)
            .await,
        Err(ServiceError::Invalid(_))
    ));

    let events = s
        .store()
        .list_audit(
            &slug("prod"),
            &AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["environment.updated", "environment.created"],
        "refused changes leave no event"
    );
    assert_eq!(events[0].actor.as_deref(), Some("cli"));
    let detail = events[0].detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("\"session_max_age\":\"12h\"")
            && detail.contains("\"session_idle_timeout\":\"15m\""),
        "{detail}"
    );
}

#[tokio::test]
async fn invitations_hand_out_a_seven_day_link_and_emails_are_unique() {
    let f = fixture().await;
    let s = &f.service;
    s.create_environment(
        &Operator::local_cli(),
        slug("prod"),
        None,
        Some(MfaPolicy::Required),
    )
    .await
    .unwrap();
    let (user, link) = s
        .create_user(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            email("Alice@Example.com"),
            None,
            Role::User,
        )
        .await
        .unwrap();
    assert_eq!(user.name.as_str(), "Alice");
    assert_eq!(user.state, latchkey_core::model::UserState::Invited);
    assert_eq!(link.expires_at, T0 + 7 * 86_400);
    assert_eq!(link.valid_for.to_string(), "7d");
    assert!(
        link.url
            .starts_with("https://auth.example.com/e/prod/setup?token=")
    );
    let dup = s
        .create_user(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            email("alice@example.COM"),
            None,
            Role::Admin,
        )
        .await;
    match dup {
        Err(ServiceError::Conflict(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("{other:?}"),
    }
    // No admin of an environment that does not exist can even be made.
    let nowhere = s.cli_admin(&slug("nowhere")).await;
    assert!(matches!(
        nowhere,
        Err(ServiceError::NotFound("environment"))
    ));
    let ids = [
        user.id.clone(),
        s.create_user(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            email("b@example.com"),
            None,
            Role::Admin,
        )
        .await
        .unwrap()
        .0
        .id,
    ];
    assert!(ids[0] < ids[1], "ids sort by creation");
}

#[tokio::test]
async fn listing_pages_with_cursors_and_checks_its_arguments() {
    let f = fixture().await;
    let s = &f.service;
    s.create_environment(&Operator::local_cli(), slug("prod"), None, None)
        .await
        .unwrap();
    for n in 0..5 {
        f.clock.advance(1);
        s.create_user(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            email(&format!("u{n}@example.com")),
            None,
            Role::User,
        )
        .await
        .unwrap();
    }
    let first = s
        .list_users(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            UserFilter::default(),
            None,
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(first.users.len(), 2);
    let second = s
        .list_users(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            UserFilter::default(),
            first.next_cursor.clone(),
            Some(2),
        )
        .await
        .unwrap();
    let third = s
        .list_users(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            UserFilter::default(),
            second.next_cursor.clone(),
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(third.users.len(), 1);
    assert!(third.next_cursor.is_none(), "null at the end");
    let emails: Vec<_> = [first.users, second.users, third.users]
        .concat()
        .into_iter()
        .map(|u| u.email.to_string())
        .collect();
    assert_eq!(
        emails,
        [
            "u0@example.com",
            "u1@example.com",
            "u2@example.com",
            "u3@example.com",
            "u4@example.com"
        ]
    );
    let exact = s
        .list_users(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            UserFilter::default(),
            None,
            Some(5),
        )
        .await
        .unwrap();
    assert!(
        exact.next_cursor.is_none(),
        "a full last page has no next cursor"
    );
    for bad in [Some(0), Some(501)] {
        assert!(matches!(
            s.list_users(
                &s.cli_admin(&slug("prod")).await.unwrap(),
                UserFilter::default(),
                None,
                bad
            )
            .await,
            Err(ServiceError::Invalid(_))
        ));
    }
    assert!(matches!(
        s.list_users(
            &s.cli_admin(&slug("prod")).await.unwrap(),
            UserFilter::default(),
            Some("garbage".into()),
            None
        )
        .await,
        Err(ServiceError::Invalid(_))
    ));
    let q = UserFilter {
        q: Some("U3@".into()),
        ..UserFilter::default()
    };
    assert_eq!(
        s.list_users(&s.cli_admin(&slug("prod")).await.unwrap(), q, None, None)
            .await
            .unwrap()
            .users
            .len(),
        1
    );
}

#[tokio::test]
async fn the_hashing_pool_is_bounded_and_answers_busy_beyond_it() {
    let pool = HashPool::new(HashCost::insecure_for_tests(), 1, 2).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let hold = |rx: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
        move |_: &latchkey_core::password::Argon2Hasher| {
            let _ = rx.lock().map(|r| r.recv_timeout(Duration::from_secs(10)));
        }
    };
    let p1 = pool.clone();
    let first = tokio::spawn({
        let rx = Arc::clone(&rx);
        async move { p1.run(hold(rx)).await }
    });
    let p2 = pool.clone();
    let second = tokio::spawn({
        let rx = Arc::clone(&rx);
        async move { p2.run(hold(rx)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Two admitted (one running, one waiting): a third is refused at once.
    assert!(pool.run(|_| ()).await.is_err());
    tx.send(()).unwrap();
    tx.send(()).unwrap();
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
    assert!(
        pool.run(|_| 42).await == Ok(42),
        "free again once the burst is over"
    );
}

/// A full pool makes a request wait a little for a place before refusing it: a place that
/// frees within the wait is taken (a burst is absorbed), one that does not is refused after
/// the wait, not at once (a storm that ignores `Retry-After` is paced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_waits_briefly_for_a_place_then_refuses() {
    use latchkey_service::hashing::ADMISSION_WAIT;
    let pool = HashPool::new(HashCost::insecure_for_tests(), 1, 1).unwrap();
    let busy_for = |ms: u64| {
        move |_: &latchkey_core::password::Argon2Hasher| {
            std::thread::sleep(Duration::from_millis(ms));
        }
    };
    let p = pool.clone();
    let short = tokio::spawn(async move { p.run(busy_for(60)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        pool.run(|_| 7).await,
        Ok(7),
        "the place freed within the wait"
    );
    assert!(short.await.unwrap().is_ok());

    let p = pool.clone();
    let long = tokio::spawn(async move {
        p.run(busy_for(
            u64::try_from(ADMISSION_WAIT.as_millis()).unwrap() * 3,
        ))
        .await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let asked = std::time::Instant::now();
    assert!(
        pool.run(|_| ()).await.is_err(),
        "refused when no place frees"
    );
    assert!(
        asked.elapsed() >= ADMISSION_WAIT,
        "refused only after the wait: {:?}",
        asked.elapsed()
    );
    assert!(long.await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_goes_away_does_not_free_its_hashing_slot() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pool = HashPool::new(HashCost::insecure_for_tests(), 1, 8).unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let job = |running: Arc<AtomicUsize>, peak: Arc<AtomicUsize>| {
        move |_: &latchkey_core::password::Argon2Hasher| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            running.fetch_sub(1, Ordering::SeqCst);
        }
    };
    // Callers that hang up: their futures are dropped while the hash runs or waits.
    let abandoned: Vec<_> = (0..4)
        .map(|_| {
            let (p, r, k) = (pool.clone(), Arc::clone(&running), Arc::clone(&peak));
            tokio::spawn(async move { p.run(job(r, k)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for task in &abandoned {
        task.abort();
    }
    let patient: Vec<_> = (0..3)
        .map(|_| {
            let (p, r, k) = (pool.clone(), Arc::clone(&running), Arc::clone(&peak));
            tokio::spawn(async move { p.run(job(r, k)).await })
        })
        .collect();
    for task in patient {
        let _ = task.await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "never more hashes at once than workers"
    );
}

/// A login refused because the hashing pool is full is not an attempt: a storm that keeps the
/// pool busy cannot lock out a user who then logs in with the right password.
#[tokio::test]
async fn busy_answers_do_not_count_against_the_lockout() {
    use latchkey_service::{Actor, Caller, Origin};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("t.db"))
        .await
        .unwrap();
    let mut c = config();
    c.hash_workers = 1;
    c.hash_queue = 1;
    let service = Service::start(
        store,
        Arc::new(TestClock::at(T0)),
        Keyring::new(SealingKey::generate().unwrap()),
        c,
    )
    .await
    .unwrap();
    let op = Operator::local_cli();
    service
        .create_environment(&op, slug("dev"), None, Some(MfaPolicy::Off))
        .await
        .unwrap();
    let admin = service.cli_admin(&slug("dev")).await.unwrap();
    let (_, link) = service
        .create_user(&admin, email("rosa@example.com"), None, Role::User)
        .await
        .unwrap();
    let anonymous = Caller {
        actor: Actor::Anonymous,
        origin: Origin::default(),
    };
    let password = "quilt anchor mango river";
    let started = service
        .start_setup_link(&anonymous, &slug("dev"), link.token.expose())
        .await
        .unwrap();
    let token = started.login_token.unwrap();
    service
        .login_new_password(&anonymous, &slug("dev"), token.expose(), password)
        .await
        .unwrap();
    // The only place in the pool is taken: every login is "busy", more than the lockout allows.
    let held = service.hashing().admit().await.unwrap();
    for _ in 0..10 {
        let r = service
            .login_password(&anonymous, &slug("dev"), "rosa@example.com", password)
            .await;
        assert!(matches!(r, Err(ServiceError::Busy)), "{r:?}");
    }
    drop(held);
    let r = service
        .login_password(&anonymous, &slug("dev"), "rosa@example.com", password)
        .await;
    assert!(r.is_ok(), "not locked out by busy answers: {r:?}");
}
