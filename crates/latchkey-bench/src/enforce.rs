//! `latchkey-enforce-bench`: *enforce MFA* over a large environment on SQLite.
//!
//! Seeds N users in one environment straight into a fresh database (a third with a confirmed
//! authenticator, half with a session), then times the real use case — one transaction of set
//! operations — three times on fresh databases and prints each time and the median; before
//! that, it times the first page of `users?mfa=not_enrolled`.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use latchkey_core::{
    model::{EnvSlug, MfaPolicy},
    password::HashCost,
    sealing::{Keyring, SealingKey},
};
use latchkey_service::{Service, ServiceConfig, SystemClock};
use latchkey_store::SqliteStore;

/// Insert `n` users (ids sortable, emails unique), authenticators for every third, sessions for
/// every second, in one transaction with recursive CTEs.
async fn seed(path: &std::path::Path, n: u64) -> anyhow::Result<()> {
    latchkey_bench::seed::seed_sqlite(
        path,
        &latchkey_bench::seed::Seed {
            env: "bench",
            prefix: "u",
            users: n,
            mfa_every: 3,
            session_every: 2,
        },
    )
    .await
    .map(|_| ())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(100_000), |a| a.parse())
        .context("usage: latchkey-enforce-bench [USERS]")?;
    let mut times = Vec::new();
    for round in 1..=3 {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bench.db");
        let store = SqliteStore::open_path(&path)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut config = ServiceConfig::new("http://127.0.0.1:8080");
        config.hash_cost = HashCost::insecure_for_tests();
        let service = Service::start(
            store,
            Arc::new(SystemClock),
            Keyring::new(SealingKey::generate()?),
            config,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let slug = EnvSlug::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
        service
            .create_environment(
                &latchkey_service::authz::Operator::local_cli(),
                slug.clone(),
                None,
                Some(MfaPolicy::Optional),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        seed(&path, n).await?;
        let seeded = t.elapsed();
        let admin = service
            .cli_admin(&slug)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // The admin's first question at this size: who has no MFA yet? (first page of 50)
        let mut pages = Vec::new();
        for _ in 0..5 {
            let filter = latchkey_service::users::UserFilter {
                mfa: Some(latchkey_service::store::MfaFilter::NotEnrolled),
                ..latchkey_service::users::UserFilter::default()
            };
            let t = Instant::now();
            let page = service
                .list_users(&admin, filter, None, Some(50))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            pages.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(page.users.len() == 50, "expected a full page");
        }
        pages.sort_by(f64::total_cmp);
        println!(
            "round {round}: users?mfa=not_enrolled first page (50): median {:.2} ms",
            pages[2] * 1e3
        );
        let t = Instant::now();
        let counts = service
            .enforce_mfa(&admin, false)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let took = t.elapsed();
        println!(
            "round {round}: seeded {n} users in {:.2} s; enforce-mfa {:.3} s: {} marked, {} signed out, {} sessions ended",
            seeded.as_secs_f64(),
            took.as_secs_f64(),
            counts.users_marked,
            counts.users_signed_out,
            counts.sessions_ended
        );
        times.push(took.as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "enforce-mfa over {n} users: median {:.3} s (min {:.3}, max {:.3})",
        times[1], times[0], times[2]
    );
    Ok(())
}
