//! The storage test suite, written once against the `Store` trait and instantiated for every
//! backend (`sqlite.rs`; PostgreSQL joins with its own file). Each test gets a fresh database.

#![allow(dead_code)]

mod attempts;

pub use attempts::*;

use std::sync::Arc;

use latchkey_core::{
    model::{DisplayName, Email, EnvSlug, Environment, MfaPolicy, Role, User, UserState},
    token::Token,
    totp::TotpParams,
};
use latchkey_service::{
    AuditRecord, KeyCheck, Outcome, Store, StoreError,
    store::{
        AuditQuery, MfaFilter, NewAuthenticator, NewSetupToken, NewUser, SetupPurpose, UserQuery,
    },
};

pub const T0: i64 = 1_800_000_000;

pub fn slug(s: &str) -> EnvSlug {
    EnvSlug::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

pub fn env(s: &str, policy: MfaPolicy) -> Environment {
    Environment::new(
        slug(s),
        DisplayName::parse(s).unwrap_or_else(|e| panic!("{e}")),
        Some(policy),
        T0,
    )
}

/// Ids that sort by creation like the service's UUIDv7.
pub fn id(n: u32) -> String {
    format!("0190{n:04x}-0000-7000-8000-000000000000")
}

pub fn user(env: &str, n: u32, email: &str) -> NewUser {
    NewUser {
        user: User {
            id: id(n),
            env: slug(env),
            email: Email::parse(email).unwrap_or_else(|e| panic!("{e}")),
            name: DisplayName::parse("Someone").unwrap_or_else(|e| panic!("{e}")),
            role: Role::User,
            state: UserState::Invited,
            mfa_enforced: false,
            mfa_enrolled: false,
            last_login_at: None,
            created_at: T0,
            updated_at: T0,
        },
        password_hash: None,
    }
}

pub fn setup(n: u32, user_id: &str) -> (Token, NewSetupToken) {
    let token = Token::generate().unwrap_or_else(|e| panic!("{e}"));
    let record = NewSetupToken {
        id: format!("setup-{n}"),
        user_id: user_id.to_owned(),
        hash: token.hash(),
        purpose: SetupPurpose::Invite,
        created_at: T0,
        expires_at: T0 + 86_400,
    };
    (token, record)
}

pub fn audit(env: &str, n: u32, kind: &str, target: Option<&str>) -> AuditRecord {
    AuditRecord {
        id: format!("0190{n:04x}-0000-7000-8000-00000000aaaa"),
        env: slug(env),
        at: T0 + i64::from(n),
        kind: kind.to_owned(),
        actor: Some("cli".into()),
        target: target.map(str::to_owned),
        ip: None,
        user_agent: None,
        outcome: Outcome::Success,
        detail: None,
    }
}

pub fn authenticator(id: &str, user_id: &str, confirmed: bool) -> NewAuthenticator {
    NewAuthenticator {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        label: "Phone".into(),
        secret_sealed: vec![1, 2, 3],
        params: TotpParams::default(),
        confirmed_at: confirmed.then_some(T0),
        last_step: None,
        created_at: T0,
    }
}

pub fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:?}"))
}

/// Seed environments `prod` and `staging`.
pub async fn seed<S: Store>(store: &S) {
    ok(store
        .create_environment(
            &env("prod", MfaPolicy::Required),
            &audit("prod", 1, "environment.created", None),
        )
        .await);
    ok(store
        .create_environment(
            &env("staging", MfaPolicy::Optional),
            &audit("staging", 2, "environment.created", None),
        )
        .await);
}

pub async fn add_user<S: Store>(
    store: &S,
    env: &str,
    n: u32,
    email: &str,
) -> Result<(), StoreError> {
    let u = user(env, n, email);
    let (_, s) = setup(n, &u.user.id);
    store
        .create_user(
            &u,
            &s,
            &audit(env, 100 + n, "user.created", Some(&u.user.id)),
        )
        .await
}

pub async fn key_fingerprint_is_recorded_once<S: Store>(store: S) {
    assert_eq!(ok(store.key_fingerprint().await), None);
    assert_eq!(
        ok(store.claim_key_fingerprint("aaaa").await),
        KeyCheck::Recorded
    );
    assert_eq!(
        ok(store.claim_key_fingerprint("aaaa").await),
        KeyCheck::Matches
    );
    assert_eq!(
        ok(store.claim_key_fingerprint("bbbb").await),
        KeyCheck::Mismatch {
            recorded: "aaaa".into()
        }
    );
    assert_eq!(ok(store.key_fingerprint().await), Some("aaaa".into()));
}

pub async fn bootstrap_happens_once<S: Store>(store: S) {
    let system = env("system", MfaPolicy::Required);
    let op = user("system", 1, "admin@localhost");
    let (_, s) = setup(1, &op.user.id);
    let records = [
        audit("system", 1, "environment.created", None),
        audit("system", 2, "user.created", Some(&op.user.id)),
    ];
    assert!(ok(store.bootstrap(&system, &op, &s, &records).await));
    let op2 = user("system", 2, "other@localhost");
    let (_, s2) = setup(2, &op2.user.id);
    assert!(!ok(store.bootstrap(&system, &op2, &s2, &records).await));
    let users = ok(store
        .list_users(
            &slug("system"),
            &UserQuery {
                limit: 10,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].email.as_str(), "admin@localhost");
    let events = ok(store
        .list_audit(
            &slug("system"),
            &AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(events.len(), 2, "the second bootstrap wrote nothing");
}

pub async fn environments_round_trip_and_are_unique<S: Store>(store: S) {
    seed(&store).await;
    let dup = store
        .create_environment(
            &env("prod", MfaPolicy::Off),
            &audit("prod", 3, "environment.created", None),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let original =
        ok(store.get_environment(&slug("prod")).await).unwrap_or_else(|| panic!("prod missing"));
    assert_eq!(original, env("prod", MfaPolicy::Required));
    let mut prod = original.clone();
    prod.mfa_policy = MfaPolicy::Optional;
    prod.session_idle_timeout =
        Some(latchkey_core::HumanDuration::from_secs(3600).unwrap_or_else(|e| panic!("{e}")));
    prod.issuer = Some("Acme".into());
    prod.updated_at = T0 + 5;
    ok(store
        .update_environment(
            &prod,
            &original,
            &audit("prod", 4, "environment.updated", None),
        )
        .await);
    assert_eq!(
        ok(store.get_environment(&slug("prod")).await),
        Some(prod.clone())
    );
    // A write against stale settings is refused: concurrent changes never undo each other.
    let mut stale = original.clone();
    stale.mfa_policy = MfaPolicy::Off;
    let lost = store
        .update_environment(
            &stale,
            &original,
            &audit("prod", 6, "environment.updated", None),
        )
        .await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    assert_eq!(ok(store.get_environment(&slug("prod")).await), Some(prod));
    let ghost = env("ghost", MfaPolicy::Off);
    let missing = store
        .update_environment(
            &ghost,
            &ghost,
            &audit("ghost", 5, "environment.updated", None),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert_eq!(ok(store.get_environment(&slug("ghost")).await), None);
    let slugs: Vec<String> = ok(store.list_environments().await)
        .into_iter()
        .map(|e| e.slug.to_string())
        .collect();
    assert_eq!(slugs, ["prod", "staging"]);
    // A failed write leaves no audit record behind: each write is one transaction.
    let events = ok(store
        .list_audit(
            &slug("ghost"),
            &AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await);
    assert!(events.is_empty());
}

pub async fn email_is_unique_per_environment_case_insensitively<S: Store>(store: S) {
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "Alice@Example.com").await);
    let dup = add_user(&store, "prod", 2, "alice@EXAMPLE.COM").await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // The same email elsewhere is another user.
    ok(add_user(&store, "staging", 3, "alice@example.com").await);
    let found = ok(store
        .find_user_by_email(&slug("prod"), "alice@example.com")
        .await)
    .unwrap_or_else(|| panic!("not found"));
    assert_eq!(found.email.as_str(), "Alice@Example.com", "stored as given");
    assert_eq!(found.id, id(1));
    assert!(
        ok(store.get_user(&slug("staging"), &id(1)).await).is_none(),
        "environments are sealed"
    );
    // The failed insert wrote neither the user nor its audit record.
    let events = ok(store
        .list_audit(
            &slug("prod"),
            &AuditQuery {
                kind: Some("user.created".into()),
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(events.len(), 1);
}

pub async fn users_to_unknown_environments_are_refused<S: Store>(store: S) {
    let r = add_user(&store, "nowhere", 1, "a@example.com").await;
    assert!(r.is_err(), "{r:?}");
}

pub async fn deleting_a_user_cascades<S: Store>(store: S) {
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    ok(store
        .insert_authenticator(&authenticator("auth-1", &id(1), true))
        .await);
    assert_eq!(ok(store.list_authenticators(&id(1)).await).len(), 1);
    // An API token the user made (as an admin of `prod`).
    let token = latchkey_service::store::NewApiToken {
        id: "token-1".into(),
        hash: latchkey_core::token::Token::generate()
            .unwrap_or_else(|e| panic!("{e}"))
            .hash(),
        env: Some(slug("prod")),
        name: "ci".into(),
        created_by: Some(format!("user:{}", id(1))),
        created_at: T0,
    };
    ok(store
        .create_api_token(&token, &audit("prod", 8, "api_token.created", None))
        .await);
    assert!(
        !ok(store
            .delete_user(
                &slug("staging"),
                &id(1),
                &audit("staging", 9, "user.deleted", None)
            )
            .await),
        "wrong environment deletes nothing"
    );
    let tokens = ok(store.list_api_tokens(Some(&slug("prod"))).await);
    assert_eq!(
        tokens[0].revoked_at, None,
        "nor touches the tokens of the user it did not delete"
    );
    assert!(ok(store
        .delete_user(
            &slug("prod"),
            &id(1),
            &audit("prod", 10, "user.deleted", Some(&id(1)))
        )
        .await));
    assert!(ok(store.list_authenticators(&id(1)).await).is_empty());
    assert!(ok(store.get_user(&slug("prod"), &id(1)).await).is_none());
    assert!(!ok(store
        .delete_user(
            &slug("prod"),
            &id(1),
            &audit("prod", 11, "user.deleted", None)
        )
        .await));
}

pub async fn totp_step_advances_only_forward<S: Store>(store: S) {
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    ok(store
        .insert_authenticator(&authenticator("auth-1", &id(1), true))
        .await);
    assert!(
        ok(store.advance_totp_step("auth-1", 100, T0).await),
        "first step"
    );
    assert!(
        !ok(store.advance_totp_step("auth-1", 100, T0).await),
        "same step again"
    );
    assert!(
        !ok(store.advance_totp_step("auth-1", 99, T0).await),
        "earlier step"
    );
    assert!(
        ok(store.advance_totp_step("auth-1", 101, T0 + 30).await),
        "later step"
    );
    assert!(!ok(store
        .advance_totp_step("no-such-authenticator", 500, T0)
        .await));
    let a = ok(store.list_authenticators(&id(1)).await);
    assert_eq!(a[0].last_step, Some(101));
    assert_eq!(a[0].last_used_at, Some(T0 + 30));
}

pub async fn concurrent_step_updates_let_exactly_one_win<S: Store>(store: S) {
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    ok(store
        .insert_authenticator(&authenticator("auth-1", &id(1), true))
        .await);
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.advance_totp_step("auth-1", 7_000, T0).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if ok(ok(t.await)) {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

pub async fn listing_filters_and_paginates<S: Store>(store: S) {
    seed(&store).await;
    for n in 1..=7 {
        ok(add_user(&store, "prod", n, &format!("user{n}@example.com")).await);
    }
    ok(add_user(&store, "staging", 50, "user1@example.com").await);
    // Users 2 and 4 have a confirmed authenticator; user 5 only a pending one.
    ok(store
        .insert_authenticator(&authenticator("a2", &id(2), true))
        .await);
    ok(store
        .insert_authenticator(&authenticator("a4", &id(4), true))
        .await);
    ok(store
        .insert_authenticator(&authenticator("a5", &id(5), false))
        .await);
    let prod = slug("prod");
    let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let all = ok(store
        .list_users(
            &prod,
            &UserQuery {
                limit: 100,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(
        ids(all.clone()),
        (1..=7).map(id).collect::<Vec<_>>(),
        "oldest first, this environment only"
    );
    assert!(all[1].mfa_enrolled && all[3].mfa_enrolled && !all[4].mfa_enrolled);
    let enrolled = ok(store
        .list_users(
            &prod,
            &UserQuery {
                mfa: Some(MfaFilter::Enrolled),
                limit: 100,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(ids(enrolled), [id(2), id(4)]);
    let not = ok(store
        .list_users(
            &prod,
            &UserQuery {
                mfa: Some(MfaFilter::NotEnrolled),
                limit: 100,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(ids(not), [id(1), id(3), id(5), id(6), id(7)]);
    let page1 = ok(store
        .list_users(
            &prod,
            &UserQuery {
                limit: 3,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(ids(page1), [id(1), id(2), id(3)]);
    let page2 = ok(store
        .list_users(
            &prod,
            &UserQuery {
                limit: 3,
                after: Some(id(3)),
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(ids(page2), [id(4), id(5), id(6)]);
    let q = ok(store
        .list_users(
            &prod,
            &UserQuery {
                email_contains: Some("user7".into()),
                limit: 10,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(ids(q), [id(7)]);
    let admins = ok(store
        .list_users(
            &prod,
            &UserQuery {
                role: Some(Role::Admin),
                limit: 10,
                ..UserQuery::default()
            },
        )
        .await);
    assert!(admins.is_empty());
    let invited = ok(store
        .list_users(
            &prod,
            &UserQuery {
                state: Some(UserState::Invited),
                limit: 10,
                ..UserQuery::default()
            },
        )
        .await);
    assert_eq!(invited.len(), 7);
    // Search text is data, never SQL.
    let odd = ok(store
        .list_users(
            &prod,
            &UserQuery {
                email_contains: Some("%' OR 1=1 --".into()),
                limit: 10,
                ..UserQuery::default()
            },
        )
        .await);
    assert!(odd.is_empty());
}

pub async fn audit_is_listed_newest_first_with_filters<S: Store>(store: S) {
    seed(&store).await;
    for n in 10..15 {
        ok(store
            .append_audit(&audit(
                "prod",
                n,
                if n % 2 == 0 {
                    "login.failed"
                } else {
                    "login.succeeded"
                },
                Some("u1"),
            ))
            .await);
    }
    let prod = slug("prod");
    let all = ok(store
        .list_audit(
            &prod,
            &AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(all.len(), 6, "five logins and the environment's creation");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let failed = ok(store
        .list_audit(
            &prod,
            &AuditQuery {
                kind: Some("login.failed".into()),
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(failed.len(), 3);
    let page = ok(store
        .list_audit(
            &prod,
            &AuditQuery {
                limit: 2,
                before: Some(all[1].id.clone()),
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(page, all[2..4].to_vec());
    let window = ok(store
        .list_audit(
            &prod,
            &AuditQuery {
                since: Some(T0 + 11),
                until: Some(T0 + 13),
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(window.len(), 2);
    let by_user = ok(store
        .list_audit(
            &prod,
            &AuditQuery {
                user: Some("u1".into()),
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await);
    assert_eq!(by_user.len(), 5);
}

pub async fn backup_is_a_readable_copy<S: Store>(
    store: S,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    let target = dir.join("backup.db");
    ok(store.backup_to(&target).await);
    assert!(target.exists());
    let again = store.backup_to(&target).await;
    assert!(again.is_err(), "an existing file is never overwritten");
    target
}

pub async fn purging_removes_only_what_is_over<S: Store>(store: S) {
    use latchkey_service::store::NewSession;
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    let session = |n: u32, at: i64| NewSession {
        id: format!("s{n}"),
        token_hash: latchkey_core::token::Token::generate()
            .unwrap_or_else(|e| panic!("{e}"))
            .hash(),
        user_id: id(1),
        env: slug("prod"),
        authenticated_at: at,
        amr: "pwd otp".into(),
        created_at: at,
        ip: None,
        user_agent: None,
    };
    let max_age = 30 * 86_400;
    for (n, at) in [(1, T0), (2, T0 + 100)] {
        let w = latchkey_service::store::LoginWrite {
            now: at,
            user_id: id(1),
            from: None,
            next: latchkey_service::store::LoginNext::Authenticate(session(n, at)),
            password: None,
            rehash: None,
            proof: None,
            new_authenticator: None,
            new_recovery_codes: None,
            reset_counters: Vec::new(),
            audit: Vec::new(),
        };
        ok(store.write_login(&w).await);
    }
    assert_eq!(ok(store.list_sessions(&id(1)).await).len(), 2);
    ok(store.purge_expired(T0 + max_age + 50).await);
    let left: Vec<String> = ok(store.list_sessions(&id(1)).await)
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, ["s2"], "only the session past its max age went");
}

pub async fn concurrent_demotions_keep_an_operator<S: Store>(store: S) {
    use latchkey_service::store::UserUpdate;
    let system = env("system", MfaPolicy::Required);
    let mut op1 = user("system", 1, "op1@example.com");
    op1.user.role = Role::Admin;
    op1.user.state = UserState::Active;
    let (_, s1) = setup(1, &op1.user.id);
    ok(store.bootstrap(&system, &op1, &s1, &[]).await);
    let mut op2 = user("system", 2, "op2@example.com");
    op2.user.role = Role::Admin;
    op2.user.state = UserState::Active;
    let (_, s2) = setup(2, &op2.user.id);
    ok(store
        .create_user(&op2, &s2, &audit("system", 3, "user.created", None))
        .await);
    let store = Arc::new(store);
    let tasks: Vec<_> = [id(1), id(2)]
        .into_iter()
        .map(|target| {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                let update = UserUpdate {
                    disabled: Some(true),
                    ..UserUpdate::default()
                };
                s.update_user(&slug("system"), &target, &update, T0, &[])
                    .await
            })
        })
        .collect();
    let mut done = 0;
    let mut refused = 0;
    for t in tasks {
        match ok(t.await) {
            Ok(Some(_)) => done += 1,
            Err(StoreError::Conflict(_)) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        (done, refused),
        (1, 1),
        "system keeps an active operator whatever the interleaving"
    );
}

pub async fn concurrent_removals_keep_the_last_authenticator<S: Store>(store: S) {
    use latchkey_service::store::Proof;
    seed(&store).await;
    ok(add_user(&store, "prod", 1, "a@example.com").await);
    ok(store
        .insert_authenticator(&authenticator("a1", &id(1), true))
        .await);
    ok(store
        .insert_authenticator(&authenticator("a2", &id(1), true))
        .await);
    let store = Arc::new(store);
    let tasks: Vec<_> = [("a1", "a2", 100_u32), ("a2", "a1", 101_u32)]
        .into_iter()
        .map(|(remove, proof_with, step)| {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                let proof = Proof::Totp {
                    authenticator_id: proof_with.to_owned(),
                    step: u64::from(step),
                };
                s.remove_authenticator(
                    &id(1),
                    remove,
                    true,
                    &proof,
                    T0,
                    &audit("prod", step, "mfa.removed", None),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let _ = ok(t.await);
    }
    let left = ok(store.list_authenticators(&id(1)).await)
        .into_iter()
        .filter(|a| a.confirmed_at.is_some())
        .count();
    assert_eq!(left, 1, "one authenticator stays where one is required");
}

/// The page that asks before enforcing MFA shows what the act will do: the preview and the act
/// agree, with and without `all`.
pub async fn enforce_preview_matches_the_act<S: Store>(store: S) {
    use latchkey_service::store::{LoginNext, LoginWrite, NewSession};
    seed(&store).await;
    for (n, email) in [
        (1, "a@example.com"),
        (2, "b@example.com"),
        (3, "c@example.com"),
    ] {
        ok(add_user(&store, "prod", n, email).await);
    }
    ok(store
        .insert_authenticator(&authenticator("a1", &id(1), true))
        .await);
    // User 1 (with MFA) has one session, user 2 (without) two, user 3 none.
    for (n, user) in [(1, 1), (2, 2), (3, 2)] {
        let session = NewSession {
            id: format!("s{n}"),
            token_hash: Token::generate().unwrap_or_else(|e| panic!("{e}")).hash(),
            user_id: id(user),
            env: slug("prod"),
            authenticated_at: T0,
            amr: "pwd".into(),
            created_at: T0,
            ip: None,
            user_agent: None,
        };
        ok(store
            .write_login(&LoginWrite {
                now: T0,
                user_id: id(user),
                from: None,
                next: LoginNext::Authenticate(session),
                password: None,
                rehash: None,
                proof: None,
                new_authenticator: None,
                new_recovery_codes: None,
                reset_counters: Vec::new(),
                audit: Vec::new(),
            })
            .await);
    }
    let counts = |c: latchkey_service::store::EnforceCounts| {
        (c.users_marked, c.users_signed_out, c.sessions_ended)
    };
    let prod = slug("prod");
    assert_eq!(
        counts(ok(store.enforce_preview(&prod, false).await)),
        (2, 1, 2)
    );
    assert_eq!(
        counts(ok(store.enforce_preview(&prod, true).await)),
        (2, 2, 3)
    );
    // The preview changed nothing: the act finds the same.
    let done = ok(store
        .enforce_mfa(&prod, false, &audit("prod", 50, "mfa.enforced", None))
        .await);
    assert_eq!(counts(done), (2, 1, 2));
    // Afterwards nobody is left to mark, and only user 1's session remains to end with `all`.
    assert_eq!(
        counts(ok(store.enforce_preview(&prod, false).await)),
        (0, 0, 0)
    );
    assert_eq!(
        counts(ok(store.enforce_preview(&prod, true).await)),
        (0, 1, 1)
    );
}

/// Instantiate every test of the suite for one backend. `$make` is an async expression that
/// yields `Some((store, guard))`, where the guard keeps the fresh database alive for the test,
/// or `None` when the backend is not available here (the test then skips, having said why).
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        store_suite!(@tests $make;
            key_fingerprint_is_recorded_once,
            bootstrap_happens_once,
            environments_round_trip_and_are_unique,
            email_is_unique_per_environment_case_insensitively,
            users_to_unknown_environments_are_refused,
            deleting_a_user_cascades,
            totp_step_advances_only_forward,
            concurrent_step_updates_let_exactly_one_win,
            listing_filters_and_paginates,
            audit_is_listed_newest_first_with_filters,
            an_abandoned_attempt_never_locks_for_good,
            concurrent_claims_evaluate_at_most_the_threshold,
            the_claims_lock_is_the_policys,
            a_step_attempt_is_claimed_judged_and_settled_at_once,
            a_right_code_that_loses_its_race_is_counted_and_writes_nothing,
            concurrent_step_attempts_judge_at_most_the_threshold,
            purging_removes_only_what_is_over,
            concurrent_demotions_keep_an_operator,
            concurrent_removals_keep_the_last_authenticator,
            enforce_preview_matches_the_act,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _guard)) = $make.await else { return };
                suite::$name(store).await;
            }
        )+
    };
}
