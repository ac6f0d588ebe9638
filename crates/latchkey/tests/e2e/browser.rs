//! Issue 5's walk in a real browser: Debian's chromium driven by Playwright (`e2e/walk.py`)
//! against the real binary. The operator's first link → password → MFA setup (the QR code read
//! from a screenshot by `zbarimg`, the code computed by `oathtool`) → a new environment and an
//! invitation → the user's setup in a second browser context at phone width → the admin resets
//! the user's MFA → the user's next page load is the login page → the user sets up again → the
//! operator registers an application on the Applications page and resets the user's MFA once
//! more → the user opens a small application of our own (authlib, `walk.py`), signs in on
//! the environment's login pages, sets TOTP up on the way, and lands back in the application
//! signed in.
//! Screenshots of every page land in `target/e2e/`.
//!
//! Needs python3 with playwright, /usr/bin/chromium, zbarimg and oathtool: `.ci/run` installs
//! them and sets `LATCHKEY_REQUIRE_BROWSER=1`; elsewhere the test skips and says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

#[test]
fn a_person_walks_every_step_in_a_real_browser() {
    if missing_tools(
        "LATCHKEY_REQUIRE_BROWSER",
        &[
            ("python3", &["-c", "import playwright, authlib, requests"]),
            ("/usr/bin/chromium", &["--version"]),
            ("zbarimg", &["--version"]),
            ("oathtool", &["--version"]),
        ],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = start_listening(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &["--public-url", &base],
        &[],
    );
    let link = server
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("Operator setup link (valid 24h): "))
        .expect("the first start prints the operator's link")
        .to_owned();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e");
    let _ = std::fs::remove_dir_all(&out);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/walk.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args([&base, &link])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(4);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser walk did not finish in 4 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        status.success(),
        "the browser walk failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("walk complete"), "{stdout}");
    let shots = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with("qr-"))
        })
        .count();
    assert!(shots >= 20, "a screenshot of every page: {shots}");
    // SECURITY G2: nothing the walk typed or was handed shows in the server's logs.
    let (status, logs) = server.stop();
    assert!(status.success());
    let token = link.rsplit_once("token=").unwrap().1;
    for secret in ["a long walk past the lighthouse at dawn", token] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}
