//! Administration end to end (SPEC §4, §5.3): the seed's story, bulk enforcement, tenancy over
//! every admin route of the OpenAPI document, and the CLI and the API writing the same audit
//! events for the same act.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::many_single_char_names
)]

use crate::common;

use common::{
    Server, code_from_uri, enrol_with_link, invite_and_enrol, now, ok, password_login, start,
    wait_for_fresh_step,
};
use serde_json::{Value, json};

const PASSWORD: &str = "quilt anchor mango river";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn login_token(r: &common::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["login_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no login token: {}", r.body))
        .to_owned()
}

/// An operator API token from the CLI.
fn operator_token(dir: &std::path::Path) -> String {
    let out = ok(dir, &["token", "create", "--operator", "tests"]);
    out.lines()
        .find(|l| l.starts_with("lk_"))
        .unwrap()
        .to_owned()
}

/// An admin of `env` with a session (invited by the CLI with --admin, enrolled with MFA).
fn admin_session(
    server: &Server,
    dir: &std::path::Path,
    env: &str,
    email: &str,
) -> common::Enrolled {
    let token = common::link_token(&ok(dir, &["user", "create", env, email, "--admin"]));
    enrol_with_link(server, env, &token, email, PASSWORD)
}

#[test]
fn the_seed_story_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "prod", "--mfa", "optional"]);
    // An operator sets prod to required.
    let op = bearer(&operator_token(d));
    let r = server.request_json(
        "PATCH",
        "/api/v1/environments/prod",
        &[("authorization", &op)],
        &json!({"mfa_policy": "required"}),
    );
    assert_eq!(
        (r.status, r.json()["mfa_policy"].as_str()),
        (200, Some("required")),
        "{}",
        r.body
    );

    // An admin invites a user, who sets up MFA.
    wait_for_fresh_step();
    let boss = admin_session(&server, d, "prod", "boss@example.com");
    let admin = bearer(&boss.session);
    let h = [("authorization", admin.as_str())];
    let r = server.post_with(
        "/api/v1/environments/prod/users",
        &h,
        &json!({"email": "alice@example.com", "name": "Alice"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let alice_id = created["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["user"]["state"], "invited");
    assert!(
        created["setup_url"]
            .as_str()
            .unwrap()
            .ends_with(created["setup_token"].as_str().unwrap())
    );
    let alice = enrol_with_link(
        &server,
        "prod",
        created["setup_token"].as_str().unwrap(),
        "alice@example.com",
        PASSWORD,
    );
    let alice_auth = bearer(&alice.session);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &alice_auth)])
            .status,
        200
    );

    // The admin resets the password: the session is refused at once, the old password fails,
    // and the link leads to a new password and then a code from the existing authenticator.
    let r = server.post_with(
        &format!("/api/v1/environments/prod/users/{alice_id}/reset-password"),
        &h,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let reset = r.json();
    assert_eq!(reset["sessions_ended"], 1);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &alice_auth)])
            .status,
        401
    );
    assert_eq!(
        password_login(&server, "prod", &alice.email, PASSWORD).code(),
        "invalid_credentials"
    );
    let lt = login_token(&server.post(
        "/api/v1/environments/prod/setup-link",
        &json!({"token": reset["setup_token"]}),
    ));
    let r = server.post(
        "/api/v1/environments/prod/login/password",
        &json!({"login_token": lt, "new_password": "a fresh passphrase now"}),
    );
    assert_eq!(
        r.json()["status"],
        "mfa_required",
        "a reset never bypasses the second factor: {}",
        r.body
    );
    let r = server.post(
        "/api/v1/environments/prod/login/mfa",
        &json!({"login_token": lt, "code": code_from_uri(&alice.uri, now() + 30)}),
    );
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);
    let alice_auth = bearer(r.json()["session"]["token"].as_str().unwrap());

    // The admin resets the MFA: the session is refused, the next login sets up a new
    // authenticator, and the old app's codes fail.
    let r = server.post_with(
        &format!("/api/v1/environments/prod/users/{alice_id}/reset-mfa"),
        &h,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.json()["sessions_ended"].as_u64(),
            r.json()["authenticators_removed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &alice_auth)])
            .status,
        401
    );
    let r = password_login(&server, "prod", &alice.email, "a fresh passphrase now");
    assert_eq!(r.json()["status"], "mfa_setup_required", "{}", r.body);
    let lt = login_token(&r);
    let r = server.post(
        "/api/v1/environments/prod/login/mfa/setup",
        &json!({"login_token": lt}),
    );
    let new_uri = r.json()["otpauth_uri"].as_str().unwrap().to_owned();
    assert_ne!(new_uri, alice.uri);
    let old_code = code_from_uri(&alice.uri, now());
    let r = server.post(
        "/api/v1/environments/prod/login/mfa/setup/confirm",
        &json!({"login_token": lt, "code": old_code, "label": "Old phone"}),
    );
    assert_eq!(r.status, 401, "the old app's codes fail: {}", r.body);
    let r = server.post(
        "/api/v1/environments/prod/login/mfa/setup/confirm",
        &json!({"login_token": lt, "code": code_from_uri(&new_uri, now()), "label": "New phone"}),
    );
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);

    // What the admin sees, and what the log says.
    let r = server.get(&format!("/api/v1/environments/prod/users/{alice_id}"), &h);
    assert_eq!(
        (
            r.json()["mfa_enrolled"].as_bool(),
            r.json()["state"].as_str()
        ),
        (Some(true), Some("active")),
        "{}",
        r.body
    );
    let r = server.get("/api/v1/environments/prod/audit?limit=500", &h);
    let types: Vec<String> = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "environment.updated",
        "user.created",
        "password.reset",
        "mfa.reset",
        "mfa.enrolled",
        "login.succeeded",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "no {expected} in {types:?}"
        );
    }
    let actor = format!(
        "user:{}",
        server.get("/api/v1/session", &h).json()["user"]["id"]
            .as_str()
            .unwrap()
    );
    assert!(
        r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "mfa.reset"
                && e["actor"] == actor.as_str()
                && e["target"] == alice_id.as_str())
    );
    let stats = server.get("/api/v1/environments/prod/stats", &h).json();
    assert_eq!(
        (stats["users"].as_u64(), stats["users_with_mfa"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
}

#[test]
fn enforce_mfa_signs_out_exactly_the_users_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "shop", "--mfa", "optional"]);
    let op = bearer(&operator_token(d));
    let h = [("authorization", op.as_str())];
    // Two users who log in with a password alone, and one who added an authenticator.
    let mut sessions = Vec::new();
    for email in ["bob@example.com", "carol@example.com", "dave@example.com"] {
        let t = common::link_token(&ok(d, &["user", "create", "shop", email]));
        let lt =
            login_token(&server.post("/api/v1/environments/shop/setup-link", &json!({"token": t})));
        let r = server.post(
            "/api/v1/environments/shop/login/password",
            &json!({"login_token": lt, "new_password": "long enough passphrase here"}),
        );
        assert_eq!(r.json()["status"], "authenticated", "{}", r.body);
        sessions.push(bearer(r.json()["session"]["token"].as_str().unwrap()));
    }
    let dave = [("authorization", sessions[2].as_str())];
    let r = server.post_with(
        "/api/v1/me/mfa/totp",
        &dave,
        &json!({"current_password": "long enough passphrase here"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (id, uri) = (
        r.json()["enrollment_id"].as_str().unwrap().to_owned(),
        r.json()["otpauth_uri"].as_str().unwrap().to_owned(),
    );
    let r = server.post_with(
        &format!("/api/v1/me/mfa/totp/{id}/confirm"),
        &dave,
        &json!({"code": code_from_uri(&uri, now()), "label": "Phone"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let r = server.get("/api/v1/environments/shop/users?mfa=not_enrolled", &h);
    let listed: Vec<&str> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|s| {
            if s.starts_with("bob") {
                "bob"
            } else if s.starts_with("carol") {
                "carol"
            } else {
                "dave"
            }
        })
        .collect();
    assert_eq!(listed, ["bob", "carol"]);

    let r = server.post_with("/api/v1/environments/shop/enforce-mfa", &h, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(
        (
            c["users_marked"].as_u64(),
            c["users_signed_out"].as_u64(),
            c["sessions_ended"].as_u64()
        ),
        (Some(2), Some(2), Some(2)),
        "{c}"
    );
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &sessions[0])])
            .status,
        401
    );
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &sessions[1])])
            .status,
        401
    );
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &sessions[2])])
            .status,
        200,
        "a user with MFA keeps the session"
    );
    let r = server.get("/api/v1/environments/shop/users?mfa=not_enrolled", &h);
    assert!(
        r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["mfa_enforced"] == true)
    );
    let r = password_login(
        &server,
        "shop",
        "bob@example.com",
        "long enough passphrase here",
    );
    assert_eq!(r.json()["status"], "mfa_setup_required", "{}", r.body);
    // Again: nobody new to mark, nobody left to sign out.
    let c = server
        .post_with("/api/v1/environments/shop/enforce-mfa", &h, &json!({}))
        .json();
    assert_eq!(
        (c["users_marked"].as_u64(), c["sessions_ended"].as_u64()),
        (Some(0), Some(0))
    );
    // With all: everyone's sessions end.
    let c = server
        .post_with(
            "/api/v1/environments/shop/enforce-mfa",
            &h,
            &json!({"all": true}),
        )
        .json();
    assert_eq!(c["sessions_ended"].as_u64(), Some(1), "{c}");
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &sessions[2])])
            .status,
        401
    );
    // Refused where the policy is off.
    ok(d, &["env", "create", "lab"]);
    let r = server.post_with("/api/v1/environments/lab/enforce-mfa", &h, &json!({}));
    assert_eq!((r.status, r.code()), (409, "mfa_not_allowed".to_owned()));
}

/// Every admin route of the OpenAPI document, with the path filled in for `env`.
fn admin_routes(server: &Server, env: &str, user_id: &str) -> Vec<(String, String)> {
    let doc = server.get("/api/v1/openapi.json", &[]).json();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "admin"))
            {
                routes.push((
                    method.to_uppercase(),
                    path.replace("{env}", env).replace("{id}", user_id),
                ));
            }
        }
    }
    assert!(routes.len() >= 19, "{routes:?}");
    routes
}

#[test]
fn tenancy_every_admin_route_refuses_other_environments_and_plain_users() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    ok(d, &["env", "create", "staging", "--mfa", "required"]);
    let prod_token = ok(d, &["token", "create", "prod", "prod-bot"])
        .lines()
        .find(|l| l.starts_with("lk_"))
        .unwrap()
        .to_owned();
    let staging_user = invite_and_enrol(&server, d, "staging", "sam@example.com", PASSWORD);
    let staging_user_id = server
        .get(
            "/api/v1/session",
            &[("authorization", &bearer(&staging_user.session))],
        )
        .json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Value = json!({});
    let prod_admin = bearer(&prod_token);
    let mut refused_in_staging = 0;
    for (method, path) in admin_routes(&server, "staging", &staging_user_id) {
        let r = server.request_json(&method, &path, &[("authorization", &prod_admin)], &body);
        assert!(
            matches!(r.status, 403 | 404),
            "prod admin token: {method} {path} → {} {}",
            r.status,
            r.body
        );
        refused_in_staging += usize::from(r.status == 403);
    }
    assert!(refused_in_staging > 0);
    // The token works where it belongs.
    assert_eq!(
        server
            .get(
                "/api/v1/environments/prod/users",
                &[("authorization", &prod_admin)]
            )
            .status,
        200
    );
    // A plain user is refused on every admin route, even in their own environment.
    let plain = bearer(&staging_user.session);
    let routes = admin_routes(&server, "staging", &staging_user_id);
    for (method, path) in &routes {
        let r = server.request_json(method, path, &[("authorization", &plain)], &body);
        assert_eq!(
            r.status, 403,
            "plain user: {method} {path} → {} {}",
            r.status, r.body
        );
    }
    // Each refusal is an `admin.refused` event in the caller's own environment (SECURITY G1),
    // naming the act and the environment asked for.
    let refused = |env: &str, auth: &str| {
        server.get(
            &format!("/api/v1/environments/{env}/audit?type=admin.refused&limit=200"),
            &[("authorization", auth)],
        )
    };
    let r = refused("prod", &prod_admin);
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), refused_in_staging, "{}", r.body);
    for e in &events {
        assert_eq!(e["outcome"], "failure");
        let detail = &e["detail"];
        let act = detail["act"].as_str().unwrap();
        assert!(act.contains(" /api/v1/environments"), "{e}");
        // Operator routes (creating or changing environments) name no environment of their own.
        if act.contains("/environments/staging/") {
            assert_eq!(detail["environment"], "staging", "{e}");
        }
    }
    let op = bearer(&operator_token(d));
    let r = refused("staging", &op);
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), routes.len(), "{}", r.body);
    assert!(
        events.iter().all(|e| e["actor"]
            .as_str()
            .is_some_and(|a| a.contains(&staging_user_id))),
        "{}",
        r.body
    );
    // Nothing changed in staging.
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &plain)])
            .status,
        200
    );
}

#[test]
fn the_cli_and_the_api_write_the_same_audit_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    let op = bearer(&operator_token(d));
    let h = [("authorization", op.as_str())];
    for email in ["x@example.com", "y@example.com"] {
        ok(d, &["user", "create", "prod", email]);
    }
    let users = server
        .get("/api/v1/environments/prod/users?q=example", &h)
        .json();
    let id_of = |email: &str| {
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (x, y) = (id_of("x@example.com"), id_of("y@example.com"));
    // The same acts, once by the CLI on x and once by the API on y.
    ok(d, &["user", "reset-password", "prod", "x@example.com"]);
    ok(d, &["user", "reset-mfa", "prod", "x@example.com"]);
    ok(d, &["user", "sign-out", "prod", "x@example.com"]);
    ok(d, &["user", "clear-lockout", "prod", "x@example.com"]);
    for action in ["reset-password", "reset-mfa", "sign-out", "clear-lockout"] {
        let r = server.post_with(
            &format!("/api/v1/environments/prod/users/{y}/{action}"),
            &h,
            &json!({}),
        );
        assert_eq!(r.status, 200, "{action}: {}", r.body);
    }
    let events = server
        .get("/api/v1/environments/prod/audit?limit=500", &h)
        .json();
    let of = |target: &str| -> Vec<(String, Option<String>)> {
        let mut v: Vec<_> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == target && e["type"] != "user.created")
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["outcome"].as_str().map(str::to_owned),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(of(&x), of(&y));
    assert_eq!(of(&x).len(), 4);
    let cli_actor = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == x.as_str() && e["type"] == "password.reset")
        .unwrap()["actor"]
        .clone();
    assert_eq!(cli_actor, "cli");
    let r = server.get(
        &format!("/api/v1/environments/prod/audit?user={x}&type=password.reset"),
        &h,
    );
    assert_eq!(
        r.json()["events"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    // The CLI prints the same log.
    assert!(ok(d, &["audit", "prod", "--user", "x@example.com"]).contains("password.reset"));
}

#[test]
fn operators_tokens_and_the_life_of_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    // The first operator from the link printed at first start.
    let link = server
        .lines
        .iter()
        .find(|l| l.starts_with("Operator setup link"))
        .unwrap()
        .clone();
    let operator = enrol_with_link(
        &server,
        "system",
        &common::link_token(&link),
        "admin@localhost",
        PASSWORD,
    );
    let op = bearer(&operator.session);
    let oh = [("authorization", op.as_str())];
    let r = server.post_with(
        "/api/v1/environments",
        &oh,
        &json!({"slug": "prod", "name": "Production", "mfa_policy": "optional"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        server
            .post_with("/api/v1/environments", &oh, &json!({"slug": "prod"}))
            .status,
        409
    );
    assert_eq!(
        server
            .post_with("/api/v1/environments", &oh, &json!({"slug": "Not Valid"}))
            .code(),
        "invalid_request"
    );
    let envs = server.get("/api/v1/environments", &oh).json();
    assert_eq!(envs["environments"].as_array().unwrap().len(), 2);
    let r = server.request_json(
        "PATCH",
        "/api/v1/environments/system",
        &oh,
        &json!({"mfa_policy": "off"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (409, "mfa_required_by_policy".to_owned())
    );
    let r = server.request_json(
        "PATCH",
        "/api/v1/environments/prod",
        &oh,
        &json!({"session_idle_timeout": "8h", "issuer": "Acme: Prod"}),
    );
    assert_eq!(
        r.status, 400,
        "a colon would split the authenticator app's label: {}",
        r.body
    );
    let r = server.request_json(
        "PATCH",
        "/api/v1/environments/prod",
        &oh,
        &json!({"session_idle_timeout": "8h", "issuer": "Acme"}),
    );
    assert_eq!(
        (
            r.json()["session_idle_timeout"].as_str(),
            r.json()["issuer"].as_str()
        ),
        (Some("8h"), Some("Acme")),
        "{}",
        r.body
    );
    let r = server.request_json(
        "PATCH",
        "/api/v1/environments/prod",
        &oh,
        &json!({"session_idle_timeout": null}),
    );
    assert_eq!(r.json()["session_idle_timeout"], "none");
    // An operator cannot lock themselves out.
    let me = server.get("/api/v1/session", &oh).json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server.request_json(
        "PATCH",
        &format!("/api/v1/environments/system/users/{me}"),
        &oh,
        &json!({"disabled": true}),
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".to_owned()),
        "{}",
        r.body
    );

    // An environment token: an admin of prod, not an operator.
    let r = server.post_with(
        "/api/v1/environments/prod/api-tokens",
        &oh,
        &json!({"name": "ci"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("lk_"));
    let token_id = created["api_token"]["id"].as_str().unwrap().to_owned();
    let th = bearer(&secret);
    let t = [("authorization", th.as_str())];
    assert_eq!(server.get("/api/v1/environments", &t).status, 403);
    assert_eq!(
        server
            .post_with("/api/v1/environments", &t, &json!({"slug": "evil"}))
            .status,
        403
    );
    assert_eq!(
        server.get("/api/v1/environments/system/users", &t).status,
        403
    );
    assert_eq!(
        server.get("/api/v1/me/sessions", &t).status,
        401,
        "tokens are not people"
    );
    let listed = server
        .get("/api/v1/environments/prod/api-tokens", &t)
        .json();
    assert!(
        !listed.to_string().contains(&secret[3..]),
        "a token's secret is never shown again"
    );
    assert!(
        listed["api_tokens"][0]["last_used_at"].is_string(),
        "{listed}"
    );

    // The token invites a user; the user logs in; the token disables them: sessions end.
    let r = server.post_with(
        "/api/v1/environments/prod/users",
        &t,
        &json!({"email": "erin@example.com", "role": "admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let erin_id = r.json()["user"]["id"].as_str().unwrap().to_owned();
    let lt = login_token(&server.post(
        "/api/v1/environments/prod/setup-link",
        &json!({"token": r.json()["setup_token"]}),
    ));
    let r = server.post(
        "/api/v1/environments/prod/login/password",
        &json!({"login_token": lt, "new_password": "erin's own long passphrase"}),
    );
    let erin = bearer(r.json()["session"]["token"].as_str().unwrap());
    assert_eq!(
        server
            .get(
                "/api/v1/environments/prod/users",
                &[("authorization", &erin)]
            )
            .status,
        200,
        "an admin of prod"
    );
    let r = server.request_json(
        "PATCH",
        &format!("/api/v1/environments/prod/users/{erin_id}"),
        &t,
        &json!({"disabled": true}),
    );
    assert_eq!(r.json()["state"], "disabled", "{}", r.body);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &erin)])
            .status,
        401
    );
    assert_eq!(
        password_login(
            &server,
            "prod",
            "erin@example.com",
            "erin's own long passphrase"
        )
        .code(),
        "invalid_credentials"
    );
    let r = server.request_json(
        "PATCH",
        &format!("/api/v1/environments/prod/users/{erin_id}"),
        &t,
        &json!({"disabled": false}),
    );
    assert_eq!(r.json()["state"], "active", "{}", r.body);
    let r = server.request_json(
        "DELETE",
        &format!("/api/v1/environments/prod/users/{erin_id}"),
        &t,
        &Value::Null,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        server
            .get(&format!("/api/v1/environments/prod/users/{erin_id}"), &t)
            .status,
        404
    );

    // Revoked: the token stops working at once.
    let r = server.request_json(
        "DELETE",
        &format!("/api/v1/environments/prod/api-tokens/{token_id}"),
        &oh,
        &Value::Null,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        server.get("/api/v1/environments/prod/users", &t).status,
        401
    );
}

#[test]
fn the_rules_that_keep_administration_safe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    let link = server
        .lines
        .iter()
        .find(|l| l.starts_with("Operator setup link"))
        .unwrap()
        .clone();
    let operator = enrol_with_link(
        &server,
        "system",
        &common::link_token(&link),
        "admin@localhost",
        PASSWORD,
    );
    let op = bearer(&operator.session);
    let oh = [("authorization", op.as_str())];
    let me = server.get("/api/v1/session", &oh).json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    ok(d, &["env", "create", "shop", "--mfa", "optional"]);

    // `system` keeps an operator: an operator token cannot remove the last one either.
    let op_token = bearer(&operator_token(d));
    let th = [("authorization", op_token.as_str())];
    let r = server.request_json(
        "PATCH",
        &format!("/api/v1/environments/system/users/{me}"),
        &th,
        &json!({"role": "user"}),
    );
    assert_eq!(
        (r.status, r.code()),
        (409, "conflict".to_owned()),
        "{}",
        r.body
    );
    let r = server.request_json(
        "DELETE",
        &format!("/api/v1/environments/system/users/{me}"),
        &th,
        &Value::Null,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    // Tokens do not make tokens, and `system` takes operator tokens only.
    assert_eq!(
        server
            .post_with(
                "/api/v1/environments/prod/api-tokens",
                &th,
                &json!({"name": "x"})
            )
            .status,
        403
    );
    assert_eq!(
        server
            .post_with(
                "/api/v1/environments/system/api-tokens",
                &oh,
                &json!({"name": "x"})
            )
            .status,
        409
    );

    // An admin's own tokens stop working when they are demoted.
    let boss = admin_session(&server, d, "prod", "boss@example.com");
    let bh = [("authorization", bearer(&boss.session))];
    let bh: Vec<(&str, &str)> = bh.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = server.post_with(
        "/api/v1/environments/prod/api-tokens",
        &bh,
        &json!({"name": "boss-bot"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let boss_token = bearer(r.json()["secret"].as_str().unwrap());
    assert_eq!(
        server
            .get(
                "/api/v1/environments/prod/users",
                &[("authorization", &boss_token)]
            )
            .status,
        200
    );
    let boss_id = server.get("/api/v1/session", &bh).json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server.request_json(
        "PATCH",
        &format!("/api/v1/environments/prod/users/{boss_id}"),
        &oh,
        &json!({"role": "user"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        server
            .get(
                "/api/v1/environments/prod/users",
                &[("authorization", &boss_token)]
            )
            .status,
        401
    );
    assert_eq!(
        server.get("/api/v1/environments/prod/users", &bh).status,
        403,
        "no longer an admin"
    );

    // Marking one user mfa_enforced signs them out when they have no authenticator.
    let t = common::link_token(&ok(d, &["user", "create", "shop", "fay@example.com"]));
    let lt =
        login_token(&server.post("/api/v1/environments/shop/setup-link", &json!({"token": t})));
    let r = server.post(
        "/api/v1/environments/shop/login/password",
        &json!({"login_token": lt, "new_password": "fay has a long passphrase"}),
    );
    let fay = bearer(r.json()["session"]["token"].as_str().unwrap());
    let fay_id = server
        .get("/api/v1/session", &[("authorization", &fay)])
        .json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server.request_json(
        "PATCH",
        &format!("/api/v1/environments/shop/users/{fay_id}"),
        &oh,
        &json!({"mfa_enforced": true}),
    );
    assert_eq!(r.json()["mfa_enforced"], true, "{}", r.body);
    assert_eq!(
        server
            .get("/api/v1/session", &[("authorization", &fay)])
            .status,
        401
    );
    // enforce-mfa takes no body at all.
    let r = common::request(
        server.addr,
        "POST",
        "/api/v1/environments/shop/enforce-mfa",
        &[("authorization", &op)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Operator tokens are listed and revoked with the CLI.
    let listed = ok(d, &["token", "list", "--operator"]);
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    ok(d, &["token", "revoke", &id, "--operator"]);
    assert_eq!(server.get("/api/v1/environments", &th).status, 401);
    // And a user is changed with the CLI.
    assert!(
        ok(
            d,
            &[
                "user",
                "update",
                "prod",
                "boss@example.com",
                "--role",
                "admin"
            ]
        )
        .contains("role admin")
    );
}
