//! Many stateless nodes on one PostgreSQL database (issue: PostgreSQL and many nodes): two real
//! `latchkey serve` processes share replay state, lockout counters, sessions and enforcement,
//! and a node fails closed — 503, never success or "wrong code" — while the database is gone,
//! recovering by itself when it returns.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::many_single_char_names
)]

use crate::common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Server, code_from_uri, enrol_with_link, link_token, now, password_login, pg_database, start,
    wait_for_fresh_step,
};
use serde_json::json;

const PASSWORD: &str = "quilt anchor mango river";

fn cli(dir: &std::path::Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database", url];
    all.extend_from_slice(args);
    common::ok(dir, &all)
}

fn login_token(r: &common::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["login_token"].as_str().unwrap().to_owned()
}

fn mfa(server: &Server, lt: &str, code: &str) -> common::Response {
    server.post(
        "/api/v1/environments/prod/login/mfa",
        &json!({"login_token": lt, "code": code}),
    )
}

#[test]
fn two_nodes_share_replay_lockout_sessions_and_enforcement() {
    let Some(db) = pg_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = start(d, &["--database", &db.url]);
    let b = start(d, &["--database", &db.url]);
    assert!(
        !b.lines.iter().any(|l| l.contains("setup link")),
        "the second node does not bootstrap again"
    );
    cli(d, &db.url, &["env", "create", "prod", "--mfa", "required"]);
    wait_for_fresh_step();
    let alice = enrol_with_link(
        &a,
        "prod",
        &link_token(&cli(
            d,
            &db.url,
            &["user", "create", "prod", "alice@example.com"],
        )),
        "alice@example.com",
        PASSWORD,
    );
    let bob = enrol_with_link(
        &b,
        "prod",
        &link_token(&cli(
            d,
            &db.url,
            &["user", "create", "prod", "bob@example.com"],
        )),
        "bob@example.com",
        PASSWORD,
    );
    let carol = enrol_with_link(
        &a,
        "prod",
        &link_token(&cli(
            d,
            &db.url,
            &["user", "create", "prod", "carol@example.com"],
        )),
        "carol@example.com",
        PASSWORD,
    );

    // A code accepted on A is refused on B.
    let code = code_from_uri(&alice.uri, now() + 30);
    let r = mfa(
        &a,
        &login_token(&password_login(&a, "prod", &alice.email, PASSWORD)),
        &code,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alice_session = r.json()["session"]["token"].as_str().unwrap().to_owned();
    let r = mfa(
        &b,
        &login_token(&password_login(&b, "prod", &alice.email, PASSWORD)),
        &code,
    );
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_code".to_owned()),
        "{}",
        r.body
    );

    // Twelve submissions of one code, racing across both nodes: exactly one wins.
    let tokens: Vec<(SocketAddr, String)> = (0..12)
        .map(|i| {
            let node = if i % 2 == 0 { &a } else { &b };
            (
                node.addr,
                login_token(&password_login(node, "prod", &bob.email, PASSWORD)),
            )
        })
        .collect();
    let code = code_from_uri(&bob.uri, now() + 30);
    let barrier = Arc::new(std::sync::Barrier::new(12));
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|(addr, lt)| {
            let (barrier, code) = (Arc::clone(&barrier), code.clone());
            std::thread::spawn(move || {
                barrier.wait();
                common::post_mfa_code(addr, "prod", &lt, &code).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );

    // Failures on A count toward the lockout on B.
    let lt = login_token(&password_login(&a, "prod", &carol.email, PASSWORD));
    let wrong = if code_from_uri(&carol.uri, now()) == "111111" {
        "222222"
    } else {
        "111111"
    };
    for node in [&a, &a, &a, &b, &b] {
        assert_eq!(mfa(node, &lt, wrong).status, 401);
    }
    let r = mfa(&b, &lt, &code_from_uri(&carol.uri, now() + 30));
    assert_eq!(
        (r.status, r.code()),
        (429, "too_many_attempts".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(
        password_login(&a, "prod", &carol.email, PASSWORD).status,
        429
    );

    // A session ended on A is refused on B at the next request.
    let bearer = format!("Bearer {alice_session}");
    assert_eq!(
        b.get("/api/v1/session", &[("authorization", &bearer)])
            .status,
        200
    );
    assert_eq!(
        a.post_with("/api/v1/logout", &[("authorization", &bearer)], &json!({}))
            .status,
        204
    );
    assert_eq!(
        b.get("/api/v1/session", &[("authorization", &bearer)])
            .status,
        401
    );

    // enforce-mfa on A ends sessions as checked on B.
    cli(d, &db.url, &["env", "create", "shop", "--mfa", "optional"]);
    let t = link_token(&cli(
        d,
        &db.url,
        &["user", "create", "shop", "dan@example.com"],
    ));
    let lt = login_token(&b.post("/api/v1/environments/shop/setup-link", &json!({"token": t})));
    let r = b.post(
        "/api/v1/environments/shop/login/password",
        &json!({"login_token": lt, "new_password": "dan's long passphrase here"}),
    );
    let dan = format!("Bearer {}", r.json()["session"]["token"].as_str().unwrap());
    assert_eq!(
        b.get("/api/v1/session", &[("authorization", &dan)]).status,
        200
    );
    let op = cli(d, &db.url, &["token", "create", "--operator", "tests"])
        .lines()
        .find(|l| l.starts_with("lk_"))
        .unwrap()
        .to_owned();
    let r = a.post_with(
        "/api/v1/environments/shop/enforce-mfa",
        &[("authorization", &format!("Bearer {op}"))],
        &json!({}),
    );
    assert_eq!(r.json()["sessions_ended"], 1, "{}", r.body);
    assert_eq!(
        b.get("/api/v1/session", &[("authorization", &dan)]).status,
        401
    );
}

/// A TCP forwarder to the PostgreSQL server that can be cut (connections refused, open ones
/// closed) and restored on the same port.
struct Switch {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    target: SocketAddr,
}

impl Switch {
    fn new(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let switch = Self {
            addr,
            up: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
            target,
        };
        switch.connect();
        switch
    }

    fn connect(&self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, open, target) = (Arc::clone(&self.up), Arc::clone(&self.open), self.target);
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        open.lock()
                            .unwrap()
                            .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let mut buf = [0u8; 16384];
                                while let Ok(n) = from.read(&mut buf) {
                                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // Dropping the listener here refuses new connections.
        });
    }

    /// The database is gone: new connections refused, open ones cut.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_fails_closed_without_its_database_and_recovers_by_itself() {
    let Some(db) = pg_database() else { return };
    let target: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let switch = Switch::new(target);
    let url = db.url.replace("127.0.0.1:5432", &switch.addr.to_string());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = start(d, &["--database", &url]);
    cli(d, &url, &["env", "create", "prod", "--mfa", "required"]);
    let alice = enrol_with_link(
        &node,
        "prod",
        &link_token(&cli(
            d,
            &url,
            &["user", "create", "prod", "alice@example.com"],
        )),
        "alice@example.com",
        PASSWORD,
    );
    let bearer = format!("Bearer {}", alice.session);
    assert_eq!(
        node.get("/api/v1/session", &[("authorization", &bearer)])
            .status,
        200
    );

    switch.cut();
    let session = node.get("/api/v1/session", &[("authorization", &bearer)]);
    let login = password_login(&node, "prod", &alice.email, PASSWORD);
    let ready = node.get("/readyz", &[]);
    for (what, r) in [
        ("session check", &session),
        ("login", &login),
        ("readyz", &ready),
    ] {
        assert_eq!(
            r.status, 503,
            "{what} while the database is gone: {} {}",
            r.status, r.body
        );
        assert!(r.header("retry-after").is_some(), "{what}");
    }
    assert_eq!(
        node.get("/healthz", &[]).status,
        200,
        "the process itself is up"
    );

    switch.connect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = node.get("/api/v1/session", &[("authorization", &bearer)]);
        if r.status == 200 {
            break;
        }
        assert!(
            matches!(r.status, 503),
            "never another answer while recovering: {} {}",
            r.status,
            r.body
        );
        assert!(
            Instant::now() < deadline,
            "the node did not recover by itself"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        password_login(&node, "prod", &alice.email, PASSWORD).json()["status"],
        "mfa_required"
    );
}

/// Two nodes and the CLI on one SQLite file (the embedded default). Each node answers repeated
/// checks of a session from its cache; whatever any process writes — a rename, a logout, a
/// disabled user, a sign-out — the other processes' checks see at the very next request.
#[test]
fn sqlite_nodes_and_the_cli_see_each_others_writes_at_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = start(d, &[]);
    let b = start(d, &[]);
    common::ok(d, &["env", "create", "shop", "--mfa", "optional"]);
    let session = |email: &str| {
        let t = link_token(&common::ok(d, &["user", "create", "shop", email]));
        let lt = login_token(&b.post("/api/v1/environments/shop/setup-link", &json!({"token": t})));
        let r = b.post(
            "/api/v1/environments/shop/login/password",
            &json!({"login_token": lt, "new_password": "a long passphrase for the cache"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        format!("Bearer {}", r.json()["session"]["token"].as_str().unwrap())
    };
    let check =
        |node: &Server, bearer: &str| node.get("/api/v1/session", &[("authorization", bearer)]);
    let (dan, erin, frank) = (
        session("dan@example.com"),
        session("erin@example.com"),
        session("frank@example.com"),
    );
    for _ in 0..3 {
        for node in [&a, &b] {
            for bearer in [&dan, &erin, &frank] {
                assert_eq!(check(node, bearer).status, 200);
            }
        }
    }

    // A rename by the CLI shows in both nodes' next answer.
    common::ok(
        d,
        &[
            "user",
            "update",
            "shop",
            "dan@example.com",
            "--name",
            "Daniel",
        ],
    );
    for node in [&a, &b] {
        assert_eq!(check(node, &dan).json()["user"]["name"], "Daniel");
    }
    // A logout on A is refused on B.
    assert_eq!(
        a.post_with("/api/v1/logout", &[("authorization", &dan)], &json!({}))
            .status,
        204
    );
    assert_eq!(check(&b, &dan).status, 401);
    // The CLI disables erin and signs frank out: both nodes refuse them at once.
    common::ok(
        d,
        &["user", "update", "shop", "erin@example.com", "--disable"],
    );
    common::ok(d, &["user", "sign-out", "shop", "frank@example.com"]);
    for node in [&a, &b] {
        assert_eq!(check(node, &erin).status, 401);
        assert_eq!(check(node, &frank).status, 401);
    }
}
