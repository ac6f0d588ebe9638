//! No request skips a rule (SECURITY O1–O3, O6, O7): `prompt`, `max_age` and `acr_values`
//! cannot skip a factor; an unknown client or redirect URI is a page, never a redirect;
//! codes are bound and used once; PKCE is S256 only; a wrong client secret is a 401 that
//! counts against the address; malformed requests are 4xx, never 500.

use super::{
    oidc::{continue_link, unescape},
    oidc_client::{
        PASSWORD, REDIRECT, VERIFIER, authorize_path, claims, client, code, enrol, exchange, query,
        serve, token, userinfo, with_session,
    },
};
use crate::common::{
    Browser, code_from_uri, csrf_of, link_token, now, ok, request, set_password_with_link,
};

#[test]
fn no_request_skips_a_factor_the_environment_or_the_client_requires() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, public) = serve(d);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    ok(d, &["env", "create", "opt", "--mfa", "optional"]);
    client(d, "prod", "app", &[]);
    let strict_secret = client(d, "opt", "strict", &["--require-mfa", "true"]);
    let user = enrol(&server, d, "prod", "ada@example.com");

    // prompt=none without a session: login_required, by redirect, with state and iss.
    let r = server.get(&authorize_path("prod", "app", &[("prompt", "none")]), &[]);
    assert_eq!(r.status, 302, "{}", r.body);
    let to = r.header("location").unwrap();
    assert_eq!(
        query(to, "error").as_deref(),
        Some("login_required"),
        "{to}"
    );
    assert_eq!(query(to, "state").as_deref(), Some("s1"));
    assert_eq!(query(to, "iss"), Some(format!("{public}/e/prod")));
    // prompt=none with a session: a code at once.
    let r = with_session(
        &server,
        &authorize_path("prod", "app", &[("prompt", "none")]),
        &user.session,
    );
    assert!(query(r.header("location").unwrap(), "code").is_some());
    // prompt=login and max_age=0 send a signed-in browser through the login again.
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let r = with_session(
            &server,
            &authorize_path("prod", "app", &[extra]),
            &user.session,
        );
        assert_eq!(r.status, 303, "{extra:?}: {}", r.body);
        let login = r.header("location").unwrap();
        assert!(
            login.starts_with("/e/prod/login?") && login.contains("prompt=login"),
            "{login}"
        );
        let page = with_session(&server, login, &user.session);
        assert_eq!(
            page.status, 200,
            "the form, not a shortcut past it: {}",
            page.body
        );
        assert!(page.body.contains("name=\"password\""));
    }

    // A require_mfa client in an `optional` environment: a user without a second factor sets
    // one up on the way in, and the code's ID token says so.
    let link = link_token(&ok(d, &["user", "create", "opt", "bo@example.com"]));
    let set = set_password_with_link(&server, "opt", &link, PASSWORD);
    assert_eq!(
        set.json()["status"],
        "authenticated",
        "no factor asked in `optional`"
    );
    let session = set.json()["session"]["token"].as_str().unwrap().to_owned();
    let r = with_session(&server, &authorize_path("opt", "strict", &[]), &session);
    assert_eq!(r.status, 303, "{}", r.body);
    let login = r.header("location").unwrap().to_owned();
    assert!(login.contains("mfa=1"), "{login}");
    let mut b = Browser::new(&server);
    b.origin = public.clone();
    b.cookies.insert("latchkey_session".into(), session.clone());
    let page = b.get(&login);
    let rd = unescape(
        page.body
            .split("name=\"rd\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
    );
    let r = b.post(
        "/e/opt/login",
        &[
            ("csrf", &csrf_of(&page.body)),
            ("email", "bo@example.com"),
            ("password", PASSWORD),
            ("rd", &rd),
            ("mfa", "1"),
        ],
    );
    let setup = r.header("location").unwrap().to_owned();
    assert!(
        setup.contains("/login/mfa/setup"),
        "step-up asks for a factor: {setup}"
    );
    let page = b.get(&setup);
    let secret_text: String = page
        .body
        .split("id=\"secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let uri = format!("otpauth://totp/x?secret={secret_text}&issuer=x");
    let r = b.post(
        &setup,
        &[
            ("csrf", &csrf_of(&page.body)),
            ("code", &code_from_uri(&uri, now())),
            ("label", "Phone"),
            ("rd", &rd),
        ],
    );
    assert_eq!(r.status, 200, "the recovery codes, then on: {}", r.body);
    let next = unescape(
        r.body
            .split("href=\"/e/opt/oidc/authorize/resume")
            .nth(1)
            .map(|rest| {
                format!(
                    "/e/opt/oidc/authorize/resume{}",
                    rest.split('"').next().unwrap()
                )
            })
            .as_deref()
            .unwrap_or_else(|| panic!("no way on in {}", r.body)),
    );
    let r = b.get(&next);
    let callback = continue_link(&r.body);
    let code = query(&callback, "code").unwrap();
    let tokens = exchange(&server, "opt", "strict", &strict_secret, &code);
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "urn:latchkey:acr:mfa");
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp"]));
}

#[test]
fn protocol_errors_are_refusals_never_redirects_elsewhere_or_500s() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _public) = serve(d);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    let secret = client(d, "prod", "app", &[]);
    ok(
        d,
        &[
            "client",
            "create",
            "prod",
            "--id",
            "spa",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT,
        ],
    );
    let user = enrol(&server, d, "prod", "ada@example.com");

    // O1: an unknown client or an unregistered redirect URI is a page, never a redirect.
    for path in [
        authorize_path("prod", "nobody", &[]),
        authorize_path(
            "prod",
            "app",
            &[("redirect_uri", "https://evil.example/cb")],
        ),
        authorize_path("prod", "app", &[("redirect_uri", "http://127.0.0.1:9/cb/")]),
        authorize_path("prod", "app", &[("redirect_uri", "")]),
        format!("{}&client_id=app", authorize_path("prod", "app", &[])),
    ] {
        let r = with_session(&server, &path, &user.session);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.header("location").is_none(), "{path}");
    }
    // Other errors go back to the application with state and iss.
    for (extra, error) in [
        (("response_type", "token"), "unsupported_response_type"),
        (("scope", "profile"), "invalid_scope"),
        (("code_challenge_method", "plain"), "invalid_request"),
        (("code_challenge", ""), "invalid_request"),
        (("max_age", "soon"), "invalid_request"),
    ] {
        let r = with_session(
            &server,
            &authorize_path("prod", "app", &[extra]),
            &user.session,
        );
        assert_eq!(r.status, 302, "{extra:?}");
        let to = r.header("location").unwrap();
        assert!(to.starts_with(REDIRECT), "{to}");
        assert_eq!(
            query(to, "error").as_deref(),
            Some(error),
            "{extra:?}: {to}"
        );
    }
    // O3: a public client without PKCE.
    let r = with_session(
        &server,
        &authorize_path(
            "prod",
            "spa",
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ),
        &user.session,
    );
    assert_eq!(
        query(r.header("location").unwrap(), "error").as_deref(),
        Some("invalid_request")
    );

    // O2: a code is bound to its verifier and redirect URI, and used once.
    let c = code(&server, "prod", "app", &user.session);
    for fields in [
        vec![("code_verifier", "x".repeat(43))],
        vec![("redirect_uri", "http://127.0.0.1:9/other".to_owned())],
    ] {
        let mut all: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", c.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("code_verifier", VERIFIER.into()),
        ];
        for (k, v) in fields {
            all.retain(|(f, _)| *f != k);
            all.push((k, v));
        }
        let f: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = token(&server, "prod", "app", &secret, &f);
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (400, "invalid_grant".into()),
            "{}",
            r.body
        );
    }
    let first = exchange(&server, "prod", "app", &secret, &c);
    let again = token(
        &server,
        "prod",
        "app",
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(
        (again.status, again.json()["error"].clone()),
        (400, "invalid_grant".into())
    );
    assert_eq!(
        userinfo(&server, "prod", first["access_token"].as_str().unwrap()).status,
        401,
        "a code used twice revokes what it issued"
    );

    // O6: a wrong secret is 401 invalid_client with WWW-Authenticate, and counts against the
    // address: past the limit (30 a minute) the endpoint refuses with 429.
    let r = token(
        &server,
        "prod",
        "app",
        "wrong-secret",
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "invalid_client".into())
    );
    assert!(r.header("www-authenticate").is_some());
    // Malformed requests: a parameter twice, an unknown grant, garbage tokens.
    let dup = request(
        server.addr,
        "POST",
        "/e/prod/oidc/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"grant_type=refresh_token&grant_type=authorization_code&client_id=app"),
    );
    assert_eq!(dup.status, 400, "{}", dup.body);
    let r = token(
        &server,
        "prod",
        "app",
        &secret,
        &[("grant_type", "password")],
    );
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    for bad in ["", "x", &"a".repeat(5000), "Bearer", "%00"] {
        assert_eq!(userinfo(&server, "prod", bad).status, 401, "{bad:?}");
    }
    for _ in 0..30 {
        token(
            &server,
            "prod",
            "app",
            "wrong",
            &[("grant_type", "refresh_token")],
        );
    }
    let r = token(
        &server,
        "prod",
        "app",
        &secret,
        &[("grant_type", "refresh_token")],
    );
    assert_eq!(r.status, 429, "a throttled address: {}", r.body);
    assert!(r.header("retry-after").is_some());
}

#[test]
fn browser_applications_call_the_token_side_from_their_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _public) = serve(d);
    ok(d, &["env", "create", "prod", "--mfa", "required"]);
    client(d, "prod", "app", &[]);
    let registered = "http://127.0.0.1:9";
    for path in [
        "/e/prod/oidc/token",
        "/e/prod/oidc/userinfo",
        "/e/prod/oidc/revoke",
        "/e/prod/oidc/jwks",
        "/e/prod/.well-known/openid-configuration",
    ] {
        let preflight = request(
            server.addr,
            "OPTIONS",
            path,
            &[
                ("origin", registered),
                ("access-control-request-method", "POST"),
            ],
            None,
        );
        assert_eq!(preflight.status, 204, "{path}");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(registered),
            "{path}"
        );
        assert!(preflight.header("access-control-allow-methods").is_some());
        let other = request(
            server.addr,
            "OPTIONS",
            path,
            &[("origin", "https://evil.example")],
            None,
        );
        assert_eq!(other.header("access-control-allow-origin"), None, "{path}");
    }
    let r = server.get(
        "/e/prod/.well-known/openid-configuration",
        &[("origin", registered)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(registered));
    // Registering the client is in the audit log, as the API's and the CLI's acts are.
    assert!(
        crate::common::audit_types(d, "prod")
            .iter()
            .any(|t| t == "oidc.client.created")
    );
}
