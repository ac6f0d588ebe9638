//! What the end-to-end tests share: running the real binary in a directory of its own, a
//! plain HTTP/1.1 client, and independent TOTP generators (the `totp-rs` crate reading the
//! `otpauth://` URI, and Debian's `oathtool`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A `latchkey` command in `dir` with a clean environment (no LATCHKEY_* from the caller).
pub fn latchkey(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    latchkey(dir).args(args).output().unwrap()
}

/// Run and insist on success; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running server; killed on drop so a failing test never leaves one behind.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub lines: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(dir: &Path, extra: &[&str]) -> Server {
    start_with(dir, extra, &[])
}

pub fn start_with(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
    start_listening(dir, "127.0.0.1:0", extra, envs)
}

/// A server on a chosen address (for tests whose public URL must name the port beforehand).
pub fn start_listening(dir: &Path, listen: &str, extra: &[&str], envs: &[(&str, &str)]) -> Server {
    let child = latchkey(dir)
        .args(["serve", "--listen", listen])
        .args(extra)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        lines: Vec::new(),
        stderr: None,
    };
    let out = server.child.stdout.take().unwrap();
    let mut err = server.child.stderr.take().unwrap();
    server.stderr = Some(std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    }));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("server did not start; stdout so far: {:?}", server.lines));
        let addr = line
            .strip_prefix("Listening on http://")
            .or_else(|| line.strip_prefix("Listening on https://"))
            .map(|a| a.parse().unwrap());
        server.lines.push(line);
        if let Some(addr) = addr {
            server.addr = addr;
            return server;
        }
    }
}

impl Server {
    /// SIGTERM, then wait for a clean exit; returns the exit status and everything logged.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let logs = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap())
                    .unwrap_or_default();
                return (status, logs);
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        request(
            self.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        request(
            self.addr,
            "POST",
            path,
            &h,
            Some(body.to_string().as_bytes()),
        )
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `code` of a problem answer.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A code for a login's second-factor step in `env`, sent to `addr` (from any thread).
pub fn post_mfa_code(addr: SocketAddr, env: &str, login_token: &str, code: &str) -> Response {
    let body = serde_json::json!({"login_token": login_token, "code": code}).to_string();
    request(
        addr,
        "POST",
        &format!("/api/v1/environments/{env}/login/mfa"),
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )
}

/// The same, for a server that may be gone (`None` when the connection is refused).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let _ = write!(head, "Host: {addr}\r\n");
    }
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if let Some(b) = body {
        let _ = write!(head, "content-length: {}\r\n", b.len());
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if let Some(b) = body {
        // The server may answer (413) and close before reading everything.
        let _ = s.write_all(b);
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator app would show at `time`, computed by `totp-rs` from the URI.
pub fn code_from_uri(uri: &str, time: u64) -> String {
    let totp = totp_rs::Totp::from_url(uri).unwrap_or_else(|e| panic!("{uri}: {e:?}"));
    totp.generate(time).to_string()
}

/// Whether the tests must use `oathtool` (set in CI), or may skip it when it is missing.
pub fn oathtool_required() -> bool {
    std::env::var("LATCHKEY_REQUIRE_OATHTOOL").is_ok_and(|v| v == "1")
}

/// Debian's `oathtool` computing the code for a base32 secret at `time`; `None` when it is
/// not installed and not required.
pub fn oathtool(secret_b32: &str, time: u64) -> Option<String> {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &format!("@{time}"), secret_b32])
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(o) => panic!("oathtool failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            assert!(
                !oathtool_required(),
                "oathtool is required (LATCHKEY_REQUIRE_OATHTOOL=1) but cannot run: {e}"
            );
            say(
                "skipping the oathtool cross-check: oathtool is not installed (apt-get install oathtool)",
            );
            None
        }
    }
}

/// Find `Setup link (valid …): URL` in a command's output and return the token.
pub fn link_token(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.contains("etup link"))
        .unwrap_or_else(|| panic!("no setup link in {out}"));
    line.rsplit_once("token=")
        .map(|(_, t)| t.to_owned())
        .unwrap()
}

/// A user who completed the invitation: a password, a first authenticator, a session.
pub struct Enrolled {
    pub email: String,
    pub password: String,
    pub uri: String,
    pub secret: String,
    pub session: String,
    pub recovery_codes: Vec<String>,
    pub setup_token: String,
    pub login_tokens: Vec<String>,
}

/// Invite `email` in `env` with the CLI, then walk the setup link through the API: new
/// password, MFA setup with a code computed from the `otpauth://` URI, authenticated.
pub fn invite_and_enrol(
    server: &Server,
    dir: &Path,
    env: &str,
    email: &str,
    password: &str,
) -> Enrolled {
    let setup_token = link_token(&ok(dir, &["user", "create", env, email]));
    enrol_with_link(server, env, &setup_token, email, password)
}

/// Walk a setup link (its token) through the API to an authenticated session with MFA.
pub fn enrol_with_link(
    server: &Server,
    env: &str,
    setup_token: &str,
    email: &str,
    password: &str,
) -> Enrolled {
    let setup_token = setup_token.to_owned();
    let base = format!("/api/v1/environments/{env}");
    let r = server.post(
        &format!("{base}/setup-link"),
        &serde_json::json!({"token": setup_token}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "password_change_required");
    let login_token = r.json()["login_token"].as_str().unwrap().to_owned();
    let r = server.post(
        &format!("{base}/login/password"),
        &serde_json::json!({"login_token": login_token, "new_password": password}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "mfa_setup_required", "{}", r.body);
    let r = server.post(
        &format!("{base}/login/mfa/setup"),
        &serde_json::json!({"login_token": login_token}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let offer = r.json();
    let uri = offer["otpauth_uri"].as_str().unwrap().to_owned();
    let secret = offer["secret"].as_str().unwrap().to_owned();
    let code = code_from_uri(&uri, now());
    let r = server.post(
        &format!("{base}/login/mfa/setup/confirm"),
        &serde_json::json!({"login_token": login_token, "code": code, "label": "Phone"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let done = r.json();
    assert_eq!(done["status"], "authenticated", "{}", r.body);
    Enrolled {
        email: email.to_owned(),
        password: password.to_owned(),
        uri,
        secret,
        session: done["session"]["token"].as_str().unwrap().to_owned(),
        recovery_codes: done["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect(),
        setup_token,
        login_tokens: vec![login_token],
    }
}

/// Start a password login; returns the answer.
pub fn password_login(server: &Server, env: &str, email: &str, password: &str) -> Response {
    server.post(
        &format!("/api/v1/environments/{env}/login"),
        &serde_json::json!({"email": email, "password": password}),
    )
}

/// Wait until a fresh TOTP step has begun, so a test has the whole step ahead of it.
pub fn wait_for_fresh_step() {
    let into_step = now() % 30;
    if into_step > 20 {
        std::thread::sleep(Duration::from_secs(30 - into_step + 1));
    }
}

impl Server {
    /// A request with a JSON body (`null` sends none).
    pub fn request_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Response {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        let text = body.to_string();
        let bytes = (!body.is_null()).then_some(text.as_bytes());
        request(self.addr, method, path, &h, bytes)
    }
}

/// The audit event types of `env`, oldest first, read straight from the database.
pub fn audit_types(dir: &Path, env: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.join("latchkey.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT type FROM audit_events WHERE env = ?1 ORDER BY id")
            .bind(env)
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

impl Server {
    /// SIGKILL: no chance to finish anything.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use latchkey_testkit::{ScratchDatabase, say};

/// A fresh database on the test server; `None` (the test skips, saying why) when PostgreSQL
/// cannot be reached and `LATCHKEY_REQUIRE_POSTGRES=1` is not set.
pub fn pg_database() -> Option<ScratchDatabase> {
    ScratchDatabase::create_blocking("e2e")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tools of `needs` (a program and arguments that succeed when it is usable) that are
/// missing here. With `required_var=1` a missing tool fails the test; otherwise the caller
/// skips, having said why.
pub fn missing_tools(required_var: &str, needs: &[(&str, &[&str])]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(program, args)| {
            !Command::new(program)
                .args(*args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(program, args)| format!("{program} {}", args.join(" ")))
        .collect();
    if missing.is_empty() {
        return false;
    }
    let required = std::env::var(required_var).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{required_var}=1 but these do not run: {missing:?}"
    );
    say(&format!(
        "skipping: {missing:?} not usable here (.ci/run installs them and sets {required_var}=1)"
    ));
    true
}

/// A minimal browser for the pages: keeps cookies, sends forms with our `Origin`, and reads
/// the CSRF token out of a page.
pub struct Browser<'a> {
    pub server: &'a Server,
    pub cookies: std::collections::BTreeMap<String, String>,
    /// The `Origin` its forms carry (the server's public origin unless a test changes it).
    pub origin: String,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a Server) -> Self {
        Self {
            server,
            cookies: std::collections::BTreeMap::new(),
            origin: "http://127.0.0.1:8080".into(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Take the answer's `Set-Cookie`s (a `Max-Age=0` deletes).
    pub fn absorb(&mut self, r: &Response) {
        for (k, v) in &r.headers {
            if k != "set-cookie" {
                continue;
            }
            let pair = v.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        let cookie = self.cookie_header();
        let r = self.server.get(path, &[("cookie", &cookie)]);
        self.absorb(&r);
        r
    }

    /// POST a form with extra headers (the cookies and our `Origin` are added).
    pub fn post_with(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let body = form_body(fields);
        let cookie = self.cookie_header();
        let mut h = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", cookie.as_str()),
        ];
        if !self.origin.is_empty() {
            h.push(("origin", self.origin.as_str()));
        }
        h.extend_from_slice(headers);
        let r = request(self.server.addr, "POST", path, &h, Some(body.as_bytes()));
        self.absorb(&r);
        r
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_with(path, fields, &[])
    }

    /// GET `path`, then POST its form (with the page's CSRF token) to `action`.
    pub fn submit(&mut self, path: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let page = self.get(path);
        assert_eq!(page.status, 200, "GET {path}: {}", page.body);
        let token = csrf_of(&page.body);
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all)
    }
}

/// The CSRF token in a page's first form.
pub fn csrf_of(html: &str) -> String {
    let key = "name=\"csrf\" value=\"";
    let start = html
        .find(key)
        .map(|i| i + key.len())
        .expect("a form with a CSRF token");
    html[start..].split('"').next().unwrap().to_owned()
}

/// `application/x-www-form-urlencoded`.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One request from the local address `from` (127.0.0.2, say: another client than the
/// 127.0.0.1 of every other request): the status, the raw answer, and how long it took.
/// With a body, it is sent as JSON with its length; the answer must end within 10 s.
pub fn request_from(
    from: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut s = socket.connect(to).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
        for (k, v) in headers {
            let _ = write!(req, "{k}: {v}\r\n");
        }
        match body {
            Some(b) => {
                let _ = write!(
                    req,
                    "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            None => req.push_str("\r\n"),
        }
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
        assert!(read.is_ok(), "{method} {path}: no answer in 10 s");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, raw, started.elapsed())
    })
}

/// Follow a setup link (its token) through the API and choose `password`: the answer to the
/// new-password step (`authenticated` where the policy asks no second factor).
pub fn set_password_with_link(
    server: &Server,
    env: &str,
    setup_token: &str,
    password: &str,
) -> Response {
    let base = format!("/api/v1/environments/{env}");
    let r = server.post(
        &format!("{base}/setup-link"),
        &serde_json::json!({"token": setup_token}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let login_token = r.json()["login_token"].as_str().unwrap().to_owned();
    server.post(
        &format!("{base}/login/password"),
        &serde_json::json!({"login_token": login_token, "new_password": password}),
    )
}
