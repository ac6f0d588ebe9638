//! What an auth server must never do, checked on the real binary: leak a secret into its logs
//! or store one in clear (SECURITY G2, E4, S1), answer bad input with anything but a 4xx
//! problem (R3), or let a burst of logins past its hashing bound (P6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use crate::common;

use common::{code_from_uri, invite_and_enrol, now, ok, password_login, start, start_with};
use serde_json::json;

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

#[test]
fn no_secret_reaches_the_logs_or_the_database_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(d, &[], &[("RUST_LOG", "trace")]);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    let password = "correct horse battery staple";
    let alice = invite_and_enrol(&server, d, "prod", "alice@example.com", password);
    let mut secrets: Vec<String> = vec![
        password.into(),
        alice.secret.clone(),
        alice.session.clone(),
        alice.setup_token.clone(),
    ];
    secrets.extend(alice.login_tokens.iter().cloned());
    secrets.extend(alice.recovery_codes.iter().cloned());
    // A second login with a code, a recovery-code login, a failed login, a password change.
    let r = password_login(&server, "prod", &alice.email, password);
    let lt = r.json()["login_token"].as_str().unwrap().to_owned();
    secrets.push(lt.clone());
    let code = code_from_uri(&alice.uri, now() + 30);
    let r = server.post(
        "/api/v1/environments/prod/login/mfa",
        &json!({"login_token": lt, "code": code}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let session2 = r.json()["session"]["token"].as_str().unwrap().to_owned();
    secrets.push(session2.clone());
    let r = password_login(&server, "prod", &alice.email, "a wrong password attempt");
    assert_eq!(r.status, 401);
    secrets.push("a wrong password attempt".into());
    let new_password = "a brand new passphrase here";
    let r = server.post_with(
        "/api/v1/me/password",
        &[("authorization", &format!("Bearer {session2}"))],
        &json!({"current_password": password, "new_password": new_password}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    secrets.push(new_password.into());
    let operator = server
        .lines
        .iter()
        .find(|l| l.contains("setup?token="))
        .map(|l| common::link_token(l))
        .unwrap();
    secrets.push(operator);

    let (status, logs) = server.stop();
    assert!(status.success());
    assert!(
        logs.len() > 1000,
        "trace logging was on: {} bytes",
        logs.len()
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the log: {}…",
            &secret[..4]
        );
    }
    let mut files = Vec::new();
    for f in ["latchkey.db", "latchkey.db-wal", "latchkey.db-shm"] {
        if let Ok(bytes) = std::fs::read(d.join(f)) {
            files.push((f, bytes));
        }
    }
    assert!(!files.is_empty());
    for (f, bytes) in &files {
        for secret in &secrets {
            assert!(
                !contains(bytes, secret),
                "a secret is stored in clear in {f}: {}…",
                &secret[..4]
            );
        }
    }
    // The audit log recorded the flow.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kinds: Vec<String> = rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", d.join("latchkey.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT type FROM audit_events WHERE env = 'prod' ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap()
    });
    for expected in [
        "user.created",
        "password.changed",
        "mfa.enrolled",
        "login.succeeded",
        "login.failed",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "no {expected} in {kinds:?}"
        );
    }
}

#[test]
fn bad_input_gets_a_4xx_problem_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    let alice = invite_and_enrol(
        &server,
        d,
        "prod",
        "alice@example.com",
        "quilt anchor mango river",
    );
    let lt = password_login(&server, "prod", &alice.email, "quilt anchor mango river").json()["login_token"].as_str().unwrap().to_owned();
    let json = "application/json";
    let big = format!(
        "{{\"email\":\"a@b.co\",\"password\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let cases: Vec<(&str, &str, Option<&str>, String)> = vec![
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            "{not json".into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            "[]".into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            r#"{"email": 5, "password": true}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            r#"{"email": "a@b.co"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            r#"{"email": "a@b.co", "password": "x", "extra": 1}"#.into(),
        ),
        ("POST", "/api/v1/environments/prod/login", Some(json), big),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            format!(
                r#"{{"email": "a@b.co", "password": "{}"}}"#,
                "y".repeat(1500)
            ),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            r#"{"email": "a\u0000@b.co", "password": "p\u0000w"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some(json),
            r#"{"email": "", "password": ""}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            Some("text/plain"),
            r#"{"email": "a@b.co", "password": "x"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login",
            None,
            String::new(),
        ),
        (
            "POST",
            "/api/v1/environments/nowhere/login",
            Some(json),
            r#"{"email": "a@b.co", "password": "xxxxxxxxx"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/NOT%20A%20SLUG/login",
            Some(json),
            r#"{"email": "a@b.co", "password": "xxxxxxxxx"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(r#"{{"login_token": "{lt}", "code": "١٢٣٤٥٦"}}"#),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(r#"{{"login_token": "{lt}", "code": "12345"}}"#),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(r#"{{"login_token": "{lt}", "code": "-12345"}}"#),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(r#"{{"login_token": "{lt}", "code": null}}"#),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(
                r#"{{"login_token": "{lt}", "code": "{}"}}"#,
                "1".repeat(100_000)
            ),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(
                r#"{{"login_token": "{lt}", "code": "123456", "recovery_code": "abcde-fghjk"}}"#
            ),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            r#"{"login_token": "🙂🙂🙂", "code": "123456"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/mfa",
            Some(json),
            format!(
                r#"{{"login_token": "{}", "code": "123456"}}"#,
                "a".repeat(10_000)
            ),
        ),
        (
            "POST",
            "/api/v1/environments/prod/setup-link",
            Some(json),
            r#"{"token": "\u202e\u0000"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/environments/prod/login/password",
            Some(json),
            r#"{"login_token": "x", "new_password": "e\u0301e\u0301"}"#.into(),
        ),
        ("GET", "/api/v1/session", None, String::new()),
        ("GET", "/api/v1/me/sessions/%00", None, String::new()),
        ("DELETE", "/api/v1/me/sessions/%FF%FE", None, String::new()),
        ("DELETE", "/api/v1/session", None, String::new()),
        ("GET", "/api/v1/nothing/here", None, String::new()),
    ];
    for (method, path, content_type, body) in &cases {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type", *ct));
        }
        let r = common::request(server.addr, method, path, &headers, Some(body.as_bytes()));
        let shown: String = body.chars().take(60).collect();
        assert!(
            (400..500).contains(&r.status),
            "{method} {path} {shown:?} → {} {}",
            r.status,
            r.body
        );
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "{method} {path} {shown:?}: {:?} {}",
            r.headers,
            r.body
        );
        let problem = r.json();
        assert!(
            problem["code"].as_str().is_some_and(|c| !c.is_empty())
                && problem["status"] == r.status,
            "{}",
            r.body
        );
    }
    assert_eq!(
        server.get("/healthz", &[]).status,
        200,
        "the server is still up"
    );
    let (status, logs) = server.stop();
    assert!(status.success());
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn a_burst_beyond_the_hashing_bound_gets_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(
        d,
        &[],
        &[
            ("LATCHKEY_HASH_WORKERS", "1"),
            ("LATCHKEY_HASH_QUEUE", "2"),
            ("LATCHKEY_ARGON2_ITERATIONS", "20"),
        ],
    );
    ok(d, &["env", "create", "prod"]);
    ok(
        d,
        &["env", "set", "prod", "--ip-failures-per-minute", "100000"],
    );
    let addr = server.addr;
    let handles: Vec<_> = (0..16)
        .map(|n| {
            std::thread::spawn(move || {
                let body = json!({"email": format!("user{n}@example.com"), "password": "not a real password"}).to_string();
                common::request(addr, "POST", "/api/v1/environments/prod/login", &[("content-type", "application/json")], Some(body.as_bytes()))
            })
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        busy.iter()
            .all(|r| r.header("retry-after").is_some() && r.code() == "busy")
    );
    assert!(
        answers.iter().all(|r| matches!(r.status, 401 | 503)),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

#[test]
fn a_kill_9_mid_write_leaves_an_intact_all_or_nothing_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "prod"]);
    let tokens: Vec<String> = (0..40)
        .map(|n| {
            common::link_token(&ok(
                d,
                &["user", "create", "prod", &format!("u{n}@example.com")],
            ))
        })
        .collect();
    let addr = server.addr;
    // Writers: each walks a setup link to a password (one transaction uses the link and sets
    // the password); the server is killed while they run.
    let workers: Vec<_> = tokens
        .chunks(10)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                for t in chunk {
                    let body = json!({"token": t}).to_string();
                    let Ok(r) = common::try_request(
                        addr,
                        "POST",
                        "/api/v1/environments/prod/setup-link",
                        &[("content-type", "application/json")],
                        Some(body.as_bytes()),
                    ) else {
                        return;
                    };
                    let Some(lt) = serde_json::from_str::<serde_json::Value>(&r.body)
                        .ok()
                        .and_then(|v| v["login_token"].as_str().map(str::to_owned))
                    else {
                        return;
                    };
                    let body =
                        json!({"login_token": lt, "new_password": "a long enough passphrase"})
                            .to_string();
                    if common::try_request(
                        addr,
                        "POST",
                        "/api/v1/environments/prod/login/password",
                        &[("content-type", "application/json")],
                        Some(body.as_bytes()),
                    )
                    .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(400));
    server.kill_hard();
    for w in workers {
        let _ = w.join();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", d.join("latchkey.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        // All or nothing: a used link always came with its password, and the reverse.
        let half: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM users u JOIN setup_tokens t ON t.user_id = u.id \
             WHERE (t.used_at IS NULL) <> (u.password_hash IS NULL)",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!(half, 0, "a half-written step survived the crash");
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE password_hash IS NOT NULL")
                .fetch_one(&mut c)
                .await
                .unwrap();
        eprintln!("{done} of 40 passwords were set before the kill");
    });
    // And the server starts again on it.
    let again = start(d, &[]);
    assert_eq!(again.get("/readyz", &[]).status, 200);
}
