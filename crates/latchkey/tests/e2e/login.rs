//! The login of SPEC §3 and §5.1–5.2 end to end: the real binary on port 0, the CLI to invite,
//! the JSON API as a client uses it, and independent TOTP generators as the authenticator app.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use crate::common;

use std::{thread, time::Duration};

use common::{
    Server, code_from_uri, invite_and_enrol, now, oathtool, ok, password_login, start,
    wait_for_fresh_step,
};
use serde_json::{Value, json};

const PASSWORD: &str = "quilt anchor mango river";

fn setup(policy: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    ok(dir.path(), &["env", "create", "prod", "--mfa", policy]);
    (dir, server)
}

fn mfa(server: &Server, env: &str, login_token: &str, code: &str) -> common::Response {
    server.post(
        &format!("/api/v1/environments/{env}/login/mfa"),
        &json!({"login_token": login_token, "code": code}),
    )
}

fn login_token(r: &common::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["login_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no login token: {}", r.body))
        .to_owned()
}

#[test]
fn an_invited_user_sets_a_password_and_mfa_and_is_authenticated() {
    let (dir, server) = setup("required");
    let d = dir.path();
    let token = common::link_token(&ok(d, &["user", "create", "prod", "alice@example.com"]));
    let r = server.post(
        "/api/v1/environments/prod/setup-link",
        &json!({"token": token}),
    );
    let lt = login_token(&r);
    assert_eq!(r.json()["status"], "password_change_required");

    // A weak password is refused with the reason; nothing changes.
    let r = server.post(
        "/api/v1/environments/prod/login/password",
        &json!({"login_token": lt, "new_password": "password123"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "weak_password".to_owned()),
        "{}",
        r.body
    );
    assert!(
        r.json()["detail"].as_str().unwrap().contains("common"),
        "{}",
        r.body
    );
    let r = server.post(
        "/api/v1/environments/prod/login/password",
        &json!({"login_token": lt, "new_password": PASSWORD}),
    );
    assert_eq!(r.json()["status"], "mfa_setup_required", "{}", r.body);
    // The link is used up once the password is set.
    let r = server.post(
        "/api/v1/environments/prod/setup-link",
        &json!({"token": token}),
    );
    assert_eq!(
        (r.status, r.code()),
        (410, "link_expired".to_owned()),
        "{}",
        r.body
    );

    let r = server.post(
        "/api/v1/environments/prod/login/mfa/setup",
        &json!({"login_token": lt}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let offer = r.json();
    let uri = offer["otpauth_uri"].as_str().unwrap();
    let secret = offer["secret"].as_str().unwrap();
    assert_eq!(
        (
            offer["algorithm"].as_str(),
            offer["digits"].as_u64(),
            offer["period"].as_u64()
        ),
        (Some("SHA1"), Some(6), Some(30))
    );
    assert!(
        uri.starts_with("otpauth://totp/prod:alice%40example.com?secret="),
        "{uri}"
    );
    assert!(offer["qr_svg"].as_str().unwrap().starts_with("<svg"));
    assert_eq!(secret.len(), 32, "160 bits in base32");
    // Asking again in the same login offers the same secret.
    let again = server.post(
        "/api/v1/environments/prod/login/mfa/setup",
        &json!({"login_token": lt}),
    );
    assert_eq!(again.json()["secret"].as_str(), Some(secret));

    wait_for_fresh_step();
    let t = now();
    let code = code_from_uri(uri, t);
    if let Some(from_oathtool) = oathtool(secret, t) {
        assert_eq!(from_oathtool, code, "two independent generators agree");
    }
    let r = server.post(
        "/api/v1/environments/prod/login/mfa/setup/confirm",
        &json!({"login_token": lt, "code": "000000x", "label": "Phone"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_request".to_owned()),
        "{}",
        r.body
    );
    let r = server.post(
        "/api/v1/environments/prod/login/mfa/setup/confirm",
        &json!({"login_token": lt, "code": code, "label": "Phone"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let done = r.json();
    assert_eq!(done["status"], "authenticated");
    let codes = done["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.as_str().unwrap().len() == 11));
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.starts_with("latchkey_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let session = done["session"]["token"].as_str().unwrap();
    assert_eq!(session.len(), 43);

    // Applications check the session by bearer token or by cookie.
    let bearer = format!("Bearer {session}");
    let r = server.get("/api/v1/session", &[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_eq!(s["user"]["email"], "alice@example.com");
    assert_eq!(s["user"]["environment"], "prod");
    assert_eq!(s["session"]["amr"], json!(["pwd", "otp"]));
    let cookie_pair = cookie.split(';').next().unwrap();
    assert_eq!(
        server
            .get("/api/v1/session", &[("cookie", cookie_pair)])
            .status,
        200
    );
    assert_eq!(server.get("/api/v1/session", &[]).status, 401);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", "Bearer nonsense")])
            .code(),
        "unauthenticated"
    );

    // The login token is single-use: the finished login cannot be replayed.
    let r = mfa(&server, "prod", &lt, &code);
    assert_eq!(
        (r.status, r.code()),
        (401, "login_expired".to_owned()),
        "{}",
        r.body
    );

    // Logout ends the session everywhere at once.
    let r = server.post_with("/api/v1/logout", &[("authorization", &bearer)], &json!({}));
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &bearer)])
            .status,
        401
    );
}

#[test]
fn a_right_code_that_loses_its_login_to_a_race_is_settled_as_a_failure() {
    let (dir, server) = setup("required");
    let alice = invite_and_enrol(&server, dir.path(), "prod", "alice@example.com", PASSWORD);
    let lt = login_token(&password_login(&server, "prod", &alice.email, PASSWORD));
    wait_for_fresh_step();
    let code = code_from_uri(&alice.uri, now() + 30);
    let failures = || {
        common::audit_types(dir.path(), "prod")
            .iter()
            .filter(|t| *t == "login.failed")
            .count()
    };
    assert_eq!(failures(), 0);
    // Another process holds the write lock, so both submissions queue at their claim.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut other = rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut c)
            .await
            .unwrap();
        c
    });
    let addr = server.addr;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (lt, code) = (lt.clone(), code.clone());
            thread::spawn(move || common::post_mfa_code(addr, "prod", &lt, &code))
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    rt.block_on(async {
        sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    });
    let mut answers: Vec<_> = handles
        .into_iter()
        .map(|h| {
            let r = h.join().unwrap();
            (r.status, r.code())
        })
        .collect();
    answers.sort();
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(answers[1].1, "login_expired", "{answers:?}");
    assert_eq!(failures(), 1, "the losing attempt is recorded");
}

#[test]
fn wrong_codes_lock_the_account_and_the_right_code_is_refused_while_locked() {
    let (dir, server) = setup("required");
    let d = dir.path();
    ok(d, &["env", "set", "prod", "--lockout-base", "3s"]);
    ok(d, &["env", "create", "staging", "--mfa", "off"]);
    let alice = invite_and_enrol(&server, d, "prod", "alice@example.com", PASSWORD);
    // The same email in staging is another user, with its own counters.
    let staging_token =
        common::link_token(&ok(d, &["user", "create", "staging", "alice@example.com"]));
    let r = server.post(
        "/api/v1/environments/staging/setup-link",
        &json!({"token": staging_token}),
    );
    let slt = login_token(&r);
    let r = server.post(
        "/api/v1/environments/staging/login/password",
        &json!({"login_token": slt, "new_password": "staging only passphrase"}),
    );
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);

    let lt = login_token(&password_login(&server, "prod", &alice.email, PASSWORD));
    let wrong = if code_from_uri(&alice.uri, now()) == "123456" {
        "654321"
    } else {
        "123456"
    };
    for n in 1..=5 {
        let r = mfa(&server, "prod", &lt, wrong);
        assert_eq!(
            (r.status, r.code()),
            (401, "invalid_code".to_owned()),
            "failure {n}: {}",
            r.body
        );
    }
    // Locked: even the right code is refused without being evaluated.
    let right = code_from_uri(&alice.uri, now() + 30);
    let r = mfa(&server, "prod", &lt, &right);
    assert_eq!(
        (r.status, r.code()),
        (429, "too_many_attempts".to_owned()),
        "{}",
        r.body
    );
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| (1..=3).contains(&s))),
        "{:?}",
        r.header("retry-after")
    );
    // Starting over does not help: every step for that user answers 429 while locked.
    let r = password_login(&server, "prod", &alice.email, PASSWORD);
    assert_eq!(
        (r.status, r.code()),
        (429, "too_many_attempts".to_owned()),
        "{}",
        r.body
    );
    // The same email elsewhere is unaffected.
    let r = password_login(
        &server,
        "staging",
        "alice@example.com",
        "staging only passphrase",
    );
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);

    // What follows the lock (its end, the login it ended, the doubling series, the audit
    // records) is `latchkey-service/tests/flows/lockout.rs`', on a test clock.
    let events = common::audit_types(d, "prod");
    assert!(events.iter().any(|e| e == "login.locked"), "{events:?}");
}

#[test]
fn a_recovery_code_opens_one_login() {
    let (dir, server) = setup("required");
    let alice = invite_and_enrol(&server, dir.path(), "prod", "alice@example.com", PASSWORD);
    let code = alice.recovery_codes[3].to_uppercase().replace('-', "");
    let lt = login_token(&password_login(&server, "prod", &alice.email, PASSWORD));
    let r = server.post(
        "/api/v1/environments/prod/login/mfa",
        &json!({"login_token": lt, "recovery_code": code}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let bearer = format!("Bearer {}", r.json()["session"]["token"].as_str().unwrap());
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &bearer)])
            .json()["session"]["amr"],
        json!(["pwd", "rec"])
    );
    let lt = login_token(&password_login(&server, "prod", &alice.email, PASSWORD));
    let r = server.post(
        "/api/v1/environments/prod/login/mfa",
        &json!({"login_token": lt, "recovery_code": code}),
    );
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_code".to_owned()),
        "single use: {}",
        r.body
    );
    let r = server.get("/api/v1/me/mfa", &[("authorization", &bearer)]);
    assert_eq!(r.json()["recovery_codes_remaining"], 9, "{}", r.body);
    assert!(
        common::audit_types(dir.path(), "prod")
            .iter()
            .any(|e| e == "recovery_code.used")
    );
}

#[test]
fn the_account_endpoints_need_a_fresh_second_factor() {
    let (dir, server) = setup("required");
    let alice = invite_and_enrol(&server, dir.path(), "prod", "alice@example.com", PASSWORD);
    let auth = format!("Bearer {}", alice.session);
    let h = [("authorization", auth.as_str())];
    let r = server.get("/api/v1/me/mfa", &h);
    let first_id = r.json()["authenticators"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(r.json()["authenticators"][0]["label"], "Phone");
    assert!(
        !r.body.contains(&alice.secret),
        "a secret is never shown again"
    );

    // The last authenticator cannot go where the policy requires MFA.
    let r = server.request_json(
        "DELETE",
        &format!("/api/v1/me/mfa/totp/{first_id}"),
        &h,
        &json!({"code": "000000"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (409, "mfa_required_by_policy".to_owned()),
        "{}",
        r.body
    );

    // Adding one needs a code from the existing one.
    let r = server.post_with("/api/v1/me/mfa/totp", &h, &json!({"code": "000000"}));
    assert_eq!(r.status, 401, "{}", r.body);
    wait_for_fresh_step();
    let r = server.post_with(
        "/api/v1/me/mfa/totp",
        &h,
        &json!({"code": code_from_uri(&alice.uri, now() + 30)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let enrolment = r.json();
    let new_uri = enrolment["otpauth_uri"].as_str().unwrap().to_owned();
    let id = enrolment["enrollment_id"].as_str().unwrap().to_owned();
    let r = server.post_with(
        &format!("/api/v1/me/mfa/totp/{id}/confirm"),
        &h,
        &json!({"code": code_from_uri(&new_uri, now()), "label": "Tablet"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json().get("recovery_codes").is_none(),
        "codes come with the first authenticator only"
    );
    assert_eq!(
        server.get("/api/v1/me/mfa", &h).json()["authenticators"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Now the first can go, with a recovery code as the fresh factor.
    let r = server.request_json(
        "DELETE",
        &format!("/api/v1/me/mfa/totp/{first_id}"),
        &h,
        &json!({"recovery_code": alice.recovery_codes[0]}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    // Its codes fail at once (T7).
    let lt = login_token(&password_login(&server, "prod", &alice.email, PASSWORD));
    assert_eq!(
        mfa(&server, "prod", &lt, &code_from_uri(&alice.uri, now())).status,
        401
    );

    // New recovery codes void the old ones.
    let r = server.post_with(
        "/api/v1/me/recovery-codes",
        &h,
        &json!({"recovery_code": alice.recovery_codes[1]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["recovery_codes"].as_array().unwrap().len(), 10);
    let r = server.post(
        "/api/v1/environments/prod/login/mfa",
        &json!({"login_token": lt, "recovery_code": alice.recovery_codes[2]}),
    );
    assert_eq!(r.status, 401, "old codes are void: {}", r.body);

    // Changing the password needs the current one and ends the other sessions.
    let other_lt = login_token(&server.post(
        "/api/v1/environments/prod/login",
        &json!({"email": alice.email, "password": PASSWORD}),
    ));
    let fresh = code_from_uri(&new_uri, now() + 30);
    let other = mfa(&server, "prod", &other_lt, &fresh);
    assert_eq!(other.status, 200, "{}", other.body);
    let other_bearer = format!(
        "Bearer {}",
        other.json()["session"]["token"].as_str().unwrap()
    );
    let r = server.post_with(
        "/api/v1/me/password",
        &h,
        &json!({"current_password": "wrong", "new_password": "another fine passphrase"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_credentials".to_owned())
    );
    let r = server.post_with(
        "/api/v1/me/password",
        &h,
        &json!({"current_password": PASSWORD, "new_password": "another fine passphrase"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions_ended"], 1);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &other_bearer)])
            .status,
        401
    );
    assert_eq!(
        server.get("/api/v1/session", &h).status,
        200,
        "the session that changed it stays"
    );

    // Sessions are listed and can be ended one by one.
    let list = server.get("/api/v1/me/sessions", &h).json();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    let sid = sessions[0]["id"].as_str().unwrap();
    let r = server.request_json(
        "DELETE",
        &format!("/api/v1/me/sessions/{sid}"),
        &h,
        &Value::Null,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(server.get("/api/v1/session", &h).status, 401);
}

#[test]
fn cookie_writes_from_another_origin_are_refused() {
    let (dir, server) = setup("required");
    let alice = invite_and_enrol(&server, dir.path(), "prod", "alice@example.com", PASSWORD);
    let cookie = format!("latchkey_session={}", alice.session);
    let r = server.post_with(
        "/api/v1/logout",
        &[("cookie", &cookie), ("origin", "https://evil.example")],
        &json!({}),
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".to_owned()),
        "{}",
        r.body
    );
    let r = server.post_with(
        "/api/v1/logout",
        &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
        &json!({}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        server.get("/api/v1/session", &[("cookie", &cookie)]).status,
        200,
        "still signed in"
    );
    let r = server.post_with(
        "/api/v1/logout",
        &[("cookie", &cookie), ("origin", "http://127.0.0.1:8080")],
        &json!({}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

/// A GET of `path` from the local address `from` (for example 127.0.0.2): what a client on
/// another address sees.
fn get_from(from: &str, to: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, raw, _) = common::request_from(from, to, "GET", path, &[], None);
    (status, raw)
}

/// SPEC §12: `/metrics` counts a login and a failed login (by environment, step and result),
/// session checks and forward-auth answers, reports the hashing pool and the store's latency,
/// holds no email or token in any label, and answers 403 to an address outside
/// `metrics_allow` — and to a request forwarded by a proxy nobody said to trust.
#[test]
fn metrics_count_logins_and_answer_only_allowed_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = common::start_with(d, &[], &[("LATCHKEY_METRICS_ALLOW", "127.0.0.1/32")]);
    ok(d, &["env", "create", "prod", "--mfa", "off"]);
    let token = common::link_token(&ok(d, &["user", "create", "prod", "mia@example.com"]));
    let r = common::set_password_with_link(&server, "prod", &token, PASSWORD);
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);
    let r = password_login(&server, "prod", "mia@example.com", PASSWORD);
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);
    let session = r.json()["session"]["token"].as_str().unwrap().to_owned();
    let r = password_login(
        &server,
        "prod",
        "mia@example.com",
        "not her password at all",
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // A login in an environment that does not exist is no series (its name is the caller's).
    let r = password_login(&server, "no-such-env", "mia@example.com", PASSWORD);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = server.get(
        "/api/v1/session",
        &[("authorization", &format!("Bearer {session}"))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(server.get("/auth/verify?env=prod", &[]).status, 401);

    let r = server.get("/metrics", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    let text = &r.body;
    for series in [
        "latchkey_login_steps_total{env=\"prod\",step=\"setup_link\",result=\"next_step\"} 1",
        "latchkey_login_steps_total{env=\"prod\",step=\"new_password\",result=\"authenticated\"} 1",
        "latchkey_login_steps_total{env=\"prod\",step=\"password\",result=\"authenticated\"} 1",
        "latchkey_login_steps_total{env=\"prod\",step=\"password\",result=\"invalid_credentials\"} 1",
        "latchkey_session_checks_total{result=\"valid\"} 1",
        "latchkey_forward_auth_total{answer=\"denied\"} 1",
        "latchkey_hashing_refused_total 0",
        "latchkey_lockouts_total",
        "latchkey_build_info{version=\"",
        "latchkey_store_operation_duration_seconds_bucket{op=\"login_subject\",le=\"+Inf\"}",
        "latchkey_store_operation_duration_seconds_count{op=\"session_by_token\"}",
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
    assert!(text.contains("latchkey_hashing_workers "), "{text}");
    assert!(!text.contains("no-such-env"), "{text}");
    // Every label value is a word of ours, a slug or a number: no email, token or id.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains('@') && !line.contains(&session) && !line.contains(&token),
            "{line}"
        );
        if let Some((_, labels)) = line.split_once('{') {
            let labels = labels.split_once('}').unwrap().0;
            for pair in labels.split(',') {
                let value = pair.split_once('=').unwrap().1.trim_matches('"');
                assert!(
                    value.len() <= 40
                        && value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c)),
                    "label value {value:?} in {line}"
                );
            }
        }
    }

    // Another address than metrics_allow's: 403, and so is a forwarded request from a peer
    // that is not a trusted proxy (the client behind it is unknown).
    let (status, raw) = get_from("127.0.0.2", server.addr, "/metrics");
    assert_eq!(status, 403, "{raw}");
    assert!(raw.contains("\"code\":\"forbidden\""), "{raw}");
    assert!(!raw.contains("latchkey_login_steps_total"), "{raw}");
    let r = server.get("/metrics", &[("x-forwarded-for", "127.0.0.1")]);
    assert_eq!(r.status, 403, "{}", r.body);
}

/// With `metrics_listen`, `/metrics` is served on its own listener, to any client that can
/// reach it, and no longer on the main one.
#[test]
fn metrics_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_with(
        dir.path(),
        &[],
        &[("LATCHKEY_METRICS_LISTEN", "127.0.0.1:0")],
    );
    let line = server
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("Metrics on http://"))
        .unwrap_or_else(|| panic!("{:?}", server.lines));
    let addr: std::net::SocketAddr = line.trim_end_matches("/metrics").parse().unwrap();
    assert_eq!(server.get("/metrics", &[]).status, 404);
    let (status, raw) = get_from("127.0.0.2", addr, "/metrics");
    assert_eq!(status, 200, "{raw}");
    assert!(raw.contains("latchkey_build_info"), "{raw}");
    let (status, _) = get_from("127.0.0.1", addr, "/api/v1/openapi.json");
    assert_eq!(status, 404);
    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
}

/// Behind a trusted proxy, `/metrics` goes to the client that `X-Forwarded-For` names, and to
/// nobody when the proxy names no client: a request from the proxy with no such header, or with
/// a hop that is not an address, is refused rather than taken for the proxy's own (local)
/// address.
#[test]
fn metrics_behind_a_trusted_proxy_answer_the_named_client_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_with(
        dir.path(),
        &[],
        &[("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let status = |headers: &[(&str, &str)]| server.get("/metrics", headers).status;
    assert_eq!(status(&[]), 403, "the proxy names no client");
    assert_eq!(
        status(&[("x-real-ip", "127.0.0.9")]),
        403,
        "only X-Forwarded-For names"
    );
    assert_eq!(status(&[("x-forwarded-for", "unknown")]), 403);
    assert_eq!(
        status(&[("x-forwarded-for", "127.0.0.1")]),
        403,
        "only proxies"
    );
    assert_eq!(
        status(&[("x-forwarded-for", "203.0.113.9")]),
        403,
        "not allowed"
    );
    // A client's own header, with the proxy's hop appended after it: the last hop counts.
    assert_eq!(
        status(&[("x-forwarded-for", "127.0.0.7, 203.0.113.9")]),
        403
    );
    assert_eq!(
        status(&[("x-forwarded-for", "127.0.0.7")]),
        200,
        "a local client"
    );
}

/// SECURITY L7 with OWASP's device cookies: after the address's failures reach the limit, a
/// browser that completed a login of a user before still logs that user in (its device
/// cookie), while a client without one, a cookie of another user, or a forged one hears 429.
/// The first refusal of the window is audited once (`login.throttled`, with the failures), and
/// the account's own lockout still applies to the exempt browser.
#[test]
fn a_known_browser_logs_in_past_the_address_throttle_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "prod", "--mfa", "off"]);
    ok(d, &["env", "set", "prod", "--ip-failures-per-minute", "3"]);
    let enrol = |email: &str| {
        let token = common::link_token(&ok(d, &["user", "create", "prod", email]));
        common::set_password_with_link(&server, "prod", &token, PASSWORD)
    };
    let r = enrol("ada@example.com");
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);
    let device = r
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix("latchkey_device_prod="))
        .map_or_else(
            || panic!("no device cookie: {:?}", r.headers),
            |v| v.split(';').next().unwrap().to_owned(),
        );
    assert!(
        r.headers.iter().any(|(k, v)| k == "set-cookie"
            && v.starts_with("latchkey_device_prod=")
            && v.contains("HttpOnly")
            && v.contains("Max-Age=7776000")),
        "{:?}",
        r.headers
    );
    assert_eq!(enrol("bob@example.com").json()["status"], "authenticated");

    let login = |email: &str, password: &str, cookie: Option<&str>| {
        let body = json!({"email": email, "password": password});
        let mut headers = vec![("content-type", "application/json")];
        let cookie = cookie.map(|c| format!("latchkey_device_prod={c}"));
        if let Some(c) = &cookie {
            headers.push(("cookie", c));
        }
        common::request(
            server.addr,
            "POST",
            "/api/v1/environments/prod/login",
            &headers,
            Some(body.to_string().as_bytes()),
        )
    };
    // A guesser behind the same address uses up its failures.
    for _ in 0..3 {
        assert_eq!(
            login("nobody@example.com", "wrong guess one", None).status,
            401
        );
    }
    for (who, cookie) in [
        ("ada@example.com", None),
        ("bob@example.com", Some(device.as_str())),
        ("ada@example.com", Some("forged.1.AAAAAAAAAAAAAAAAAAAAAA")),
    ] {
        let r = login(who, PASSWORD, cookie);
        assert_eq!(
            (r.status, r.code()),
            (429, "too_many_attempts".into()),
            "{who} {cookie:?}: {}",
            r.body
        );
    }
    // Ada's own browser is still let in.
    let r = login("ada@example.com", PASSWORD, Some(&device));
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);
    let throttled = common::audit_types(d, "prod")
        .iter()
        .filter(|t| *t == "login.throttled")
        .count();
    assert_eq!(throttled, 1, "one event for the window");

    // The account's lockout applies to the exempt browser too: five wrong passwords lock.
    for _ in 0..5 {
        assert_eq!(
            login("ada@example.com", "wrong password here", Some(&device)).status,
            401
        );
    }
    let r = login("ada@example.com", PASSWORD, Some(&device));
    assert_eq!(
        (r.status, r.code()),
        (429, "too_many_attempts".into()),
        "{}",
        r.body
    );
}
