//! `latchkey-benchmarks`: the one command that measures everything `BENCHMARKS.md` reports and
//! rewrites its generated section (between `<!-- harness:start -->` and `<!-- harness:end -->`)
//! with the machine, the date, the commands, the parameters and each figure as the median and
//! min–max of its runs. The narrative below that section (profiles, causes, before/after) is
//! kept.
//!
//! ```sh
//! cargo run --release -p latchkey-bench --bin latchkey-benchmarks            # 3 runs each
//! cargo run --release -p latchkey-bench --bin latchkey-benchmarks -- --runs 1 --quick
//! ```
//!
//! Needs `wrk` (Debian) for the request rates. Runs on loopback only.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{Context, bail};
use serde_json::Value;

const START: &str = "<!-- harness:start -->";
const END: &str = "<!-- harness:end -->";

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    eprintln!("$ {program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Median and min–max of some runs.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((v[v.len() / 2], v[0], v[v.len() - 1]))
}

/// `median (min–max)` with `digits` decimals, or `—`.
fn cell(values: &[f64], digits: usize) -> String {
    match spread(values) {
        Some((m, lo, hi)) if values.len() > 1 => {
            format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})")
        }
        Some((m, _, _)) => format!("{m:.digits$}"),
        None => "—".into(),
    }
}

fn field(results: &[Value], key: &str) -> Vec<f64> {
    results.iter().filter_map(|r| r[key].as_f64()).collect()
}

fn result_line(out: &str) -> anyhow::Result<Value> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .context("the load driver printed no RESULT line")?;
    Ok(serde_json::from_str(line)?)
}

/// `totp/hmac_sha1  time: [157.9 ns 158.3 ns 158.9 ns]` → (158.3, 157.9, 158.9) in ns.
fn criterion(out: &str, name: &str) -> Option<(f64, f64, f64)> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(name));
    let line = lines.find(|l| l.contains("time:"))?;
    let inside = line.split('[').nth(1)?.split(']').next()?;
    let parts: Vec<&str> = inside.split_whitespace().collect();
    let ns = |value: &str, unit: &str| -> Option<f64> {
        let v: f64 = value.parse().ok()?;
        Some(match unit {
            "ps" => v / 1e3,
            "ns" => v,
            "µs" | "us" => v * 1e3,
            "ms" => v * 1e6,
            _ => return None,
        })
    };
    Some((
        ns(parts.get(2)?, parts.get(3)?)?,
        ns(parts.first()?, parts.get(1)?)?,
        ns(parts.get(4)?, parts.get(5)?)?,
    ))
}

#[allow(clippy::too_many_lines)] // one report, written top to bottom
fn main() -> anyhow::Result<()> {
    let mut runs = 3usize;
    let mut quick = false;
    let mut out_path = String::from("BENCHMARKS.md");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            "--quick" => quick = true,
            "--out" => out_path = it.next().context("--out FILE")?,
            _ => bail!("usage: latchkey-benchmarks [--runs N] [--quick] [--out FILE]"),
        }
    }
    let runs = runs.max(1);
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "latchkey",
            "-p",
            "latchkey-bench",
        ],
    )?;
    let bin = "target/release/latchkey";
    let load = "target/release/latchkey-load";

    // In-process: TOTP against HMAC (criterion).
    let bench = run(
        "cargo",
        &[
            "bench",
            "-p",
            "latchkey-core",
            "--bench",
            "totp",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
        ],
    )?;
    let hmac = criterion(&bench, "totp/hmac_sha1");
    let verify = criterion(&bench, "totp/totp_verify");

    // Whole server at small scale, with the login storm.
    let (users, logins) = if quick {
        ("301", "300")
    } else {
        ("1001", "1000")
    };
    let small_args = [
        "--bin",
        bin,
        "--users",
        users,
        "--logins",
        logins,
        "--threads",
        "8",
        "--wrk-seconds",
        "10",
        "--wrk-connections",
        "64",
        "--storm",
        "500",
        "--storm-seconds",
        "10",
        "--tls",
    ];
    let mut small = Vec::new();
    for _ in 0..runs {
        small.push(result_line(&run(load, &small_args)?)?);
    }
    // At one million users.
    let seed = if quick { "99699" } else { "999699" };
    let big_args = [
        "--bin",
        bin,
        "--users",
        "301",
        "--logins",
        "300",
        "--threads",
        "8",
        "--wrk-seconds",
        "10",
        "--wrk-connections",
        "64",
        "--seed",
        seed,
    ];
    let mut big = Vec::new();
    for _ in 0..runs {
        big.push(result_line(&run(load, &big_args)?)?);
    }
    let million = if quick { "100000" } else { "1000000" };
    let enforce = run("target/release/latchkey-enforce-bench", &[million])?;
    let enforce_line = enforce
        .lines()
        .find(|l| l.starts_with("enforce-mfa over"))
        .unwrap_or("—")
        .to_owned();
    let first_pages: Vec<f64> = enforce
        .lines()
        .filter_map(|l| l.split("median ").nth(1)?.strip_suffix(" ms")?.parse().ok())
        .collect();

    // The report.
    let mut md = String::new();
    let date = shell("date -u '+%Y-%m-%d %H:%M UTC'");
    let _ = writeln!(md, "{START}");
    let _ = writeln!(md, "## Generated figures ({date})\n");
    let _ = writeln!(
        md,
        "Written by `cargo run --release -p latchkey-bench --bin latchkey-benchmarks -- --runs {runs}{}`; each figure is the median (min–max) of {runs} run(s). Do not edit this section by hand.\n",
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(
        md,
        "**Machine.** {} cores ({}), {} memory, Linux {}, {}; the server, the load driver and `wrk` share the cores.\n",
        shell("nproc"),
        shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'"),
        shell("free -h | awk '/Mem:/{print $2}'"),
        shell("uname -r"),
        shell("rustc -V")
    );
    let a = &small.first().cloned().unwrap_or(Value::Null);
    let _ = writeln!(
        md,
        "**Parameters.** Release build, SQLite, argon2id m=19456 KiB, t=2, p=1 (the defaults), hashing workers = cores, `wrk -t2 -c64 -d10s`; logins are password + TOTP (two requests) on 8 client threads.\n"
    );
    let _ = writeln!(md, "| figure | result | goal |\n|---|---|---|");
    if let (Some(h), Some(v)) = (hmac, verify) {
        let _ = writeln!(
            md,
            "| `totp_verify` (±1 step) / 3 × `hmac_sha1` | {:.1} ns / {:.1} ns = **{:.2}** | ≤ 1.2 |",
            v.0,
            3.0 * h.0,
            v.0 / (3.0 * h.0)
        );
    }
    let _ = writeln!(
        md,
        "| argon2id hash (in the driver) | {} ms | |",
        cell(&field(&small, "argon2_ms"), 1)
    );
    let _ = writeln!(
        md,
        "| argon2id per hash, every core hashing at once (in the driver) | {} ms = {} × one alone | |",
        cell(&field(&small, "argon2_parallel_ms"), 1),
        cell(&field(&small, "argon2_parallel_vs_one"), 2)
    );
    let _ = writeln!(
        md,
        "| logins/s, {users} users | {} = **{} × bound**, the bound being cores ÷ the per-hash time with every core hashing, as the pool runs ({} × cores ÷ one hash alone) | ≥ 0.9 × bound |",
        cell(&field(&small, "logins_per_sec"), 1),
        cell(&field(&small, "logins_vs_parallel_bound"), 2),
        cell(&field(&small, "logins_vs_bound"), 2)
    );
    let _ = writeln!(
        md,
        "| during those logins: CPU per login beside argon2 (server runtime and writer, driver, interrupts), and argon2's share of all the machine's time | {} ms; **{}** | |",
        cell(&field(&small, "login_cpu_beside_hash_ms"), 2),
        cell(&field(&small, "login_hashing_share"), 3)
    );
    let _ = writeln!(
        md,
        "| `GET /healthz` req/s | {} | |",
        cell(&field(&small, "healthz_rps"), 0)
    );
    let _ = writeln!(
        md,
        "| `GET /api/v1/session` req/s | {} = **{} × healthz**, p99 {} ms | ≥ 0.6 ×, p99 ≤ 5 ms |",
        cell(&field(&small, "session_rps"), 0),
        cell(&field(&small, "session_vs_healthz"), 2),
        cell(&field(&small, "session_p99_ms"), 2)
    );
    let _ = writeln!(
        md,
        "| session check p99 during 500 concurrent logins | {} ms ({} req/s) | ≤ 20 ms |",
        cell(&field(&small, "storm_session_p99_ms"), 2),
        cell(&field(&small, "storm_session_rps"), 0)
    );
    let _ = writeln!(
        md,
        "| peak RSS, 500 concurrent logins | {} MiB | ≤ workers × 19 MiB + 64 MiB |",
        cell(&field(&small, "peak_rss_mib"), 1)
    );
    let _ = writeln!(
        md,
        "| over HTTPS (`--tls-cert`), `wrk -t2 -c32`: session checks/s | {} (healthz {}), p99 {} ms | ahead of the field (see below) |",
        cell(&field(&small, "tls_session_rps"), 0),
        cell(&field(&small, "tls_healthz_rps"), 0),
        cell(&field(&small, "tls_session_p99_ms"), 2)
    );
    let _ = writeln!(
        md,
        "| idle RSS after start | {} MiB | ≤ 15 MiB |",
        cell(&field(&small, "idle_rss_mib"), 1)
    );
    let _ = writeln!(
        md,
        "| seeding {} users | {} s | < 60 s for 1M |",
        seed,
        cell(&field(&big, "seed_seconds"), 2)
    );
    let _ = writeln!(
        md,
        "| logins/s at {} users | {} | within 10 % of the above |",
        million,
        cell(&field(&big, "logins_per_sec"), 1)
    );
    let _ = writeln!(
        md,
        "| session checks/s at {} users | {} (healthz {}) | within 10 % |",
        million,
        cell(&field(&big, "session_rps"), 0),
        cell(&field(&big, "healthz_rps"), 0)
    );
    let _ = writeln!(
        md,
        "| `users?mfa=not_enrolled` first page at {million} users | {} ms | < 50 ms |",
        cell(&first_pages, 2)
    );
    let _ = writeln!(
        md,
        "| enforce-MFA at {million} users | {enforce_line} | < 10 s |"
    );
    let _ = writeln!(
        md,
        "\nCommands: `{load} {}` ({runs}×), `{load} {}` ({runs}×), `target/release/latchkey-enforce-bench {million}`, `cargo bench -p latchkey-core --bench totp -- --warm-up-time 1 --measurement-time 3`. Storm answers of the first run: {}.",
        small_args.join(" "),
        big_args.join(" "),
        a["storm_answers"]
    );
    let _ = writeln!(md, "{END}");

    let path = Path::new(&out_path);
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(START), old.find(END)) {
        (Some(s), Some(e)) if e > s => format!(
            "{}{}\n{}",
            &old[..s],
            md,
            &old[e + END.len()..].trim_start_matches('\n')
        ),
        _ => {
            // After the title, before the narrative.
            let at = old.find("\n## ").map_or(old.len(), |i| i + 1);
            format!("{}{}\n{}", &old[..at], md, &old[at..])
        }
    };
    std::fs::write(path, new)?;
    println!("{md}");
    eprintln!("wrote {}", path.display());
    Ok(())
}
