//! End to end: the real `latchkey` binary, started as a user would, on port 0 in an empty
//! directory, with the CLI working beside it on the same database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use crate::common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use common::{latchkey, run, start, stderr, stdout};
use latchkey_store::SqliteStore;

/// A plain HTTP/1.1 GET; returns (status, head, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn token_of(line: &str) -> String {
    line.rsplit_once("token=")
        .map(|(_, t)| t.to_owned())
        .unwrap()
}

fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[test]
fn first_start_then_the_cli_beside_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    let link_line = server
        .lines
        .iter()
        .find(|l| l.starts_with("Operator setup link"))
        .expect("operator link printed");
    assert!(
        link_line.starts_with(
            "Operator setup link (valid 24h): http://127.0.0.1:8080/e/system/setup?token="
        ),
        "{link_line}"
    );
    let operator_token = token_of(link_line);
    assert_eq!(operator_token.len(), 43);
    assert!(
        server
            .lines
            .iter()
            .any(|l| l.starts_with("Local development mode")),
        "{:?}",
        server.lines
    );

    let (status, _, body) = get(server.addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(server.addr, "/readyz");
    assert_eq!((status, body.contains("ready")), (200, true), "{body}");
    let (status, head, body) = get(server.addr, "/no/such/page");
    assert_eq!(status, 404);
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
    assert!(head.contains("x-content-type-options: nosniff"));
    // Plain HTTP on loopback (development): no HSTS, which would pin `localhost` to https.
    assert!(!head.contains("strict-transport-security"), "{head}");

    // The CLI works on the database the server is using.
    let o = run(d, &["env", "create", "prod", "--mfa", "required"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(d, &["env", "list"]);
    let list = stdout(&o);
    assert!(
        list.lines()
            .any(|l| l.starts_with("prod ") && l.contains("required") && l.contains("30d")),
        "{list}"
    );
    assert!(list.lines().any(|l| l.starts_with("system ")), "{list}");
    let o = run(d, &["user", "create", "prod", "alice@example.com"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let setup_line = out
        .lines()
        .find(|l| l.starts_with("Setup link"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        setup_line.starts_with("Setup link (valid 7d): http://127.0.0.1:8080/e/prod/setup?token="),
        "{setup_line}"
    );
    let alice_token = token_of(setup_line);
    let o = run(d, &["user", "list", "prod"]);
    assert!(stdout(&o).contains("alice@example.com"), "{}", stdout(&o));
    let o = run(
        d,
        &[
            "env",
            "set",
            "prod",
            "--session-max-age",
            "12h",
            "--session-idle-timeout",
            "none",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&run(d, &["env", "list"]))
            .lines()
            .any(|l| l.starts_with("prod ") && l.contains("12h"))
    );

    // A consistent copy while the server runs.
    let o = run(d, &["backup", "copy.db"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(d, &["backup", "copy.db"]);
    assert!(!o.status.success(), "a backup never overwrites");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let copy = SqliteStore::open_path(&d.join("copy.db")).await.unwrap();
        assert_eq!(copy.integrity_check().await.unwrap(), "ok");
    });

    let (status, logs) = server.stop();
    assert!(status.success(), "graceful stop: {status:?}\n{logs}");
    for secret in [&operator_token, &alice_token] {
        assert!(
            !logs.contains(secret.as_str()),
            "a setup token reached the log"
        );
        for f in ["latchkey.db", "latchkey.db-wal", "copy.db"] {
            assert!(
                !file_contains(&d.join(f), secret),
                "a setup token is stored in clear in {f}"
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["latchkey.key", "latchkey.db"] {
            let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }

    // A lost operator link is replaced from the command line.
    let out = run(d, &["user", "reset-password", "system", "admin@localhost"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l
            .starts_with("Setup link (valid 24h): http://127.0.0.1:8080/e/system/setup?token=")),
        "{}",
        stdout(&out)
    );

    // A restart prints no link.
    let again = start(d, &[]);
    assert!(
        !again.lines.iter().any(|l| l.contains("setup link")),
        "{:?}",
        again.lines
    );
    let (status, _) = again.stop();
    assert!(status.success());
}

/// Arguments, environment variables, working directory, and the text stderr must contain.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a Path, &'a str);

/// Each bad input ends with a clear message on stderr and a non-zero exit: never a panic.
#[test]
fn bad_arguments_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(d, &["migrate"]).status.success());
    assert!(run(d, &["env", "create", "prod"]).status.success());
    std::fs::create_dir(d.join("keydir")).unwrap();
    std::fs::write(
        d.join("bad.toml"),
        "public_url = \"https://a.example\"\nlisten_adress = \"x\"\n",
    )
    .unwrap();
    let other_key = "q2xYVq3jH6Z5c0o0mEo8oM1s2k5K7fO9y8ZkQ1cYv3E=";
    let fresh = tempfile::tempdir().unwrap();
    let keydir = d.join("keydir").display().to_string();
    let cases: Vec<Case> = vec![
        (
            vec!["env", "create", "my env"],
            vec![],
            d,
            "not a valid environment slug",
        ),
        (
            vec!["env", "create", "staging", "--mfa", "sometimes"],
            vec![],
            d,
            "not a valid MFA policy",
        ),
        (
            vec!["env", "set", "prod", "--session-max-age", "1.5h"],
            vec![],
            d,
            "not a duration",
        ),
        (
            vec!["env", "set", "prod", "--session-idle-timeout", "forever"],
            vec![],
            d,
            "not a duration",
        ),
        (
            vec!["--database", "sqlite:///no/such/dir/x.db", "migrate"],
            vec![],
            d,
            "does not exist",
        ),
        (
            vec!["--database", "mysql://localhost/x", "env", "list"],
            vec![],
            d,
            "sqlite://PATH",
        ),
        (
            vec![
                "--database",
                "postgres://u:hunter2pw@127.0.0.1:1/x",
                "env",
                "list",
            ],
            vec![],
            d,
            "Connection refused",
        ),
        (
            vec!["--key-file", keydir.as_str(), "migrate"],
            vec![],
            fresh.path(),
            "cannot read the key file",
        ),
        (
            vec!["--key-file", "missing.key", "env", "list"],
            vec![],
            d,
            "restore that key file",
        ),
        (
            vec!["env", "list"],
            vec![("LATCHKEY_SECRET_KEY", other_key)],
            d,
            "not the one this database was initialised with",
        ),
        (
            vec!["env", "list"],
            vec![("LATCHKEY_SECRET_KEY", "c2hvcnQ=")],
            d,
            "32 bytes",
        ),
        (
            vec!["--public-url", "http://auth.example.com", "env", "list"],
            vec![],
            d,
            "plain http://",
        ),
        (
            vec!["--config", "nowhere.toml", "env", "list"],
            vec![],
            d,
            "does not exist",
        ),
        (
            vec!["--config", "bad.toml", "env", "list"],
            vec![],
            d,
            "listen_adress",
        ),
        (
            vec!["env", "list"],
            vec![("LATCHKEY_ARGON2_MEMORY_KIB", "1024")],
            d,
            "below the minimum",
        ),
        (
            vec!["env", "list"],
            vec![("LATCHKEY_ARGON2_MEMORY_KIB", "lots")],
            d,
            "ARGON2_MEMORY_KIB",
        ),
        (
            vec!["serve", "--listen", "here"],
            vec![],
            d,
            "listen address",
        ),
        (
            vec!["user", "create", "nowhere", "a@example.com"],
            vec![],
            d,
            "environment not found",
        ),
        (
            vec!["user", "create", "prod", "not-an-email"],
            vec![],
            d,
            "email address",
        ),
        (
            vec!["user", "list", "prod", "--mfa", "maybe"],
            vec![],
            d,
            "invalid value",
        ),
        (vec!["backup", "latchkey.db"], vec![], d, "already exists"),
        (
            vec!["--database", "sqlite://elsewhere.db", "env", "list"],
            vec![],
            d,
            "there is no database",
        ),
        (
            vec!["serve", "--listen", "0.0.0.0:0"],
            vec![],
            d,
            "listen on 127.0.0.1",
        ),
    ];
    for (args, envs, cwd, expected) in cases {
        let o = latchkey(cwd)
            .args(&args)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in\n{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}:\n{err}"
        );
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("latchkey: ") || first.starts_with("error: "),
            "{args:?}: {first}"
        );
        assert!(!first.contains(other_key));
        assert!(
            !err.contains("hunter2pw"),
            "a database password reached the terminal"
        );
    }
    let o = run(d, &["user", "create", "prod", "bob@example.com"]);
    assert!(o.status.success());
    let o = run(d, &["user", "create", "prod", "BOB@example.com"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn configuration_layers_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("latchkey.toml"),
        "public_url = \"https://file.example\"\ninvite_ttl = \"3d\"\n",
    )
    .unwrap();
    assert!(run(d, &["migrate"]).status.success());
    assert!(run(d, &["env", "create", "prod"]).status.success());
    let link = |envs: &[(&str, &str)], flags: &[&str], email: &str| {
        let o = latchkey(d)
            .args(["--config", "latchkey.toml"])
            .args(flags)
            .args(["user", "create", "prod", email])
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .find(|l| l.starts_with("Setup link"))
            .unwrap()
            .to_owned()
    };
    let from_file = link(&[], &[], "a@example.com");
    assert!(
        from_file.starts_with("Setup link (valid 3d): https://file.example/e/prod/setup?token="),
        "{from_file}"
    );
    let from_env = link(
        &[("LATCHKEY_PUBLIC_URL", "https://env.example")],
        &[],
        "b@example.com",
    );
    assert!(
        from_env.contains("https://env.example/e/prod/"),
        "{from_env}"
    );
    let from_flag = link(
        &[("LATCHKEY_PUBLIC_URL", "https://env.example")],
        &["--public-url", "https://flag.example"],
        "c@example.com",
    );
    assert!(
        from_flag.contains("https://flag.example/e/prod/"),
        "{from_flag}"
    );
}

/// SECURITY R4, R7: a supervisor may stop the service the moment it starts. A SIGTERM sent as
/// soon as the first start prints the operator's link — before the server says it listens —
/// ends the process gracefully with status 0 (the handlers are registered before anything
/// else), three first starts in a row.
#[test]
fn sigterm_during_start_up_ends_the_server_with_status_zero() {
    use std::io::BufRead as _;
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = latchkey(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.starts_with("Operator setup link"), "{first}");
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        // Drain stdout so the server never blocks on a full pipe, then wait for its end.
        let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server did not stop within 30 s of SIGTERM at start-up");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest = drain.join().unwrap();
        assert!(
            status.success(),
            "status {status:?} after SIGTERM at start-up; stdout after the link: {rest:?}"
        );
    }
}

/// Issue: an email that differs from its compatibility (NFKC) form, and a name with invisible
/// formatting, are refused for new accounts through the CLI and the API, with a message that
/// says what to write instead; `latchkey user check` reports an account stored before these
/// checks existed, and exits 1 while one remains.
#[test]
fn ambiguous_emails_and_hidden_formatting_are_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start(d, &[]);
    assert!(run(d, &["env", "create", "prod"]).status.success());
    let full_width = "\u{FF21}\u{FF2C}\u{FF29}\u{FF23}\u{FF25}@example.com";
    let o = run(d, &["user", "create", "prod", full_width]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("write it as ALICE@example.com"),
        "{}",
        stderr(&o)
    );
    let o = run(
        d,
        &[
            "user",
            "create",
            "prod",
            "bob@example.com",
            "--name",
            "Bob\u{202E}nimda",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invisible"), "{}", stderr(&o));

    // The API says the same, with 400 and nothing created.
    let token = {
        let out = stdout(&run(d, &["token", "create", "--operator", "ci"]));
        out.split_whitespace()
            .find(|w| w.len() > 40)
            .unwrap()
            .to_owned()
    };
    let post = |body: &str| {
        common::request(
            server.addr,
            "POST",
            "/api/v1/environments/prod/users",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
    };
    let r = post(&format!(r#"{{"email":"{full_width}","name":"Alice"}}"#));
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_request".into()),
        "{}",
        r.body
    );
    let r = post(r#"{"email":"carol@example.com","name":"Carol\u2028Admin"}"#);
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_request".into()),
        "{}",
        r.body
    );
    let list = stdout(&run(d, &["user", "list", "prod"]));
    assert_eq!(list.lines().count(), 1, "nothing was created: {list}");

    // An account from before the checks: the check reports it until it is fixed.
    assert!(
        run(d, &["user", "create", "prod", "dave@example.com"])
            .status
            .success()
    );
    let o = run(d, &["user", "check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("No user"), "{}", stdout(&o));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", d.join("latchkey.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE users SET email = ?1, email_norm = ?2, name = ?3 \
             WHERE email = 'dave@example.com'",
        )
        .bind("\u{FF24}ave@example.com")
        .bind("\u{FF44}ave@example.com")
        .bind("Dave\u{200F}")
        .execute(&mut c)
        .await
        .unwrap();
    });
    let o = run(d, &["user", "check"]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("prod ") && out.contains("plainer form"),
        "{out}"
    );
    assert!(out.contains("invisible formatting"), "{out}");
    assert!(stderr(&o).contains("2 finding(s)"), "{}", stderr(&o));
    // A stored account still reads everywhere: listed, and found by its address.
    let list = stdout(&run(d, &["user", "list", "prod"]));
    assert!(list.contains("\u{FF24}ave@example.com"), "{list}");
    let o = run(d, &["user", "sign-out", "prod", "\u{FF24}ave@example.com"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
