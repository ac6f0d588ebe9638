//! `latchkey-load`: whole-server figures on loopback, for `BENCHMARKS.md`.
//!
//! Starts a `latchkey serve` (the binary given) in a scratch directory, creates an environment
//! that requires MFA, invites and enrols users through the real API (computing TOTP codes from
//! the secrets it was given), then measures:
//! - password + TOTP logins per second, against the argon2 bound (cores ÷ hash time at the
//!   server's parameters, measured here in-process with the same code);
//! - `GET /api/v1/session` and `GET /healthz` requests per second with `wrk`, if installed.
//!
//! Every loop is bounded in count and time, and every request goes to 127.0.0.1.

mod cpu;
mod http;
mod server;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use latchkey_core::{
    password::{Argon2Hasher, HashCost, Password},
    totp::{TotpParams, TotpSecret, code_at},
};
use serde_json::{Value, json};

use crate::{
    cpu::CpuSample,
    http::Conn,
    server::{cli, start, start_tls},
};

const PASSWORD: &str = "benchmark passphrase for load";

struct Args {
    bin: PathBuf,
    /// `--database` for the server and the CLI (default: SQLite in the scratch directory).
    database: Option<String>,
    users: usize,
    logins: usize,
    threads: usize,
    wrk_seconds: u32,
    wrk_connections: u32,
    /// Users bulk-inserted into the environment before measuring (SQLite only).
    seed: u64,
    /// Concurrent password logins in the storm phase (0: no storm).
    storm: usize,
    storm_seconds: u32,
    /// Also measure over HTTPS: a second server on the same database with a fresh certificate.
    tls: bool,
    /// Keep the server up this many seconds after the logins, with a live session, for
    /// profiling by hand (`perf record -p`, `wrk`); printed as `HOLD <url> <token> <pid>`.
    hold: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        bin: PathBuf::from("target/release/latchkey"),
        database: None,
        users: 600,
        logins: 600,
        threads: 8,
        wrk_seconds: 10,
        wrk_connections: 64,
        seed: 0,
        storm: 0,
        storm_seconds: 10,
        tls: false,
        hold: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("a flag needs a value");
        match flag.as_str() {
            "--bin" => args.bin = PathBuf::from(value()?),
            "--database" => args.database = Some(value()?),
            "--users" => args.users = value()?.parse()?,
            "--logins" => args.logins = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "--wrk-seconds" => args.wrk_seconds = value()?.parse()?,
            "--wrk-connections" => args.wrk_connections = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--storm" => args.storm = value()?.parse()?,
            "--storm-seconds" => args.storm_seconds = value()?.parse()?,
            "--tls" => args.tls = true,
            "--hold" => args.hold = value()?.parse()?,
            "--help" | "-h" => {
                println!(
                    "latchkey-load [--bin PATH] [--database URL] [--users N] [--logins N] [--threads N] [--wrk-seconds S] [--wrk-connections C] [--seed N] [--storm N] [--storm-seconds S] [--tls] [--hold S]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if args.logins > args.users {
        bail!(
            "enrolment burns the current time step, so each user has one fresh code (the next step) per run: use --users ≥ --logins"
        );
    }
    Ok(args)
}

fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(0)
}

struct User {
    email: String,
    secret: TotpSecret,
    /// The last step used, so each login uses a later one.
    last_step: i64,
}

fn enrol(conn: &mut Conn, token: &str, email: &str) -> anyhow::Result<User> {
    let base = "/api/v1/environments/bench";
    let (_, r) = conn.post(&format!("{base}/setup-link"), &json!({"token": token}))?;
    let lt = r["login_token"]
        .as_str()
        .context("no login token")?
        .to_owned();
    conn.post(
        &format!("{base}/login/password"),
        &json!({"login_token": lt, "new_password": PASSWORD}),
    )?;
    let (_, offer) = conn.post(
        &format!("{base}/login/mfa/setup"),
        &json!({"login_token": lt}),
    )?;
    let b32 = offer["secret"].as_str().context("no secret")?;
    let bytes = decode_base32(b32).context("bad base32")?;
    let secret = TotpSecret::from_bytes(bytes);
    let t = now();
    let code = code_at(&secret, &TotpParams::default(), t);
    let (status, _) = conn.post(
        &format!("{base}/login/mfa/setup/confirm"),
        &json!({"login_token": lt, "code": code, "label": "bench"}),
    )?;
    if status != 200 {
        bail!("enrolment failed with {status}");
    }
    Ok(User {
        email: email.to_owned(),
        secret,
        last_step: t / 30,
    })
}

fn decode_base32(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = u32::try_from(ALPHABET.iter().position(|a| *a == c)?).ok()?;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// One password + TOTP login; the code is for the step after the user's last one.
fn login(conn: &mut Conn, user: &mut User) -> anyhow::Result<()> {
    let base = "/api/v1/environments/bench";
    let (status, r) = conn.post(
        &format!("{base}/login"),
        &json!({"email": user.email, "password": PASSWORD}),
    )?;
    if status != 200 {
        bail!("password step: {status} {r}");
    }
    let lt = r["login_token"]
        .as_str()
        .context("no login token")?
        .to_owned();
    let step = (now() / 30).max(user.last_step + 1);
    if step > now() / 30 + 1 {
        bail!("user {} has no fresh step left in the window", user.email);
    }
    user.last_step = step;
    let code = code_at(&user.secret, &TotpParams::default(), step * 30);
    let (status, r) = conn.post(
        &format!("{base}/login/mfa"),
        &json!({"login_token": lt, "code": code}),
    )?;
    if status != 200 {
        bail!("code step: {status} {r}");
    }
    Ok(())
}

/// Seconds per hash, one at a time: the median of fifteen.
fn single_hash(hasher: &Argon2Hasher, pw: &Password) -> f64 {
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            let _ = hasher.hash(pw);
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut times)
}

/// Seconds per hash with `cores` threads hashing at once (eight hashes each, after one to
/// warm each thread's memory).
fn parallel_hash(hasher: &Argon2Hasher, pw: &Password, cores: usize) -> anyhow::Result<f64> {
    let rounds = 8;
    let barrier = Arc::new(std::sync::Barrier::new(cores + 1));
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hasher, pw, barrier) = (hasher.clone(), pw.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let _ = hasher.hash(&pw);
                barrier.wait();
                for _ in 0..rounds {
                    let _ = hasher.hash(&pw);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?;
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(rounds))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// What `wrk` measured.
struct WrkResult {
    rps: f64,
    p99_ms: f64,
    non2xx: Option<String>,
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
fn millis(text: &str) -> Option<f64> {
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

fn wrk(
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
fn proc_kib(pid: u32, key: &str) -> Option<u64> {
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
fn storm(
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

#[allow(clippy::too_many_lines)] // one straight script: set up, storm, measure
fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let bin = std::fs::canonicalize(&args.bin).with_context(|| {
        format!(
            "{} not found: build it with cargo build --release -p latchkey",
            args.bin.display()
        )
    })?;
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let server = start(&bin, d, args.database.as_deref())?;
    cli(
        &bin,
        d,
        args.database.as_deref(),
        &["env", "create", "bench", "--mfa", "required"],
    )?;
    cli(
        &bin,
        d,
        args.database.as_deref(),
        &["env", "set", "bench", "--ip-failures-per-minute", "100000"],
    )?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let pid = server.child.id();
    let mut results = serde_json::Map::new();
    std::thread::sleep(Duration::from_secs(2));
    if let Some(kib) = proc_kib(pid, "VmRSS") {
        #[allow(clippy::cast_precision_loss)]
        let mib = kib as f64 / 1024.0;
        println!("idle RSS after start: {mib:.1} MiB");
        results.insert("idle_rss_mib".into(), json!(mib));
    }
    if args.seed > 0 {
        anyhow::ensure!(
            args.database.is_none(),
            "--seed works on the SQLite default only"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let took = rt.block_on(latchkey_bench::seed::seed_sqlite(
            &d.join("latchkey.db"),
            &latchkey_bench::seed::Seed {
                env: "bench",
                prefix: "seed",
                users: args.seed,
                mfa_every: 3,
                session_every: 2,
            },
        ))?;
        println!(
            "seeded {} users into bench in {:.2} s",
            args.seed,
            took.as_secs_f64()
        );
        results.insert("seed_users".into(), json!(args.seed));
        results.insert("seed_seconds".into(), json!(took.as_secs_f64()));
    }

    // argon2id at the server's default parameters, the same code the server runs.
    let cost = HashCost::default();
    let hasher = Argon2Hasher::new(cost).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pw = Password::parse(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    // One hash alone, and the same hash on every core at once (as the server's hashing pool
    // runs it under load), each measured before and after the logins and averaged: the
    // machine's pace drifts from one minute to the next.
    let single_before = single_hash(&hasher, &pw);
    let parallel_before = parallel_hash(&hasher, &pw, cores)?;

    eprintln!("inviting {} users…", args.users);
    let tokens: Vec<(String, String)> = (0..args.users)
        .map(|i| {
            let email = format!("user{i}@bench.example");
            let out = cli(
                &bin,
                d,
                args.database.as_deref(),
                &["user", "create", "bench", &email],
            )?;
            let token = out
                .lines()
                .find(|l| l.starts_with("Setup link"))
                .and_then(|l| l.rsplit_once("token="))
                .map(|(_, t)| t.to_owned())
                .context("no link")?;
            Ok((email, token))
        })
        .collect::<anyhow::Result<_>>()?;
    eprintln!("enrolling…");
    let queue = Arc::new(Mutex::new(tokens));
    let users = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (queue, users, addr) = (Arc::clone(&queue), Arc::clone(&users), server.addr);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = Conn::new(addr);
                loop {
                    let Some((email, token)) =
                        queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop()
                    else {
                        return Ok(());
                    };
                    let user = enrol(&mut conn, &token, &email)?;
                    users
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push(user);
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }

    eprintln!(
        "logging in {} times on {} threads…",
        args.logins, args.threads
    );
    let users: Vec<_> =
        std::mem::take(&mut *users.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
            .into_iter()
            .map(Mutex::new)
            .collect();
    let users = Arc::new(users);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = CpuSample::take(server.child.id());
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (users, next, addr, total) = (
                Arc::clone(&users),
                Arc::clone(&next),
                server.addr,
                args.logins,
            );
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = Conn::new(addr);
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        return Ok(());
                    }
                    let mut user = users[n % users.len()]
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?;
                    login(&mut conn, &mut user)?;
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before.per_unit(&CpuSample::take(server.child.id()), args.logins);
    let logins_per_sec = f64::from(u32::try_from(args.logins).unwrap_or(u32::MAX)) / elapsed;
    let hash_time = f64::midpoint(single_before, single_hash(&hasher, &pw));
    let core_count = f64::from(u32::try_from(cores).unwrap_or(1));
    let bound = core_count / hash_time;
    let parallel_hash_time = f64::midpoint(parallel_before, parallel_hash(&hasher, &pw, cores)?);

    println!(
        "argon2id m={} KiB, t={}, p={}: median hash {:.1} ms; cores {cores}; bound {bound:.1} logins/s",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        hash_time * 1e3
    );
    println!(
        "password + TOTP logins: {} in {elapsed:.2} s = {logins_per_sec:.1} logins/s ({:.2} × bound), {} client threads",
        args.logins,
        logins_per_sec / bound,
        args.threads
    );
    println!(
        "argon2id on {cores} cores at once: {:.1} ms per hash ({:.2} × one alone)",
        parallel_hash_time * 1e3,
        parallel_hash_time / hash_time
    );
    results.insert("argon2_ms".into(), json!(hash_time * 1e3));
    results.insert("argon2_parallel_ms".into(), json!(parallel_hash_time * 1e3));
    results.insert(
        "argon2_parallel_vs_one".into(),
        json!(parallel_hash_time / hash_time),
    );
    // The rate both cores reach hashing and nothing else: what the server could do at best.
    let parallel_bound = core_count / parallel_hash_time;
    results.insert(
        "logins_vs_parallel_bound".into(),
        json!(logins_per_sec / parallel_bound),
    );
    results.insert("argon2_bound".into(), json!(bound));
    results.insert("logins_per_sec".into(), json!(logins_per_sec));
    results.insert("logins_vs_bound".into(), json!(logins_per_sec / bound));
    println!(
        "CPU per login (ms, all cores): {}",
        cpu.iter()
            .map(|(k, ms)| format!("{k} {ms:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Hashing's share of the machine during the logins: the ratio to the bound without the
    // drift of the hash time between the bound's measurement and the logins.
    let hashing = cpu
        .iter()
        .find(|(k, _)| k == "server hashing")
        .map_or(0.0, |(_, ms)| *ms);
    let all: f64 = cpu.iter().map(|(_, ms)| ms).sum();
    let beside = all
        - hashing
        - cpu
            .iter()
            .find(|(k, _)| k == "idle")
            .map_or(0.0, |(_, ms)| *ms);
    results.insert("login_cpu_beside_hash_ms".into(), json!(beside));
    results.insert(
        "login_hashing_share".into(),
        json!(if all > 0.0 { hashing / all } else { 0.0 }),
    );
    results.insert(
        "login_cpu_ms".into(),
        json!(
            cpu.into_iter()
                .map(|(k, ms)| (k, json!(ms)))
                .collect::<serde_json::Map<String, Value>>()
        ),
    );

    // A session for the session-check figure.
    let mut conn = Conn::new(server.addr);
    // The last user did not take part in the storm: it still has a fresh step.
    let mut user = users[users.len() - 1]
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let (_, r) = conn.post(
        "/api/v1/environments/bench/login",
        &json!({"email": user.email, "password": PASSWORD}),
    )?;
    let lt = r["login_token"]
        .as_str()
        .context("no login token")?
        .to_owned();
    let step = (now() / 30).max(user.last_step + 1);
    user.last_step = step;
    let code = code_at(&user.secret, &TotpParams::default(), step * 30);
    let (_, r) = conn.post(
        "/api/v1/environments/bench/login/mfa",
        &json!({"login_token": lt, "code": code}),
    )?;
    let token = r["session"]["token"]
        .as_str()
        .context("no session")?
        .to_owned();
    drop(user);
    if args.hold > 0 {
        println!("HOLD http://{} {token} {pid}", server.addr);
        std::thread::sleep(Duration::from_secs(args.hold));
        return Ok(());
    }
    let header = format!("Authorization: Bearer {token}");
    let tls_header = header.clone();
    match (
        wrk(
            &format!("http://{}", server.addr),
            "/healthz",
            None,
            args.wrk_seconds,
            args.wrk_connections,
        ),
        wrk(
            &format!("http://{}", server.addr),
            "/api/v1/session",
            Some(&header),
            args.wrk_seconds,
            args.wrk_connections,
        ),
    ) {
        (Some(health), Some(session)) => {
            println!(
                "GET /healthz ({} connections, {} s): {health}",
                args.wrk_connections, args.wrk_seconds
            );
            println!(
                "GET /api/v1/session ({} connections, {} s): {session}",
                args.wrk_connections, args.wrk_seconds
            );
            results.insert("healthz_rps".into(), json!(health.rps));
            results.insert("session_rps".into(), json!(session.rps));
            results.insert("session_p99_ms".into(), json!(session.p99_ms));
            results.insert("session_vs_healthz".into(), json!(session.rps / health.rps));
        }
        _ => println!("wrk is not installed (apt-get install wrk): no request-rate figures"),
    }
    if args.storm > 0 {
        let emails: Vec<String> = users
            .iter()
            .filter_map(|u| u.lock().ok().map(|u| u.email.clone()))
            .collect();
        let (addr, seconds) = (server.addr, args.storm_seconds);
        let checks = std::thread::spawn(move || {
            // Start the checks once the storm has filled the hashing pool.
            std::thread::sleep(Duration::from_secs(1));
            wrk(
                &format!("http://{addr}"),
                "/api/v1/session",
                Some(&header),
                seconds.saturating_sub(2).max(1),
                16,
            )
        });
        let answers = storm(server.addr, args.storm, seconds, &emails);
        let during = checks.join().ok().flatten();
        let peak = proc_kib(pid, "VmHWM").unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let peak_mib = peak as f64 / 1024.0;
        println!(
            "login storm: {} clients for {seconds} s, answers by status {answers:?}; peak RSS (VmHWM) {peak_mib:.1} MiB",
            args.storm
        );
        results.insert("storm_clients".into(), json!(args.storm));
        results.insert("peak_rss_mib".into(), json!(peak_mib));
        results.insert(
            "storm_answers".into(),
            json!(
                answers
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
            ),
        );
        if let Some(w) = during {
            println!("GET /api/v1/session during the storm (16 connections): {w}");
            results.insert("storm_session_rps".into(), json!(w.rps));
            results.insert("storm_session_p99_ms".into(), json!(w.p99_ms));
        }
    }
    if args.tls {
        let tls = start_tls(&bin, d, args.database.as_deref())?;
        let base = format!("https://{}", tls.addr);
        if let (Some(health), Some(session)) = (
            wrk(&base, "/healthz", None, args.wrk_seconds, 32),
            wrk(
                &base,
                "/api/v1/session",
                Some(&tls_header),
                args.wrk_seconds,
                32,
            ),
        ) {
            println!("over HTTPS, GET /healthz (32 connections): {health}");
            println!("over HTTPS, GET /api/v1/session (32 connections): {session}");
            results.insert("tls_healthz_rps".into(), json!(health.rps));
            results.insert("tls_session_rps".into(), json!(session.rps));
            results.insert("tls_session_p99_ms".into(), json!(session.p99_ms));
        }
    }
    println!("RESULT {}", Value::Object(results));
    Ok(())
}
