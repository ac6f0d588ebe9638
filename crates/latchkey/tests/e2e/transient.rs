//! Transient PostgreSQL failures (SECURITY R2, `docs/OPERATIONS.md`): a deadlock aborts a unit
//! of work, which the store runs again and the request succeeds; connections the server ends
//! are replaced without a client noticing.
//!
//! Runs against the test PostgreSQL (`LATCHKEY_TEST_POSTGRES_URL`); skips with a printed
//! reason without it unless `LATCHKEY_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{ok, pg_database, request, start};
use sqlx::Connection as _;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An invited user of `dev` and an operator token, on a server over `url`: `(user id, token)`.
fn invited_user(dir: &std::path::Path, url: &str, server: &common::Server) -> (String, String) {
    ok(dir, &["--database", url, "env", "create", "dev"]);
    ok(
        dir,
        &[
            "--database",
            url,
            "user",
            "create",
            "dev",
            "alice@example.com",
        ],
    );
    let out = ok(
        dir,
        &["--database", url, "token", "create", "--operator", "ops"],
    );
    let token = out.lines().last().unwrap().trim().to_owned();
    let listed = server.get(
        "/api/v1/environments/dev/users?q=alice",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    let id = listed.json()["users"][0]["id"].as_str().unwrap().to_owned();
    (id, token)
}

#[test]
fn a_deadlock_is_run_again_and_the_request_succeeds() {
    let Some(db) = pg_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--database", &db.url]);
    let (user, token) = invited_user(dir.path(), &db.url, &server);
    let rt = runtime();
    let mut other = rt.block_on(sqlx::PgConnection::connect(&db.url)).unwrap();

    // Another client holds the user's setup link row, which a password reset replaces after
    // locking the user's row; it waits long before looking for deadlocks itself, so the
    // server's transaction is the one PostgreSQL aborts (after its default 1 s).
    rt.block_on(async {
        sqlx::raw_sql("BEGIN; SET LOCAL deadlock_timeout = '60s'")
            .execute(&mut other)
            .await?;
        sqlx::query("SELECT 1::bigint FROM setup_tokens WHERE user_id = $1 FOR UPDATE")
            .bind(&user)
            .fetch_all(&mut other)
            .await?;
        Ok::<_, sqlx::Error>(())
    })
    .unwrap();
    let addr = server.addr;
    let path = format!("/api/v1/environments/dev/users/{user}/reset-password");
    let bearer = format!("Bearer {token}");
    let reset = std::thread::spawn(move || {
        request(addr, "POST", &path, &[("authorization", &bearer)], None)
    });
    rt.block_on(async {
        // Once the reset waits for the row, take the user's row it holds: a deadlock.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    .fetch_one(&mut other)
                    .await?;
            if waiting > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the reset never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlx::query("SELECT 1::bigint FROM users WHERE id = $1 FOR UPDATE")
            .bind(&user)
            .fetch_all(&mut other)
            .await?;
        sqlx::raw_sql("COMMIT").execute(&mut other).await?;
        Ok::<_, sqlx::Error>(())
    })
    .unwrap();
    let answer = reset.join().unwrap();
    assert_eq!(
        answer.status, 200,
        "the reset ran again after the deadlock: {}",
        answer.body
    );
    assert!(answer.json()["setup_token"].is_string());
    let metrics = server.get("/metrics", &[]);
    assert!(
        metrics
            .body
            .contains("latchkey_store_retries_total{op=\"reset_password\"} 1"),
        "one retry counted:\n{}",
        metrics
            .body
            .lines()
            .filter(|l| l.contains("retries"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Applied once: one setup link, one audit record of the reset.
    let audit = server.get(
        "/api/v1/environments/dev/audit?type=password.reset",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert_eq!(audit.json()["events"].as_array().unwrap().len(), 1);
    let (status, logs) = server.stop();
    assert!(status.success());
    assert!(
        logs.contains("running the operation again"),
        "the retry is logged"
    );
}

#[test]
fn connections_ended_by_the_server_are_replaced_unnoticed() {
    let Some(db) = pg_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--database", &db.url]);
    let (_, token) = invited_user(dir.path(), &db.url, &server);
    let bearer = format!("Bearer {token}");
    let rt = runtime();
    let mut admin = rt.block_on(sqlx::PgConnection::connect(&db.url)).unwrap();
    for _ in 0..3 {
        // An administrator (or a failover) ends every connection of the server's pool.
        let ended: i64 = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
                )
                .fetch_one(&mut admin),
            )
            .unwrap();
        assert!(ended > 0, "the server held connections");
        for path in [
            "/api/v1/environments/dev/users",
            "/api/v1/environments/dev/stats",
        ] {
            let r = server.get(path, &[("authorization", &bearer)]);
            assert_eq!(
                r.status, 200,
                "{path} after the connections ended: {}",
                r.body
            );
        }
    }
}
