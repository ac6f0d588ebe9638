//! SECURITY P7 measured: unknown email and wrong password answer with the same status and
//! body in about the same time. In a test binary of its own, so that no other test of the
//! same binary loads the CPU while the medians are taken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const PASSWORD: &str = "quilt anchor mango river";

#[test]
#[allow(clippy::many_single_char_names)]
fn unknown_email_and_wrong_password_are_indistinguishable() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    ok(dir.path(), &["env", "create", "prod", "--mfa", "optional"]);
    let d = dir.path();
    ok(
        d,
        &[
            "env",
            "set",
            "prod",
            "--lockout-threshold",
            "100",
            "--ip-failures-per-minute",
            "1000",
        ],
    );
    let token = common::link_token(&ok(d, &["user", "create", "prod", "alice@example.com"]));
    let r = server.post(
        "/api/v1/environments/prod/setup-link",
        &json!({"token": token}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let lt = r.json()["login_token"].as_str().unwrap().to_owned();
    let r = server.post(
        "/api/v1/environments/prod/login/password",
        &json!({"login_token": lt, "new_password": PASSWORD}),
    );
    assert_eq!(r.json()["status"], "authenticated", "{}", r.body);

    // Warm up, then interleave so drift affects both alike. A round whose medians differ by
    // more than 10 % is measured again (a fsync or a neighbour can stall one side for a
    // while); a real difference — skipping the hash for unknown emails costs ×20 — fails
    // every round.
    password_login(
        &server,
        "prod",
        "nobody@example.com",
        "not the password at all",
    );
    let mut bodies = std::collections::HashSet::new();
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        // Known, unknown, unknown, known, …: the hashing threads take sequential jobs in turn,
        // so a plain alternation would put every known email on one thread and every unknown
        // one on the other, and compare two cores (a VM's cores can differ by 30 % for minutes)
        // instead of two kinds of email.
        for i in 0..22 {
            for email in if i % 2 == 0 {
                ["alice@example.com", "nobody@example.com"]
            } else {
                ["nobody@example.com", "alice@example.com"]
            } {
                let t = std::time::Instant::now();
                let r = password_login(&server, "prod", email, "not the password at all");
                let took = t.elapsed();
                assert_eq!(r.status, 401, "{}", r.body);
                bodies.insert(r.body);
                if email.starts_with("alice") {
                    known.push(took);
                } else {
                    unknown.push(took);
                }
            }
        }
        known.sort();
        unknown.sort();
        let median = |v: &[std::time::Duration]| (v[10] + v[11]).as_secs_f64() / 2.0;
        let (k, u) = (median(&known), median(&unknown));
        let ratio = k.max(u) / k.min(u);
        eprintln!(
            "median wrong password {:.1} ms, unknown email {:.1} ms, ratio {ratio:.3}",
            k * 1e3,
            u * 1e3
        );
        rounds.push(ratio);
        if ratio <= 1.10 {
            break;
        }
    }
    assert_eq!(bodies.len(), 1, "the same body for both: {bodies:?}");
    assert!(
        rounds.iter().any(|r| *r <= 1.10),
        "medians differ by more than 10 % in every round: {rounds:?}"
    );
}
