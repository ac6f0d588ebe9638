//! Forward-auth behind a real reverse proxy (SPEC §5.2): Debian's nginx with `auth_request` to
//! `/auth/verify` in front of a static page. No session → 302 to the login page; a session →
//! the page, with `X-Latchkey-Email` passed on to the application; after sign-out → 302 again;
//! an `rd` to a host not allowed is never followed.
//!
//! `.ci/run` installs nginx and sets `LATCHKEY_REQUIRE_NGINX=1`; elsewhere the test skips and
//! says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use crate::common;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Browser, free_port, invite_and_enrol, missing_tools, ok, request, start_listening};

const PASSWORD: &str = "quilt anchor mango river";

/// nginx, stopped on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> &'static str {
    if Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        "nginx"
    } else {
        "/usr/sbin/nginx"
    }
}

fn start_nginx(dir: &Path, latchkey: u16, front: u16, app: u16) -> Nginx {
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<p>the protected page</p>\n").unwrap();
    let d = dir.display();
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let user = if root { "user root;" } else { "" };
    let conf = format!(
        r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  # The application: a static page that shows which user nginx passed on.
  server {{
    listen 127.0.0.1:{app};
    root {d}/site;
    location / {{
      add_header X-Seen-Email $http_x_latchkey_email always;
      try_files /index.html =404;
    }}
  }}
  # The proxy in front of it, asking Latchkey about every request.
  server {{
    listen 127.0.0.1:{front};
    location = /_latchkey {{
      internal;
      proxy_pass http://127.0.0.1:{latchkey}/auth/verify?env=dev;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
    location / {{
      auth_request /_latchkey;
      auth_request_set $latchkey_email $upstream_http_x_latchkey_email;
      proxy_set_header X-Latchkey-Email $latchkey_email;
      proxy_pass http://127.0.0.1:{app};
      error_page 401 = @login;
    }}
    location @login {{
      return 302 http://127.0.0.1:{latchkey}/e/dev/login?rd=$scheme://$http_host$request_uri;
    }}
  }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let nginx = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", front)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

#[test]
fn nginx_auth_request_protects_a_page() {
    if missing_tools("LATCHKEY_REQUIRE_NGINX", &[(nginx_binary(), &["-v"])]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, front, app) = (free_port(), free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let server = start_listening(
        d,
        &format!("127.0.0.1:{port}"),
        &["--public-url", &base],
        &[("LATCHKEY_ALLOWED_REDIRECT_HOSTS", "127.0.0.1")],
    );
    ok(d, &["env", "create", "dev", "--mfa", "required"]);
    let user = invite_and_enrol(&server, d, "dev", "rosa@example.com", PASSWORD);
    let proxy_dir = tempfile::tempdir().unwrap();
    let _nginx = start_nginx(proxy_dir.path(), port, front, app);
    let proxy = SocketAddr::from(([127, 0, 0, 1], front));
    let get = |cookie: &str, host: &str| {
        let mut h = vec![("host", host)];
        if !cookie.is_empty() {
            h.push(("cookie", cookie));
        }
        request(proxy, "GET", "/docs/page?x=1", &h, None)
    };
    let host = format!("127.0.0.1:{front}");

    // No session: nginx sends the browser to the login page, which will bring it back.
    let r = get("", &host);
    assert_eq!(r.status, 302, "{r:?}");
    let back = format!("http://{host}/docs/page?x=1");
    assert_eq!(
        r.header("location"),
        Some(format!("{base}/e/dev/login?rd={back}").as_str())
    );

    // With the session cookie: the page, and the application saw who it is.
    let cookie = format!("latchkey_session={}", user.session);
    let r = get(&cookie, &host);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("the protected page"));
    assert_eq!(r.header("x-seen-email"), Some("rosa@example.com"));

    // A login that started at nginx ends back at the page.
    let mut b = Browser::new(&server);
    b.origin = base.clone();
    let login = format!(
        "/e/dev/login?rd={}",
        back.replace(':', "%3A")
            .replace('/', "%2F")
            .replace('?', "%3F")
            .replace('=', "%3D")
    );
    let r = b.submit(
        &login,
        "/e/dev/login",
        &[
            ("email", &user.email),
            ("password", PASSWORD),
            ("rd", &back),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/e/dev/login/mfa?rd=")
    );

    // An `rd` to a host that is not allowed is refused by /auth/verify (a plain 401) …
    let r = server.get("/auth/verify?env=dev&rd=http%3A%2F%2Fevil.example%2F", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("location"), None);
    // … and a forged Host at the proxy makes a login that ends on the account page, not there.
    let r = get("", "evil.example");
    assert_eq!(r.status, 302);
    let evil_rd = "http://evil.example/docs/page?x=1";
    assert!(
        r.header("location")
            .unwrap()
            .ends_with(&format!("rd={evil_rd}"))
    );
    let mut b = Browser::new(&server);
    b.origin = base.clone();
    let r = b.submit(
        "/e/dev/login",
        "/e/dev/login",
        &[
            ("email", &user.email),
            ("password", PASSWORD),
            ("rd", evil_rd),
        ],
    );
    assert_eq!(r.status, 303);
    let mfa = r.header("location").unwrap().to_owned();
    common::wait_for_fresh_step();
    let code = common::code_from_uri(&user.uri, common::now() + 30);
    let r = b.submit(
        &mfa,
        "/e/dev/login/mfa",
        &[("code", &code), ("rd", evil_rd)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/e/dev/account"));

    // After sign-out the same cookie is sent to the login page again.
    let r = server.request_json(
        "POST",
        "/api/v1/logout",
        &[("authorization", &format!("Bearer {}", user.session))],
        &serde_json::Value::Null,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = get(&cookie, &host);
    assert_eq!(r.status, 302, "{r:?}");
}
