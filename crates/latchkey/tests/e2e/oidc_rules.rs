//! The seed's rules reach applications (SPEC §9): after an admin's password reset, MFA reset,
//! sign-out, disabling, enforce-MFA, and past `session_max_age`, an application's access and
//! refresh tokens are refused and a back-channel logout token, verified by authlib against
//! `jwks`, reaches its receiver — also one that was down when the session ended.

use std::time::{Duration, Instant};

use super::{
    oidc::clients_missing,
    oidc_client::{Receiver, claims, client, refresh, serve, signed_in, userinfo},
};
use crate::common::{audit_types, free_port, ok};

#[test]
fn the_seeds_rules_end_an_applications_tokens_and_tell_it() {
    if clients_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, public) = serve(d);
    let issuer = format!("{public}/e/prod");
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    let port = free_port();
    let receiver = Receiver::listen(port);
    let backchannel = format!("http://127.0.0.1:{port}/logout");
    let secret = client(
        d,
        "prod",
        "app",
        &["--backchannel-logout-uri", &backchannel],
    );
    let acts: [(&str, &[&str], &[&str]); 4] = [
        ("reset-password", &["user", "reset-password", "prod"], &[]),
        ("reset-mfa", &["user", "reset-mfa", "prod"], &[]),
        ("sign-out", &["user", "sign-out", "prod"], &[]),
        ("disable", &["user", "update", "prod"], &["--disable"]),
    ];
    for (i, (name, act, flags)) in acts.iter().enumerate() {
        let email = format!("u{i}@example.com");
        let (tokens, sid) = signed_in(&server, d, &secret, &email);
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(userinfo(&server, "prod", access).status, 200);
        let mut args = act.to_vec();
        args.push(&email);
        args.extend_from_slice(flags);
        let o = crate::common::run(d, &args);
        assert!(o.status.success(), "{name}: {}", crate::common::stderr(&o));
        assert_eq!(
            userinfo(&server, "prod", access).status,
            401,
            "{name}: access token"
        );
        let r = refresh(
            &server,
            "prod",
            "app",
            &secret,
            tokens["refresh_token"].as_str().unwrap(),
        );
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (400, "invalid_grant".into()),
            "{name}"
        );
        let logout = receiver.logout_for(&issuer, "app", &sid, Duration::from_secs(10));
        assert_eq!(
            logout["sub"],
            claims(tokens["id_token"].as_str().unwrap())["sub"],
            "{name}"
        );
    }
    // Enforce-MFA (everyone) and session_max_age end sessions the same way.
    let (tokens, sid) = signed_in(&server, d, &secret, "e@example.com");
    ok(d, &["env", "enforce-mfa", "prod", "--all"]);
    assert_eq!(
        userinfo(&server, "prod", tokens["access_token"].as_str().unwrap()).status,
        401
    );
    receiver.logout_for(&issuer, "app", &sid, Duration::from_secs(10));

    let (tokens, sid) = signed_in(&server, d, &secret, "m@example.com");
    ok(d, &["env", "set", "prod", "--session-max-age", "2s"]);
    std::thread::sleep(Duration::from_secs(3));
    let r = refresh(
        &server,
        "prod",
        "app",
        &secret,
        tokens["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(r.status, 400, "past session_max_age: {}", r.body);
    assert_eq!(
        userinfo(&server, "prod", tokens["access_token"].as_str().unwrap()).status,
        401
    );
    // The refresh that found the session over ended it, and the application is told.
    receiver.logout_for(&issuer, "app", &sid, Duration::from_secs(10));
}

#[test]
fn a_receiver_that_is_down_gets_its_logout_when_it_comes_back() {
    if clients_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, public) = serve(d);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    let port = free_port();
    let uri = format!("http://127.0.0.1:{port}/logout");
    let secret = client(d, "prod", "app", &["--backchannel-logout-uri", &uri]);
    let (_, sid) = signed_in(&server, d, &secret, "ada@example.com");
    // The act succeeds at once while nobody listens.
    let started = Instant::now();
    ok(d, &["user", "sign-out", "prod", "ada@example.com"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audit_types(d, "prod")
        .iter()
        .any(|t| t == "oidc.backchannel.failed")
    {
        assert!(
            Instant::now() < deadline,
            "no oidc.backchannel.failed in the audit log"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let receiver = Receiver::listen(port);
    // The retry after the first failure is 5 s, the next 10 s.
    receiver.logout_for(
        &format!("{public}/e/prod"),
        "app",
        &sid,
        Duration::from_secs(25),
    );
}
