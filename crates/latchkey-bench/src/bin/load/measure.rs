//! Whole-server figures: request rates and latency with `wrk`, memory from `/proc`, and the
//! login storm.

use std::{
    net::SocketAddr,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{PASSWORD, http::Conn};

/// What `wrk` measured.
pub struct WrkResult {
    pub rps: f64,
    pub p99_ms: f64,
    pub non2xx: Option<String>,
}

impl std::fmt::Display for WrkResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} req/s, p99 {:.2}ms", self.rps, self.p99_ms)?;
        if let Some(n) = &self.non2xx {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// `12.3us`, `4.5ms`, `1.2s` → milliseconds.
pub fn millis(text: &str) -> Option<f64> {
    let (n, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1e3)
    } else {
        return None;
    };
    n.parse::<f64>().ok().map(|v| v * scale)
}

pub fn wrk(
    base: &str,
    path: &str,
    header: Option<&str>,
    seconds: u32,
    connections: u32,
) -> Option<WrkResult> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("{base}{path}")).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))?
        .split_whitespace()
        .nth(1)?;
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(|l| l.trim().to_owned());
    Some(WrkResult {
        rps,
        p99_ms: millis(p99)?,
        non2xx,
    })
}

/// A line of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The storm: `n` clients, each on its own connection, send password logins for `seconds`;
/// returns the answers by status.
pub fn storm(
    addr: SocketAddr,
    n: usize,
    seconds: u32,
    emails: &[String],
) -> std::collections::BTreeMap<u16, usize> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    let emails = Arc::new(emails.to_vec());
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let emails = Arc::clone(&emails);
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeMap::new();
                let mut conn = Conn::new(addr);
                let email = &emails[i % emails.len()];
                while Instant::now() < deadline {
                    let status = conn
                        .post(
                            "/api/v1/environments/bench/login",
                            &json!({"email": email, "password": PASSWORD}),
                        )
                        .map_or(0, |(s, _)| s);
                    *seen.entry(status).or_insert(0usize) += 1;
                }
                seen
            })
        })
        .collect();
    let mut all = std::collections::BTreeMap::new();
    for w in workers {
        if let Ok(seen) = w.join() {
            for (k, v) in seen {
                *all.entry(k).or_insert(0) += v;
            }
        }
    }
    all
}
