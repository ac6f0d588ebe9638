//! A database outage (SECURITY R2): a PostgreSQL cluster of the test's own (`initdb` and
//! `pg_ctl` in a temporary directory on a free port, run as the `postgres` user when the test
//! runs as root) is stopped while clients log in and check sessions. Every request but
//! `/healthz` then answers 503 problem JSON within 2 s (never a 500, never a hang), `/readyz`
//! 503; when the cluster is started again the node serves again without a restart.
//!
//! Needs PostgreSQL's server binaries (Debian's `postgresql` package); without them it skips
//! with a printed reason unless `LATCHKEY_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use crate::common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use common::{ok, start};
use serde_json::json;

const PASSWORD: &str = "quilt anchor mango river";

/// PostgreSQL's server binaries, newest version first.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args…`, as the `postgres` user when we are root (the server refuses to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.args(args).output().unwrap()
}

/// A cluster of the test's own.
struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    fn create() -> Option<Self> {
        let required = std::env::var("LATCHKEY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Some(bin) = pg_bin() else {
            assert!(
                !required,
                "PostgreSQL's server binaries (initdb, pg_ctl) are required but not installed"
            );
            common::say("skipping: no initdb/pg_ctl under /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            port: common::free_port(),
            _dir: dir,
            data,
            log,
            bin,
        };
        cluster.start();
        Some(cluster)
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data.display()
        );
        let out = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn stop(&self) {
        let out = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

/// One observation: the phase the request was sent and answered in (9 when those differ),
/// what was asked, the status, the problem code, how long it took.
type Seen = (u8, &'static str, u16, String, Duration);

#[test]
fn a_database_outage_is_answered_503_and_the_node_recovers_by_itself() {
    let Some(cluster) = Cluster::create() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::query("CREATE DATABASE latchkey")
            .execute(&mut c)
            .await
            .unwrap();
    });
    let url = cluster.url("latchkey");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &["--database", &url]);
    ok(
        d,
        &["--database", &url, "env", "create", "prod", "--mfa", "off"],
    );
    let token = common::link_token(&ok(
        d,
        &[
            "--database",
            &url,
            "user",
            "create",
            "prod",
            "ada@example.com",
        ],
    ));
    let r = common::set_password_with_link(&server, "prod", &token, PASSWORD);
    let session = r.json()["session"]["token"].as_str().unwrap().to_owned();

    // Clients check sessions, log in and ask for readiness throughout.
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let clients: Vec<_> = (0..6)
        .map(|n| {
            let (phase, stop, seen, session) = (
                Arc::clone(&phase),
                Arc::clone(&stop),
                Arc::clone(&seen),
                session.clone(),
            );
            let addr = server.addr;
            std::thread::spawn(move || {
                let login = json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
                let auth = format!("Bearer {session}");
                while !stop.load(Ordering::Relaxed) {
                    let p = phase.load(Ordering::Relaxed);
                    let started = Instant::now();
                    let (what, r) = match n % 3 {
                        0 => (
                            "session",
                            common::try_request(
                                addr,
                                "GET",
                                "/api/v1/session",
                                &[("authorization", &auth)],
                                None,
                            ),
                        ),
                        1 => (
                            "login",
                            common::try_request(
                                addr,
                                "POST",
                                "/api/v1/environments/prod/login",
                                &[("content-type", "application/json")],
                                Some(login.as_bytes()),
                            ),
                        ),
                        _ => (
                            "readyz",
                            common::try_request(addr, "GET", "/readyz", &[], None),
                        ),
                    };
                    let took = started.elapsed();
                    let (status, code) = r.map_or((0, String::new()), |r| {
                        let code = serde_json::from_str::<serde_json::Value>(&r.body)
                            .ok()
                            .and_then(|v| v["code"].as_str().map(str::to_owned))
                            .unwrap_or_default();
                        (r.status, code)
                    });
                    // A request still waiting when the cluster comes back may succeed: only
                    // those begun and ended while it was down count as "during the outage".
                    let p = if phase.load(Ordering::Relaxed) == p {
                        p
                    } else {
                        9
                    };
                    seen.lock().unwrap().push((p, what, status, code, took));
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(1));
    cluster.stop();
    phase.store(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(5));
    phase.store(2, Ordering::Relaxed);
    cluster.start();
    let restarted = Instant::now();
    phase.store(3, Ordering::Relaxed);
    // The node serves again by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    let recovered = loop {
        let r = server.get(
            "/api/v1/session",
            &[("authorization", &format!("Bearer {session}"))],
        );
        if r.status == 200 {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "no recovery in 20 s: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let down: Vec<&Seen> = seen.iter().filter(|s| s.0 == 1).collect();
    // A request waits up to 1.5 s for a connection that cannot be made: six clients make
    // about twenty requests in the 5 s.
    assert!(
        down.len() >= 6,
        "too few requests during the outage: {down:?}"
    );
    for (_, what, status, code, took) in &down {
        assert_eq!(
            (*status, code.as_str()),
            (503, "unavailable"),
            "{what} during the outage"
        );
        assert!(
            *took < Duration::from_secs(2),
            "{what} took {took:?} during the outage"
        );
    }
    for what in ["session", "login", "readyz"] {
        assert!(
            down.iter().any(|s| s.1 == what),
            "no {what} during the outage"
        );
    }
    assert!(
        !seen.iter().any(|s| s.2 == 500 || s.2 == 0),
        "a 500 or no answer: {:?}",
        seen.iter()
            .filter(|s| s.2 == 500 || s.2 == 0)
            .collect::<Vec<_>>()
    );
    let after: Vec<&Seen> = seen.iter().filter(|s| s.0 == 3).collect();
    for what in ["session", "login", "readyz"] {
        assert!(
            after.iter().any(|s| s.1 == what && s.2 == 200),
            "{what} never answered 200 after the restart"
        );
    }
    common::say(&format!(
        "outage: {} requests during 5 s down, all 503 in under 2 s (slowest {:?}); served again {:?} after the start",
        down.len(),
        down.iter().map(|s| s.4).max().unwrap_or_default(),
        recovered.duration_since(restarted)
    ));
    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
}
