//! The server under test: `latchkey serve` in a scratch directory, plain or over TLS, and
//! the CLI on the same database.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::{Context, bail};

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub fn start(bin: &Path, dir: &Path, db: Option<&str>) -> anyhow::Result<Server> {
    serve(bin, dir, db, &["--listen", "127.0.0.1:0"], "http")
}

/// `latchkey serve` with `args`, in `dir`; returns once it says where it listens.
pub fn serve(
    bin: &Path,
    dir: &Path,
    db: Option<&str>,
    args: &[&str],
    scheme: &str,
) -> anyhow::Result<Server> {
    let mut command = Command::new(bin);
    if let Some(url) = db {
        command.env("LATCHKEY_DATABASE", url);
    }
    let mut child = command
        .current_dir(dir)
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        // The driver is hundreds of clients on one address (the storm holds 500 connections):
        // the per-address bound, which stops one real client from holding them all, is lifted.
        .env("LATCHKEY_MAX_CONNECTIONS_PER_CLIENT", "100000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let out = child.stdout.take().context("no stdout")?;
    let prefix = format!("Listening on {scheme}://");
    for line in BufReader::new(out).lines() {
        let line = line?;
        if let Some(addr) = line.strip_prefix(prefix.as_str()) {
            return Ok(Server {
                child,
                addr: addr.parse()?,
            });
        }
    }
    bail!("the server exited before listening")
}

/// A second server on the same database, speaking HTTPS with a fresh self-signed certificate
/// (made with `openssl`).
pub fn start_tls(bin: &Path, dir: &Path, db: Option<&str>) -> anyhow::Result<Server> {
    let made = Command::new("openssl")
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
            "tls-key.pem",
            "-out",
            "tls-cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .context("openssl is needed for --tls")?;
    if !made.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&made.stderr));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (listen, url) = (
        format!("127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}"),
    );
    serve(
        bin,
        dir,
        db,
        &[
            "--listen",
            &listen,
            "--public-url",
            &url,
            "--tls-cert",
            "tls-cert.pem",
            "--tls-key",
            "tls-key.pem",
        ],
        "https",
    )
}

pub fn cli(bin: &Path, dir: &Path, db: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(bin);
    if let Some(url) = db {
        command.env("LATCHKEY_DATABASE", url);
    }
    let out = command.current_dir(dir).args(args).output()?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
