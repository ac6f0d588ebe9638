//! A small client of our own for the protocol's edge cases (`oidc_rules.rs`,
//! `oidc_refusals.rs`): an authorization with a session cookie, the token endpoint,
//! userinfo; and a back-channel logout receiver whose tokens authlib verifies against `jwks`.
//! The libraries of `oidc.rs` prove the provider interoperates; this client only reaches the
//! cases no library sends on purpose.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::oidc::scripts;
use crate::common::{
    Enrolled, Response, Server, enrol_with_link, form_body, free_port, link_token, ok, request,
    start_listening,
};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/cb";
/// RFC 7636 appendix B: a verifier and its S256 challenge.
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub(crate) const PASSWORD: &str = "correct horse battery 9";

/// A server whose public URL is its own address, in `dir`.
pub(crate) fn serve(dir: &std::path::Path) -> (Server, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let server = start_listening(
        dir,
        &format!("127.0.0.1:{port}"),
        &[],
        &[("LATCHKEY_PUBLIC_URL", &public)],
    );
    (server, public)
}

/// A confidential client of `env` (with extra `client create` arguments); its secret.
pub(crate) fn client(dir: &std::path::Path, env: &str, id: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "client",
        "create",
        env,
        "--id",
        id,
        "--redirect-uri",
        REDIRECT,
    ];
    args.extend_from_slice(extra);
    let out = ok(dir, &args);
    out.lines()
        .find_map(|l| l.strip_prefix("client_secret (shown once): "))
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .to_owned()
}

/// The authorization URL's path for `client` in `env`, with `extra` parameters.
pub(crate) fn authorize_path(env: &str, client: &str, extra: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email"),
        ("state", "s1"),
        ("nonce", "n1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        fields.retain(|(f, _)| f != k);
        if !v.is_empty() {
            fields.push((k, v));
        }
    }
    format!("/e/{env}/oidc/authorize?{}", form_body(&fields))
}

/// The value of `name` in a URL's query.
pub(crate) fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(crate) fn with_session(server: &Server, path: &str, session: &str) -> Response {
    server.get(path, &[("cookie", &format!("latchkey_session={session}"))])
}

/// A code for a browser with `session`, straight back from `authorize`.
pub(crate) fn code(server: &Server, env: &str, client: &str, session: &str) -> String {
    let r = with_session(server, &authorize_path(env, client, &[]), session);
    assert_eq!(r.status, 302, "{}", r.body);
    let location = r.header("location").unwrap();
    query(location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

pub(crate) fn token(
    server: &Server,
    env: &str,
    client: &str,
    secret: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut all = vec![("client_id", client), ("client_secret", secret)];
    all.extend_from_slice(fields);
    request(
        server.addr,
        "POST",
        &format!("/e/{env}/oidc/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(form_body(&all).as_bytes()),
    )
}

pub(crate) fn exchange(
    server: &Server,
    env: &str,
    client: &str,
    secret: &str,
    code: &str,
) -> Value {
    let r = token(
        server,
        env,
        client,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

pub(crate) fn userinfo(server: &Server, env: &str, access: &str) -> Response {
    server.get(
        &format!("/e/{env}/oidc/userinfo"),
        &[("authorization", &format!("Bearer {access}"))],
    )
}

pub(crate) fn refresh(
    server: &Server,
    env: &str,
    client: &str,
    secret: &str,
    rt: &str,
) -> Response {
    token(
        server,
        env,
        client,
        secret,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
}

/// The claims of a JWT, unverified (the tests verify with authlib where it matters).
pub(crate) fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap()
}

/// A back-channel logout receiver on `port`: it records every `logout_token` sent to it.
pub(crate) struct Receiver {
    tokens: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub(crate) fn listen(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&tokens);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let body = String::from_utf8_lossy(&body).into_owned();
                if let Some(t) =
                    url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "logout_token")
                {
                    seen.lock().unwrap().push(t.1.into_owned());
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self { tokens }
    }

    /// The first logout token for session `sid` within `wait`, verified by authlib.
    pub(crate) fn logout_for(
        &self,
        issuer: &str,
        client: &str,
        sid: &str,
        wait: Duration,
    ) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let found = self
                .tokens
                .lock()
                .unwrap()
                .iter()
                .find(|t| claims(t)["sid"] == sid)
                .cloned();
            if let Some(t) = found {
                return verified(issuer, client, &t);
            }
            assert!(
                Instant::now() < deadline,
                "no logout token for session {sid}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub(crate) fn verified(issuer: &str, client: &str, token: &str) -> Value {
    let mut child = Command::new("python3")
        .arg(scripts().join("verify_logout.py"))
        .args([issuer, client])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "authlib refused the logout token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn enrol(server: &Server, dir: &std::path::Path, env: &str, email: &str) -> Enrolled {
    let link = link_token(&ok(dir, &["user", "create", env, email]));
    enrol_with_link(server, env, &link, email, PASSWORD)
}

/// A user `email` enrolled in `prod`, signed into `app` (confidential, `secret`): the tokens
/// and the ID token's `sid`.
pub(crate) fn signed_in(
    server: &Server,
    dir: &std::path::Path,
    secret: &str,
    email: &str,
) -> (Value, String) {
    let user = enrol(server, dir, "prod", email);
    let tokens = exchange(
        server,
        "prod",
        "app",
        secret,
        &code(server, "prod", "app", &user.session),
    );
    let sid = claims(tokens["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    (tokens, sid)
}
