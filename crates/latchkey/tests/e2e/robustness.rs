//! Slow, stalled and greedy clients (SECURITY R6) against the real binary: one address holds
//! 2,000 connections that send nothing, half a request head, or half a body; from another
//! loopback address the server still answers `/healthz`, a login and `/auth/verify` within a
//! second, and the stalled connections are closed by the timeouts. A declared body over the
//! limit is refused at once; a body that stops arriving is answered 408.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use crate::common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::{ok, request_from, set_password_with_link, start_with};
use serde_json::json;

const PASSWORD: &str = "quilt anchor mango river";

/// Whether the server has closed `s` (end of stream or a reset), waiting up to `within`.
fn closed(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (408, 413) before the close: read on.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn stalled_connections_from_one_address_do_not_starve_another() {
    // The test itself holds 2,000 sockets: make sure it may.
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let now = getrlimit(Resource::Nofile);
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_with(
        d,
        &[],
        &[
            ("LATCHKEY_HEADER_TIMEOUT", "2s"),
            ("LATCHKEY_BODY_TIMEOUT", "2s"),
            ("LATCHKEY_IDLE_TIMEOUT", "2s"),
        ],
    );
    ok(d, &["env", "create", "prod", "--mfa", "off"]);
    let token = common::link_token(&ok(d, &["user", "create", "prod", "ada@example.com"]));
    let r = set_password_with_link(&server, "prod", &token, PASSWORD);
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);

    // 2,000 connections from 127.0.0.1: silent, half a head, or a head and half a body.
    let mut held = Vec::new();
    for i in 0..2000 {
        let Ok(mut s) = TcpStream::connect(server.addr) else {
            continue;
        };
        let _ = match i % 3 {
            0 => Ok(()),
            1 => s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            _ => s.write_all(
                b"POST /api/v1/environments/prod/login HTTP/1.1\r\nHost: x\r\n\
                  content-type: application/json\r\ncontent-length: 60\r\n\r\n{\"email\":",
            ),
        };
        held.push(s);
    }
    assert!(held.len() >= 1900, "only {} connections opened", held.len());

    // Another address is served, and promptly.
    let other = "127.0.0.2";
    let (status, raw, took) = request_from(other, server.addr, "GET", "/healthz", &[], None);
    assert_eq!(status, 200, "{raw}");
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    let body = json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
    let (status, raw, took) = request_from(
        other,
        server.addr,
        "POST",
        "/api/v1/environments/prod/login",
        &[],
        Some(&body),
    );
    assert_eq!(status, 200, "{raw}");
    assert!(took < Duration::from_secs(1), "the login took {took:?}");
    let session = raw
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_owned();
    let cookie = format!("latchkey_session={session}");
    let (status, raw, took) = request_from(
        other,
        server.addr,
        "GET",
        "/auth/verify?env=prod",
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(status, 200, "{raw}");
    assert!(took < Duration::from_secs(1), "/auth/verify took {took:?}");

    // A declared body over the limit is refused before it is sent (from the other address:
    // 127.0.0.1 still holds all the connections it may).
    let (status, raw, took) = request_from(
        other,
        server.addr,
        "POST",
        "/api/v1/environments/prod/login",
        &[
            ("content-type", "application/json"),
            ("content-length", "100000000"),
        ],
        None,
    );
    assert_eq!(status, 413, "{raw}");
    assert!(took < Duration::from_secs(1), "the 413 took {took:?}");

    // Every stalled connection is closed by the timeouts (2 s here), those over the
    // per-address bound at once; a half-sent body is answered 408 first.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut open = 0;
    for s in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        if !closed(s, left.max(Duration::from_millis(10))) {
            open += 1;
        }
    }
    assert_eq!(open, 0, "connections still open 8 s after the flood");
    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
}

/// A body that stops arriving is answered 408 after the body timeout, and changes nothing.
#[test]
fn a_stalled_body_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &[], &[("LATCHKEY_BODY_TIMEOUT", "1s")]);
    let started = Instant::now();
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(
        b"POST /api/v1/environments/system/login HTTP/1.1\r\nHost: x\r\n\
          content-type: application/json\r\ncontent-length: 60\r\n\r\n{\"email\":",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains("\"code\":\"request_timeout\""), "{raw}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
