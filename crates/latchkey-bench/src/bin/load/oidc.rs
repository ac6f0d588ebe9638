//! OpenID Connect figures (SPEC §9): code exchanges per second — each one's ID token signed
//! RS256 — against the bound of the cores ÷ one RS256 signature (measured here, in-process,
//! with the server's code: `latchkey_core::jose`), and `userinfo` requests per second against
//! `/healthz`. Codes are minted first (each an authorization by a signed-in browser), then
//! exchanged by the driver's threads, timed; `userinfo` is measured with `wrk`.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, bail};
use latchkey_core::jose::SigningKey;
use serde_json::{Value, json};

use crate::{cpu::CpuSample, http::Conn, measure::wrk, server::cli};

const REDIRECT: &str = "https://app.bench.example/cb";
/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An ID token's worth of claims.
fn sample_claims() -> Value {
    json!({
        "iss": "http://127.0.0.1:8080/e/bench", "sub": "0190a0a0-0000-7000-8000-000000000000",
        "aud": "bench-app", "exp": 1_800_000_300, "iat": 1_800_000_000,
        "auth_time": 1_800_000_000, "sid": "0190a0a0-0000-7000-8000-000000000001",
        "amr": ["pwd", "otp"], "acr": "urn:latchkey:acr:mfa", "nonce": "n-0S6_WzA2Mj",
        "email": "user0@bench.example", "email_verified": true,
    })
}

/// One RS256 signature of an ID token's worth of claims, alone, in seconds (the median of
/// five runs of 200).
fn one_signature() -> anyhow::Result<f64> {
    let (key, _) = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let claims = sample_claims();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..200 {
            key.sign("JWT", &claims)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        runs.push(started.elapsed().as_secs_f64() / 200.0);
    }
    Ok(crate::argon::median(&mut runs))
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Seconds per signature with every core signing at once (as the server's runtime workers do
/// under load): `cores` threads, 400 signatures each, after one to warm up.
fn signatures_at_once(cores: usize) -> anyhow::Result<f64> {
    let rounds = 400;
    let barrier = Arc::new(std::sync::Barrier::new(cores + 1));
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let (key, _) = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
                let claims = sample_claims();
                key.sign("JWT", &claims)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                barrier.wait();
                for _ in 0..rounds {
                    key.sign("JWT", &claims)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(rounds))
}

/// A code for the browser with `session`.
fn mint(conn: &mut Conn, session: &str) -> anyhow::Result<String> {
    let path = format!(
        "/e/bench/oidc/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", "bench-app"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile email"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
    );
    let cookie = format!("latchkey_session={session}");
    let a = conn.send("GET", &path, &[("cookie", &cookie)], b"")?;
    let location = a.location.context("no redirect from authorize")?;
    location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .map(str::to_owned)
        .with_context(|| format!("no code in {location}"))
}

/// Exchange `code` at the token endpoint, as the client `basic` authenticates.
fn exchange(conn: &mut Conn, basic: &str, code: &str) -> anyhow::Result<crate::http::Answer> {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]);
    let a = conn.send(
        "POST",
        "/e/bench/oidc/token",
        &[
            ("authorization", basic),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )?;
    if a.status != 200 {
        bail!(
            "token endpoint: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    Ok(a)
}

/// Measure on the server at `addr` (its scratch directory `dir`), as the browser with
/// `session`, and add the figures to `results`.
pub fn figures(
    args: &crate::Args,
    bin: &Path,
    dir: &Path,
    (addr, pid): (std::net::SocketAddr, u32),
    session: &str,
    results: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let out = cli(
        bin,
        dir,
        args.database.as_deref(),
        &[
            "client",
            "create",
            "bench",
            "--id",
            "bench-app",
            "--redirect-uri",
            REDIRECT,
        ],
    )?;
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret (shown once): "))
        .context("no client secret")?;
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("bench-app:{secret}").as_bytes())
    );
    exchanges(args.threads, (addr, pid), session, &basic, results)?;
    userinfo(args, addr, session, &basic, results)
}

/// Code exchanges per second against the bound of the cores ÷ one RS256 signature.
fn exchanges(
    threads: usize,
    (addr, pid): (std::net::SocketAddr, u32),
    session: &str,
    basic: &str,
    results: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let signature = one_signature()?;
    let at_once = signatures_at_once(cores)?;
    #[allow(clippy::cast_precision_loss)]
    let (bound, parallel_bound) = (cores as f64 / signature, cores as f64 / at_once);
    // Codes live 60 s: mint what the threads can exchange well within that (more, to profile).
    let total: u32 = std::env::var("LATCHKEY_BENCH_CODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let mut conn = Conn::new(addr);
    let minted = Instant::now();
    let minted_codes: Vec<String> = (0..total)
        .map(|_| mint(&mut conn, session))
        .collect::<anyhow::Result<_>>()?;
    let mint_rate = f64::from(total) / minted.elapsed().as_secs_f64();
    let queue = Arc::new(Mutex::new(minted_codes));
    let cpu_before = CpuSample::take(pid);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, basic) = (Arc::clone(&queue), basic.to_owned());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = Conn::new(addr);
                loop {
                    let Some(code) = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop()
                    else {
                        return Ok(());
                    };
                    exchange(&mut conn, &basic, &code)?;
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    let per_sec = f64::from(total) / started.elapsed().as_secs_f64();
    let cpu = cpu_before.per_unit(&CpuSample::take(pid), total as usize);
    println!(
        "CPU per code exchange (ms, all cores): {}",
        cpu.iter()
            .map(|(k, ms)| format!("{k} {ms:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "code exchanges/s: {per_sec:.0} = {:.2} × the bound ({cores} cores ÷ {:.3} ms per RS256 \
         signature = {bound:.0}/s) = {:.2} × the bound with every core signing ({:.3} ms per \
         signature = {parallel_bound:.0}/s); authorizations/s while minting: {mint_rate:.0}",
        per_sec / bound,
        signature * 1e3,
        per_sec / parallel_bound,
        at_once * 1e3
    );
    results.insert("rs256_sign_ms".into(), json!(signature * 1e3));
    results.insert("code_exchanges_per_sec".into(), json!(per_sec));
    results.insert("code_exchange_bound".into(), json!(bound));
    results.insert("code_exchanges_vs_bound".into(), json!(per_sec / bound));
    results.insert("rs256_sign_parallel_ms".into(), json!(at_once * 1e3));
    results.insert(
        "code_exchanges_vs_parallel_bound".into(),
        json!(per_sec / parallel_bound),
    );
    results.insert("authorizations_per_sec".into(), json!(mint_rate));
    Ok(())
}

/// `userinfo` requests per second with one access token, against `/healthz`.
fn userinfo(
    args: &crate::Args,
    addr: std::net::SocketAddr,
    session: &str,
    basic: &str,
    results: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let mut conn = Conn::new(addr);
    let code = mint(&mut conn, session)?;
    let tokens: Value = serde_json::from_slice(&exchange(&mut conn, basic, &code)?.body)?;
    let access = tokens["access_token"].as_str().context("no access token")?;
    let base = format!("http://{addr}");
    let header = format!("Authorization: Bearer {access}");
    let (seconds, connections) = (args.wrk_seconds, args.wrk_connections);
    if let (Some(health), Some(info)) = (
        wrk(&base, "/healthz", None, seconds, connections),
        wrk(
            &base,
            "/e/bench/oidc/userinfo",
            Some(&header),
            seconds,
            connections,
        ),
    ) {
        if let Some(n) = &info.non2xx {
            bail!("userinfo answered errors: {n}");
        }
        println!(
            "GET userinfo: {info} = {:.2} × healthz ({:.0}/s)",
            info.rps / health.rps,
            health.rps
        );
        results.insert("userinfo_rps".into(), json!(info.rps));
        results.insert("userinfo_p99_ms".into(), json!(info.p99_ms));
        results.insert("userinfo_healthz_rps".into(), json!(health.rps));
        results.insert("userinfo_vs_healthz".into(), json!(info.rps / health.rps));
    }
    Ok(())
}
