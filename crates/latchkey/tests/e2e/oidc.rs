//! OpenID Connect end to end (SPEC §9), driven by relying-party libraries we did not write:
//! Python's authlib and Node's openid-client (with jose checking the ID token's signature).
//! This test plays the browser through the environment's own login pages; the library does
//! the rest — discovery, PKCE, the code exchange, ID token validation against `jwks`,
//! userinfo, refresh with rotation and reuse detection, revocation, introspection and
//! RP-initiated logout. On SQLite with one node, and on PostgreSQL with two: the browser
//! authorizes on one node and the library exchanges the code on the other.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::common::{
    Browser, Enrolled, Server, code_from_uri, csrf_of, free_port, missing_tools, now, ok,
    pg_database, say, start_listening,
};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/signed-out";

/// The directory of the relying-party scripts and their `node_modules`.
pub(crate) fn scripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oidc")
}

/// Whether the relying-party libraries are here; with `LATCHKEY_REQUIRE_OIDC_CLIENTS=1` (set by
/// `.ci/run`, which installs them) a missing one fails the test.
pub(crate) fn clients_missing() -> bool {
    let modules = scripts().join("node_modules/openid-client");
    let node_ok = modules.exists();
    if !node_ok {
        let required = std::env::var("LATCHKEY_REQUIRE_OIDC_CLIENTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "LATCHKEY_REQUIRE_OIDC_CLIENTS=1 but {} is missing (npm ci)",
            modules.display()
        );
        say("skipping: openid-client is not installed (npm ci in tests/e2e/oidc; .ci/run does it)");
        return true;
    }
    missing_tools(
        "LATCHKEY_REQUIRE_OIDC_CLIENTS",
        &[
            ("python3", &["-c", "import authlib, requests"]),
            ("node", &["--version"]),
        ],
    )
}

/// The path and query of an absolute URL of ours.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_owned())
}

/// An attribute's text with its character references (`&amp;`, `&#38;`, `&#x2F;`…) decoded.
pub(crate) fn unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        if let Some(c) = c {
            out.push(c);
            rest = &rest[end + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The value of the hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    html.find(&key)
        .map(|i| html[i + key.len()..].split('"').next().unwrap_or_default())
        .map(unescape)
        .unwrap_or_default()
}

/// Where a page sends the browser on: the continue page's link.
pub(crate) fn continue_link(html: &str) -> String {
    let key = "id=\"continue\" href=\"";
    let start = html
        .find(key)
        .map(|i| i + key.len())
        .expect("a continue link");
    unescape(html[start..].split('"').next().unwrap())
}

/// The browser's part of an authorization: follow `url` on `node`, signing in through the
/// login pages (password, then a code) when asked; the callback URL the application gets.
fn authorize(node: &Server, b: &mut Browser<'_>, url: &str, user: &Enrolled) -> String {
    let mut b2 = Browser {
        server: node,
        cookies: b.cookies.clone(),
        origin: b.origin.clone(),
    };
    let r = b2.get(&path_of(url));
    if r.status == 302 {
        b.cookies = b2.cookies;
        return r.header("location").unwrap().to_owned();
    }
    assert_eq!(r.status, 303, "{}", r.body);
    let login = r.header("location").unwrap().to_owned();
    assert!(login.contains("prompt=login"), "{login}");
    let page = b2.get(&login);
    assert_eq!(page.status, 200, "{}", page.body);
    let rd = hidden(&page.body, "rd");
    let mut fields = vec![
        ("csrf", csrf_of(&page.body)),
        ("email", user.email.clone()),
        ("password", user.password.clone()),
        ("rd", rd.clone()),
    ];
    if page.body.contains("name=\"mfa\" value=\"1\"") {
        fields.push(("mfa", "1".into()));
    }
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b2.post(login.split('?').next().unwrap(), &f);
    assert_eq!(r.status, 303, "{}", r.body);
    let mut next = r.header("location").unwrap().to_owned();
    if next.contains("/login/mfa") {
        let page = b2.get(&next);
        assert_eq!(page.status, 200, "{}", page.body);
        // A code of the next step: the enrolment used this one (never accepted twice).
        let code = code_from_uri(&user.uri, now() + 30);
        let r = b2.post(
            "/e/prod/login/mfa",
            &[("csrf", &csrf_of(&page.body)), ("code", &code), ("rd", &rd)],
        );
        assert_eq!(r.status, 303, "{}", r.body);
        r.header("location").unwrap().clone_into(&mut next);
    }
    assert!(next.contains("/oidc/authorize/resume"), "{next}");
    let r = b2.get(&next);
    assert_eq!(r.status, 200, "the continue page: {}", r.body);
    b.cookies = b2.cookies;
    continue_link(&r.body)
}

/// Run a relying-party script to its end, playing the browser: authorizations on `front`,
/// everything the library does itself wherever the issuer points (the other node).
fn drive(
    mut command: Command,
    front: &Server,
    b: &mut Browser<'_>,
    user: &Enrolled,
) -> Vec<String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut checks = Vec::new();
    let mut done = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            panic!("the relying party printed {line:?}");
        };
        if let Some(url) = v["authorize"].as_str() {
            let callback = authorize(front, b, url, user);
            assert!(callback.starts_with(REDIRECT), "{callback}");
            writeln!(stdin, "{callback}").unwrap();
        } else if let Some(url) = v["logout"].as_str() {
            let mut b2 = Browser {
                server: front,
                cookies: b.cookies.clone(),
                origin: b.origin.clone(),
            };
            let r = b2.get(&path_of(url));
            assert_eq!(r.status, 302, "RP-initiated logout with a hint: {}", r.body);
            b.cookies = b2.cookies;
            writeln!(stdin, "{}", r.header("location").unwrap()).unwrap();
        } else if let Some(name) = v["check"].as_str() {
            checks.push(name.to_owned());
        } else if v.get("done").is_some() {
            done = true;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && done,
        "the relying party failed after {checks:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    checks
}

/// An environment `prod` (MFA required) with a confidential client `app` and a public client
/// `spa`, through `cli`; the confidential client's secret.
fn set_up(cli: &dyn Fn(&[&str]) -> String) -> String {
    cli(&["env", "create", "prod", "--mfa", "required"]);
    let out = cli(&[
        "client",
        "create",
        "prod",
        "--id",
        "app",
        "--name",
        "App",
        "--redirect-uri",
        REDIRECT,
        "--post-logout-redirect-uri",
        AFTER_LOGOUT,
    ]);
    cli(&[
        "client",
        "create",
        "prod",
        "--id",
        "spa",
        "--type",
        "public",
        "--redirect-uri",
        REDIRECT,
        "--post-logout-redirect-uri",
        AFTER_LOGOUT,
    ]);
    out.lines()
        .find_map(|l| l.strip_prefix("client_secret (shown once): "))
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .to_owned()
}

/// A user invited through `cli` and enrolled (password, authenticator) on `server`.
fn enrolled(server: &Server, cli: &dyn Fn(&[&str]) -> String, email: &str) -> Enrolled {
    let link = crate::common::link_token(&cli(&["user", "create", "prod", email]));
    crate::common::enrol_with_link(server, "prod", &link, email, "correct horse battery 9")
}

fn python(issuer: &str, client: &str, secret: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(scripts().join("authlib_rp.py"))
        .args([issuer, client, secret, REDIRECT, AFTER_LOGOUT]);
    c
}

fn node(issuer: &str, client: &str, secret: &str) -> Command {
    let mut c = Command::new("node");
    c.arg(scripts().join("openid_client_rp.mjs")).args([
        issuer,
        client,
        secret,
        REDIRECT,
        AFTER_LOGOUT,
    ]);
    c
}

/// A fresh browser (each library run starts signed out) whose forms come from the public
/// origin, whichever node it talks to.
fn browser<'a>(server: &'a Server, issuer: &str) -> Browser<'a> {
    let mut b = Browser::new(server);
    issuer
        .split("/e/")
        .next()
        .unwrap_or_default()
        .clone_into(&mut b.origin);
    b
}

/// Each library, as a confidential and as a public client, each run with a user of its own
/// (a login's code is never accepted twice, so users do not share one).
fn both_libraries(front: &Server, issuer: &str, secret: &str, cli: &dyn Fn(&[&str]) -> String) {
    for (i, (name, run)) in [
        ("authlib (confidential)", python(issuer, "app", secret)),
        ("authlib (public)", python(issuer, "spa", "-")),
        ("openid-client (confidential)", node(issuer, "app", secret)),
        ("openid-client (public)", node(issuer, "spa", "-")),
    ]
    .into_iter()
    .enumerate()
    {
        let user = enrolled(front, cli, &format!("user{i}@example.com"));
        let mut b = browser(front, issuer);
        let checks = drive(run, front, &mut b, &user);
        say(&format!("{name}: {} checks passed", checks.len()));
        assert!(checks.len() >= 15, "{name}: {checks:?}");
    }
}

#[test]
fn relying_party_libraries_sign_in_on_sqlite() {
    if clients_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let server = start_listening(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[],
        &[("LATCHKEY_PUBLIC_URL", &public)],
    );
    let cli = |args: &[&str]| ok(dir.path(), args);
    let secret = set_up(&cli);
    both_libraries(&server, &format!("{public}/e/prod"), &secret, &cli);
}

#[test]
fn relying_party_libraries_sign_in_across_two_postgres_nodes() {
    if clients_missing() {
        return;
    }
    let Some(db) = pg_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One key file, one database, two nodes. The public URL names node B: the library's
    // discovery, token, userinfo, introspection and revocation calls go to B, while the
    // browser signs in on A and A issues the code.
    let (pa, pb) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{pb}");
    let envs = [("LATCHKEY_PUBLIC_URL", public.as_str())];
    let a = start_listening(
        d,
        &format!("127.0.0.1:{pa}"),
        &["--database", &db.url],
        &envs,
    );
    let _b = start_listening(
        d,
        &format!("127.0.0.1:{pb}"),
        &["--database", &db.url],
        &envs,
    );
    let cli = |args: &[&str]| {
        let mut all = vec!["--database", db.url.as_str()];
        all.extend_from_slice(args);
        ok(d, &all)
    };
    let secret = set_up(&cli);
    both_libraries(&a, &format!("{public}/e/prod"), &secret, &cli);
}
