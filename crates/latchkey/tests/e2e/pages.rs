//! The pages over HTTP (SPEC §6, §5.2 forward-auth; SECURITY S8): CSRF on every form, the
//! security headers, words next to the field, lockouts that say when to retry, setup links
//! that a GET does not use up, `rd` followed only to allowed hosts, and `/auth/verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Browser, audit_types, csrf_of, invite_and_enrol, link_token, ok, start_with};

const PASSWORD: &str = "quilt anchor mango river";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[test]
fn forms_need_their_token_and_our_origin() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &[], &[]);
    let mut b = Browser::new(&server);
    let page = b.get("/e/system/login");
    assert_eq!(page.status, 200);
    let token = csrf_of(&page.body);
    let login = |b: &mut Browser, csrf: Option<&str>, headers: &[(&str, &str)]| {
        let mut f = vec![
            ("email", "admin@localhost"),
            ("password", "wrong password here"),
        ];
        if let Some(c) = csrf {
            f.push(("csrf", c));
        }
        b.post_with("/e/system/login", &f, headers)
    };
    // Without the token; with it but from another origin or site; with another browser's.
    let refused = [
        login(&mut b, None, &[]),
        login(&mut b, Some("forged"), &[]),
        login(&mut b, Some(&token), &[("sec-fetch-site", "cross-site")]),
    ];
    let mut foreign = Browser::new(&server);
    foreign.cookies = b.cookies.clone();
    foreign.origin = "https://evil.example".into();
    let mut other = Browser::new(&server);
    other.get("/e/system/login");
    let with_my_token = login(&mut other, Some(&token), &[]);
    let mut no_cookie = Browser::new(&server);
    for r in refused.iter().chain([
        &login(&mut foreign, Some(&token), &[]),
        &with_my_token,
        &login(&mut no_cookie, Some(&token), &[]),
    ]) {
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("cannot be accepted"), "{}", r.body);
    }
    // None of those reached the login: nothing was counted or logged.
    assert!(!audit_types(dir.path(), "system").contains(&"login.failed".to_owned()));
    // With the token, the form is read: a wrong password is said next to the field.
    let r = login(&mut b, Some(&token), &[("sec-fetch-site", "same-origin")]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("The email or password is not right."));
    assert!(r.body.contains("aria-describedby=\"password-error\""));
    assert!(
        r.body.contains("value=\"admin@localhost\""),
        "the email is kept"
    );
    assert!(audit_types(dir.path(), "system").contains(&"login.failed".to_owned()));
}

#[test]
fn pages_carry_the_security_headers_and_say_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &[], &[]);
    let mut b = Browser::new(&server);
    for path in [
        "/e/system/login",
        "/static/latchkey.css",
        "/e/nowhere/login",
    ] {
        let r = b.get(path);
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    assert_eq!(b.get("/e/nowhere/login").status, 404);
    assert!(
        b.cookies.contains_key("latchkey_csrf"),
        "the CSRF cookie is set: {:?}",
        b.cookies
    );
    // The page has no inline script or style for the CSP to block.
    let page = b.get("/e/system/login").body;
    assert!(
        !page.contains("<script") && !page.contains("style="),
        "{page}"
    );
    // Five failures lock for a minute; the sixth attempt is told when to come back.
    for _ in 0..5 {
        let r = b.submit(
            "/e/system/login",
            "/e/system/login",
            &[
                ("email", "nobody@example.com"),
                ("password", "not the password"),
            ],
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = b.submit(
        "/e/system/login",
        "/e/system/login",
        &[
            ("email", "nobody@example.com"),
            ("password", "not the password"),
        ],
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.body
            .contains("Too many attempts. Try again in 1 minute (after "),
        "{}",
        r.body
    );
}

#[test]
fn a_setup_link_page_only_shows_the_form_and_the_code_field_helps_phones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(d, &[], &[]);
    ok(d, &["env", "create", "dev", "--mfa", "required"]);
    let token = link_token(&ok(d, &["user", "create", "dev", "rosa@example.com"]));
    let mut b = Browser::new(&server);
    let path = format!("/e/dev/setup?token={token}");
    // A mail scanner fetching the link twice uses nothing up.
    for _ in 0..2 {
        let r = b.get(&path);
        assert_eq!(r.status, 200);
        assert!(r.body.contains("name=\"new_password\""));
    }
    // Two different passwords: said next to the field, link still good.
    let r = b.submit(
        &path,
        "/e/dev/setup",
        &[
            ("token", &token),
            ("new_password", PASSWORD),
            ("new_password_confirm", "other"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("The two passwords are not the same."));
    let r = b.submit(
        &path,
        "/e/dev/setup",
        &[
            ("token", &token),
            ("new_password", PASSWORD),
            ("new_password_confirm", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/e/dev/login/mfa/setup"));
    let setup = b.get("/e/dev/login/mfa/setup");
    assert_eq!(setup.status, 200, "{}", setup.body);
    for needle in [
        "autocomplete=\"one-time-code\"",
        "inputmode=\"numeric\"",
        "<svg",
        "<label for=\"code\">",
    ] {
        assert!(setup.body.contains(needle), "{needle}");
    }
    // The secret is shown in groups of four.
    let secret = setup.body.split("id=\"secret\">").nth(1).unwrap();
    let secret = secret.split('<').next().unwrap();
    assert!(
        secret.split(' ').all(|g| g.len() <= 4) && secret.len() >= 32 + 7,
        "{secret}"
    );
    // Used once, the link is spent.
    let r = b.submit(
        &path,
        "/e/dev/setup",
        &[
            ("token", &token),
            ("new_password", PASSWORD),
            ("new_password_confirm", PASSWORD),
        ],
    );
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(r.body.contains("expired or was already used"));
}

#[test]
fn rd_and_forward_auth_honour_only_allowed_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(
        d,
        &[],
        &[("LATCHKEY_ALLOWED_REDIRECT_HOSTS", "app.example.test")],
    );
    ok(d, &["env", "create", "dev", "--mfa", "required"]);
    ok(d, &["env", "create", "prod", "--mfa", "optional"]);
    let user = invite_and_enrol(&server, d, "dev", "rosa@example.com", PASSWORD);
    let mut b = Browser::new(&server);
    // Forward-auth without a session: 401, or a 302 to the login page for an allowed `rd`.
    let verify = |b: &mut Browser, q: &str| b.get(&format!("/auth/verify?{q}"));
    assert_eq!(verify(&mut b, "env=dev").status, 401);
    let r = verify(&mut b, "env=dev&rd=https%3A%2F%2Fapp.example.test%2Fwiki");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("http://127.0.0.1:8080/e/dev/login?rd=https%3A%2F%2Fapp.example.test%2Fwiki")
    );
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "javascript%3Aalert(1)",
    ] {
        let r = verify(&mut b, &format!("env=dev&rd={evil}"));
        assert_eq!(r.status, 401, "{evil}");
        assert_eq!(r.header("location"), None, "{evil}");
    }
    assert_eq!(verify(&mut b, "").status, 400);
    // The login page carries `rd` through the code step and honours it at the end.
    let rd = "https://app.example.test/wiki";
    let r = b.submit(
        &format!(
            "/e/dev/login?rd={}",
            "https%3A%2F%2Fapp.example.test%2Fwiki"
        ),
        "/e/dev/login",
        &[("email", &user.email), ("password", PASSWORD), ("rd", rd)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let next = r.header("location").unwrap().to_owned();
    assert_eq!(
        next,
        "/e/dev/login/mfa?rd=https%3A%2F%2Fapp.example.test%2Fwiki"
    );
    common::wait_for_fresh_step();
    // The enrolment burnt this step; the next is within the window.
    let code = common::code_from_uri(&user.uri, common::now() + 30);
    let r = b.submit(&next, "/e/dev/login/mfa", &[("code", &code), ("rd", rd)]);
    // Another host: a page that moves on (a redirect after a form POST would be blocked by
    // the CSP's `form-action 'self'`).
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&format!(
        "<meta http-equiv=\"refresh\" content=\"0;url={rd}\">"
    )));
    assert!(r.body.contains(&format!("href=\"{rd}\"")));
    // Now forward-auth says who it is, for this environment only.
    let r = verify(&mut b, "env=dev");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-latchkey-email"), Some("rosa@example.com"));
    assert_eq!(r.header("x-latchkey-env"), Some("dev"));
    assert_eq!(r.header("x-latchkey-role"), Some("user"));
    assert!(r.header("x-latchkey-user").is_some_and(|id| id.len() == 36));
    assert_eq!(
        verify(&mut b, "env=prod").status,
        401,
        "sealed environments"
    );
    // A signed-in visit to the login page with a foreign `rd` goes to the account instead.
    let r = b.get("/e/dev/login?rd=https%3A%2F%2Fevil.example%2F");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/e/dev/account"));
    // Sign out: the session is dead for forward-auth at once.
    let account = b.get("/e/dev/account");
    assert_eq!(account.status, 200);
    let token = csrf_of(&account.body);
    let r = b.post("/e/dev/logout", &[("csrf", &token)]);
    assert_eq!(r.status, 303);
    assert_eq!(verify(&mut b, "env=dev").status, 401);
}

#[test]
#[allow(clippy::too_many_lines)] // one admin's story, step by step
fn admin_pages_confirm_before_acting_and_stay_in_their_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(d, &[], &[]);
    ok(d, &["env", "create", "dev", "--mfa", "required"]);
    ok(d, &["env", "create", "prod", "--mfa", "optional"]);
    let token = link_token(&ok(
        d,
        &["user", "create", "dev", "boss@example.com", "--admin"],
    ));
    let boss = common::enrol_with_link(&server, "dev", &token, "boss@example.com", PASSWORD);
    let rosa = invite_and_enrol(&server, d, "dev", "rosa@example.com", PASSWORD);
    ok(d, &["env", "set", "dev", "--mfa", "optional"]);
    ok(d, &["user", "create", "dev", "new@example.com"]);
    let mut b = Browser::new(&server);
    b.cookies
        .insert("latchkey_session".into(), boss.session.clone());

    // The users table with the MFA column, filtered.
    let page = b.get("/e/dev/admin?mfa=not_enrolled");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("new@example.com") && !page.body.contains("rosa@example.com"));
    assert!(
        page.body.contains("<svg class=\"chart\""),
        "the adoption chart"
    );
    assert!(
        page.body.contains("2 of 3 users (67%) have set up MFA"),
        "{}",
        page.body
    );
    // Another environment knows nothing of this session: its login page, not its data.
    let r = b.get("/e/prod/admin");
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/e/prod/login?rd=")
    );
    // An environment that does not exist is a 404 page, with a session or without.
    assert_eq!(b.get("/e/nowhere/admin").status, 404);
    assert_eq!(b.get("/e/nowhere/account").status, 404);
    assert_eq!(Browser::new(&server).get("/e/nowhere/account").status, 404);
    // A plain user gets 403 too.
    let mut plain = Browser::new(&server);
    plain
        .cookies
        .insert("latchkey_session".into(), rosa.session.clone());
    assert_eq!(plain.get("/e/dev/admin").status, 403);
    // …and the refusal is in the audit log (SECURITY G1).
    let log = server.get(
        "/api/v1/environments/dev/audit?type=admin.refused",
        &[("authorization", &format!("Bearer {}", boss.session))],
    );
    let events = log.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{}", log.body);
    assert_eq!(events[0]["detail"]["act"], "GET /e/dev/admin");

    // Enforce MFA: the confirmation says what will happen, and nothing has happened yet.
    let confirm = b.get("/e/dev/admin/enforce-mfa");
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .body
            .contains("1 users without an authenticator will have to set one up"),
        "{}",
        confirm.body
    );
    assert!(
        confirm
            .body
            .contains("0 users will be signed out now (0 sessions)")
    );
    assert!(!audit_types(d, "dev").contains(&"mfa.enforced".to_owned()));
    let r = b.post(
        "/e/dev/admin/enforce-mfa",
        &[("csrf", &csrf_of(&confirm.body))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 users were marked"), "{}", r.body);
    assert!(audit_types(d, "dev").contains(&"mfa.enforced".to_owned()));

    // Reset a password: the confirmation, then the link to hand over, once.
    let users = b.get("/e/dev/admin?q=rosa").body;
    let id = users
        .split("/e/dev/admin/users/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let confirm = b.get(&format!("/e/dev/admin/users/{id}/reset-password"));
    assert!(
        confirm.body.contains("ends all of rosa@example.com"),
        "{}",
        confirm.body
    );
    let r = b.post(
        &format!("/e/dev/admin/users/{id}/reset-password"),
        &[("csrf", &csrf_of(&confirm.body))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("id=\"setup-link\""));
    assert!(r.body.contains("http://127.0.0.1:8080/e/dev/setup?token="));
    // Rosa's session ended with the reset.
    assert_eq!(plain.get("/e/dev/account").status, 303);
    // An action without the token does nothing.
    let r = b.post(&format!("/e/dev/admin/users/{id}/delete"), &[]);
    assert_eq!(r.status, 403);
    assert!(
        b.get("/e/dev/admin?q=rosa")
            .body
            .contains("rosa@example.com")
    );
    // Unknown actions and users are 404 pages.
    assert_eq!(
        b.get(&format!("/e/dev/admin/users/{id}/explode")).status,
        404
    );
    assert_eq!(
        b.get("/e/dev/admin/users/00000000-0000-7000-8000-000000000000")
            .status,
        404
    );
}

#[test]
fn a_login_ends_the_session_it_replaces_and_bad_addresses_are_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(d, &[], &[]);
    ok(d, &["env", "create", "open", "--mfa", "off"]);
    let token = link_token(&ok(d, &["user", "create", "open", "rosa@example.com"]));
    let mut b = Browser::new(&server);
    let path = format!("/e/open/setup?token={token}");
    let r = b.submit(
        &path,
        "/e/open/setup",
        &[
            ("token", &token),
            ("new_password", PASSWORD),
            ("new_password_confirm", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let first = b.cookies["latchkey_session"].clone();
    let csrf_before = b.cookies["latchkey_csrf"].clone();
    // Signed in, the login page moves on; a login posted anyway (another tab) replaces it.
    assert_eq!(b.get("/e/open/login").status, 303);
    let token = csrf_of(&b.get("/e/open/account").body);
    let r = b.post(
        "/e/open/login",
        &[
            ("csrf", &token),
            ("email", "rosa@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let second = b.cookies["latchkey_session"].clone();
    assert_ne!(first, second);
    assert_ne!(
        b.cookies["latchkey_csrf"], csrf_before,
        "the CSRF cookie is renewed"
    );
    let check = |token: &str| {
        server
            .get(
                "/api/v1/session",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .status
    };
    assert_eq!(check(&first), 401, "the replaced session ended");
    assert_eq!(check(&second), 200);
    // Malformed addresses are pages too.
    for (path, status) in [
        ("/e/open/login?rd=a&rd=b", 400),
        ("/e/open/admin/users/x/y/z", 404),
        ("/e/Not-A-Slug/login", 404),
    ] {
        let r = b.get(path);
        assert_eq!(r.status, status, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
    }
}
