//! The JSON API under a fuzzer we did not write: schemathesis (from the Python Package Index)
//! reads the server's
//! OpenAPI document, generates requests from it — valid ones, invalid ones, and sequences
//! that follow the document's links (its stateful phase) — and runs every check it has
//! (`--checks all`: no 5xx, only documented statuses, answers that match their schemas, valid
//! data accepted and invalid data refused, authentication enforced, deleted things gone).
//!
//! Two runs against one server: one with an operator's API token over the administration
//! operations, one with user sessions over the login steps, the account and API tokens.
//! `tests/fuzz/hooks.py` gives the fuzzer what a real client has (credentials, ids, setup and
//! login tokens, TOTP codes); `tests/fuzz/schemathesis.toml` names the few refusals a schema
//! cannot foresee. The test requires no failure and no error in either run, at least 5,000
//! generated cases in all, and a 2xx answer from every operation of the document at least once
//! (read from the runs' HAR records, which hold only what schemathesis itself sent).
//!
//! Needs `schemathesis` on the PATH; skips with a reason without it, unless
//! `LATCHKEY_REQUIRE_SCHEMATHESIS=1` (as `.ci/run` sets). `LATCHKEY_FUZZ_SEED` picks another
//! seed, `LATCHKEY_FUZZ_EXAMPLES` more or fewer examples per operation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use common::{missing_tools, ok, say, start_with};
use serde_json::Value;

/// The fuzz run's hooks and configuration.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// One schemathesis run.
struct Run {
    mode: &'static str,
    env: &'static str,
    /// Which operations: schemathesis's `--include-path-regex` or `--exclude-path-regex`.
    select: [&'static str; 2],
}

const RUNS: [Run; 2] = [
    Run {
        mode: "operator",
        env: "lab",
        select: [
            "--exclude-path-regex",
            "/(login|setup-link|me/|session$|logout$)",
        ],
    },
    Run {
        mode: "session",
        env: "dev",
        select: [
            "--include-path-regex",
            "(/login|/setup-link|/me/|/session$|/logout$|/api-tokens)",
        ],
    },
];

/// The single file of `kind` (`json` or `har`) schemathesis wrote into `dir`.
fn report(dir: &Path, kind: &str) -> Value {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{kind}-")))
        })
        .unwrap_or_else(|| panic!("no {kind} report in {}", dir.display()));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The document's operation whose path template matches `path` (the most literal segments
/// win), as `(METHOD, template)`.
fn operation_of(
    operations: &BTreeSet<(String, String)>,
    method: &str,
    path: &str,
) -> Option<(String, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    operations
        .iter()
        .filter(|(m, _)| m == method)
        .filter_map(|(m, template)| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (t, s) in parts.iter().zip(&segments) {
                if t.starts_with('{') {
                    if s.is_empty() {
                        return None;
                    }
                } else if t == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, (m.clone(), template.clone())))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, op)| op)
}

/// One schemathesis run against the server at `base`; reports go to `reports`. Every request
/// it sent is told to `sent` as `(method, path, status)`. Returns the cases generated.
fn fuzz(
    run: &Run,
    base: &str,
    token: &str,
    reports: &Path,
    sent: &mut dyn FnMut(&str, &str, u64),
) -> u64 {
    let seed = std::env::var("LATCHKEY_FUZZ_SEED").unwrap_or_else(|_| "20261204".into());
    let examples = std::env::var("LATCHKEY_FUZZ_EXAMPLES").unwrap_or_else(|_| "120".into());
    // Run in the reports' folder: whatever schemathesis or Hypothesis keeps goes there, not
    // into the source tree.
    std::fs::create_dir_all(reports).unwrap();
    let output = Command::new("schemathesis")
        .current_dir(reports)
        .arg("--config-file")
        .arg(fuzz_dir().join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            &examples,
            "--seed",
            &seed,
        ])
        .args(run.select)
        .args(["--report", "json,har", "--report-dir"])
        .arg(reports)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", fuzz_dir())
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("HYPOTHESIS_STORAGE_DIRECTORY", reports.join("hypothesis"))
        .env("LATCHKEY_FUZZ_URL", base)
        .env("LATCHKEY_FUZZ_MODE", run.mode)
        .env("LATCHKEY_FUZZ_ENV", run.env)
        .env("LATCHKEY_FUZZ_OPERATOR_TOKEN", token)
        .env("LATCHKEY_FUZZ_SEED", &seed)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis ({} run, seed {seed}) failed:\n{log}\n{}",
        run.mode,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = report(reports, "json");
    let cases = summary["test_cases"]["generated"].as_u64().unwrap();
    assert_eq!(summary["failures"], serde_json::json!([]), "{log}");
    assert_eq!(summary["errors"], serde_json::json!([]), "{log}");
    say(&format!(
        "schemathesis {} run: {cases} cases, {} operations, no failure",
        run.mode, summary["operations"]["tested"]
    ));
    for entry in report(reports, "har")["log"]["entries"].as_array().unwrap() {
        let method = entry["request"]["method"].as_str().unwrap();
        let url = entry["request"]["url"].as_str().unwrap();
        let path = url
            .strip_prefix(base)
            .unwrap_or(url)
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        sent(
            method,
            path,
            entry["response"]["status"].as_u64().unwrap_or(0),
        );
    }
    cases
}

#[test]
fn schemathesis_finds_nothing_and_reaches_every_operation() {
    if missing_tools(
        "LATCHKEY_REQUIRE_SCHEMATHESIS",
        &[("schemathesis", &["--version"])],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &[], &[]);
    let d = dir.path();
    ok(d, &["env", "create", "lab", "--mfa", "optional"]);
    ok(d, &["env", "create", "dev", "--mfa", "optional"]);
    // The fuzzer fails logins by the thousand from one address; its own steps must not be
    // throttled for it, nor its users locked by the wrong codes it sends.
    for env in ["lab", "dev"] {
        ok(
            d,
            &[
                "env",
                "set",
                env,
                "--ip-failures-per-minute",
                "100000",
                "--lockout-threshold",
                "100",
            ],
        );
    }
    let out = ok(d, &["token", "create", "--operator", "fuzz"]);
    let token = out.lines().last().unwrap().trim().to_owned();
    let base = format!("http://{}", server.addr);
    let fetched = server.get("/api/v1/openapi.json", &[]);
    assert_eq!(fetched.status, 200);
    let document: Value = serde_json::from_str(&fetched.body).unwrap();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }

    let mut generated = 0;
    let mut statuses: BTreeMap<(String, String), BTreeSet<u64>> = BTreeMap::new();
    // schemathesis reads the document from its own operation and does not test it; the
    // fetch above did.
    statuses
        .entry(("GET".into(), "/api/v1/openapi.json".into()))
        .or_default()
        .insert(u64::from(fetched.status));
    for run in &RUNS {
        generated += fuzz(
            run,
            &base,
            &token,
            &d.join(format!("reports-{}", run.mode)),
            &mut |method, path, status| {
                if let Some(op) = operation_of(&operations, method, path) {
                    statuses.entry(op).or_default().insert(status);
                }
            },
        );
    }
    assert!(
        generated >= 5000,
        "{generated} cases generated in all; at least 5,000 wanted"
    );
    let unreached: Vec<String> = operations
        .iter()
        .filter(|op| {
            !statuses
                .get(*op)
                .is_some_and(|s| s.iter().any(|c| (200..300).contains(c)))
        })
        .map(|(m, p)| format!("{m} {p}: {:?}", statuses.get(&(m.clone(), p.clone()))))
        .collect();
    assert!(
        unreached.is_empty(),
        "operations never answered 2xx (statuses seen): {unreached:#?}"
    );
    say(&format!(
        "schemathesis: {generated} cases; all {} operations answered 2xx at least once",
        operations.len()
    ));
    drop(server);
}
