//! `serve --tls-cert FILE --tls-key FILE` (SPEC §7): the server speaks HTTPS itself, with
//! `Secure`, `__Host-` cookies; a bad certificate or key stops the start with a reason.
//! The certificate is made with Debian's `openssl` and the client is `curl`; without them the
//! test skips and says why (`.ci/run` makes it mandatory with `LATCHKEY_REQUIRE_OPENSSL=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{path::Path, process::Command};

use common::{free_port, latchkey, missing_tools, start_listening, stderr};

fn make_certificate(dir: &Path) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
}

fn curl(dir: &Path, url: &str) -> (bool, String) {
    let out = Command::new("curl")
        .current_dir(dir)
        .args([
            "-s",
            "-D",
            "-",
            "--max-time",
            "10",
            "--cacert",
            "cert.pem",
            url,
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_server_speaks_https_with_its_own_certificate() {
    if missing_tools(
        "LATCHKEY_REQUIRE_OPENSSL",
        &[("openssl", &["version"]), ("curl", &["--version"])],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certificate(d);
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let server = start_listening(
        d,
        &format!("127.0.0.1:{port}"),
        &[
            "--public-url",
            &base,
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
        &[],
    );
    assert!(
        server
            .lines
            .iter()
            .any(|l| l.starts_with("Listening on https://"))
    );
    let (ok, out) = curl(d, &format!("{base}/healthz"));
    assert!(ok, "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // An https public URL: browsers are told to use nothing else for a year.
    assert!(
        out.lines()
            .any(|l| l.eq_ignore_ascii_case("strict-transport-security: max-age=31536000")),
        "{out}"
    );
    // The pages' cookies are the secure kind.
    let (ok, out) = curl(d, &format!("{base}/e/system/login"));
    assert!(ok && out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("set-cookie: __Host-latchkey_csrf=") && l.contains("; Secure")),
        "{out}"
    );
    // Plain HTTP to the TLS port gets nothing served.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"ok\""));
    let (status, _) = server.stop();
    assert!(status.success(), "SIGTERM stops an HTTPS server cleanly");
}

#[test]
fn bad_tls_settings_stop_the_start_with_a_reason() {
    if missing_tools("LATCHKEY_REQUIRE_OPENSSL", &[("openssl", &["version"])]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certificate(d);
    std::fs::write(d.join("junk.pem"), "not a key\n").unwrap();
    let url = "https://127.0.0.1:18443";
    for (args, says) in [
        (
            vec!["--tls-cert", "cert.pem"],
            "give both tls_cert and tls_key",
        ),
        (
            vec!["--tls-cert", "cert.pem", "--tls-key", "missing.pem"],
            "TLS key missing.pem",
        ),
        (
            vec!["--tls-cert", "cert.pem", "--tls-key", "junk.pem"],
            "TLS key junk.pem",
        ),
        (
            vec!["--tls-cert", "junk.pem", "--tls-key", "key.pem"],
            "TLS certificate junk.pem",
        ),
        (
            vec!["--tls-cert", "key.pem", "--tls-key", "key.pem"],
            "TLS certificate key.pem",
        ),
    ] {
        let out = latchkey(d)
            .args(["serve", "--listen", "127.0.0.1:0", "--public-url", url])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // HTTPS needs an https:// public URL.
    let out = latchkey(d)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
}
