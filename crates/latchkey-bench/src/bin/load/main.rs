//! `latchkey-load`: whole-server figures on loopback, for `BENCHMARKS.md`.
//!
//! Starts a `latchkey serve` (the binary given) in a scratch directory, creates an environment
//! that requires MFA, invites and enrols users through the real API (computing TOTP codes from
//! the secrets it was given), then measures:
//! - idle memory after start;
//! - password + TOTP logins per second, against the argon2 bound (cores ÷ hash time at the
//!   server's parameters, measured here in-process with the same code), and where each login's
//!   CPU went (`cpu.rs`);
//! - `GET /api/v1/session` and `GET /healthz` requests per second with `wrk`, if installed;
//! - with `--storm N`, a login storm: its answers by status, the peak RSS, and session checks
//!   during it;
//! - OpenID Connect: code exchanges per second against the RS256 bound, and `userinfo`
//!   against `/healthz` (`oidc.rs`);
//! - with `--tls`, the same requests over HTTPS.
//!
//! `--seed N` bulk-inserts users first (SQLite); `--database URL` uses another database;
//! `--hold S` keeps the server up for profiling. Every loop is bounded in count and time, and
//! every request goes to 127.0.0.1.

mod argon;
mod client;
mod cpu;
mod http;
mod measure;
mod oidc;
mod server;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use latchkey_core::password::{Argon2Hasher, HashCost, Password};
use serde_json::{Value, json};

use crate::{
    argon::{parallel_hash, single_hash},
    client::{enrol, login},
    cpu::CpuSample,
    http::Conn,
    measure::{proc_kib, storm, wrk},
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
    let ms_of = |kind: &str| {
        cpu.iter()
            .find(|(k, _)| k == kind)
            .map_or(0.0, |(_, ms)| *ms)
    };
    let hashing = ms_of("server hashing");
    let all: f64 = cpu.iter().map(|(_, ms)| ms).sum();
    let beside = all - hashing - ms_of("idle");
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
    let token = login(&mut conn, &mut user)?;
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
    oidc::figures(&args, &bin, d, (server.addr, pid), &token, &mut results)?;
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
