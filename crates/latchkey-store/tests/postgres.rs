//! The storage suite on PostgreSQL: the same tests as on SQLite, each on a database of its own
//! that is dropped afterwards.
//!
//! The server is `LATCHKEY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! used only to create and drop the test databases). Where it cannot be reached the tests skip
//! with a printed reason — unless `LATCHKEY_REQUIRE_POSTGRES=1` (set by `.ci/run`), which makes
//! them fail instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod suite;

use latchkey_store::PgStore;
use sqlx::{Connection, PgConnection};

fn admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn required() -> bool {
    std::env::var("LATCHKEY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Drops the test database when the test ends.
struct Fresh {
    name: String,
}

impl Fresh {
    /// The test database's URL: the admin URL with its database replaced.
    fn url(&self) -> String {
        let base = admin_url();
        match base.rsplit_once('/') {
            Some((server, _db)) => format!("{server}/{}", self.name),
            None => panic!("LATCHKEY_TEST_POSTGRES_URL must name a database: {base}"),
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A runtime of its own: Drop cannot await, and the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(&admin_url()).await {
                    let sql = sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ));
                    let _ = sqlx::query(sql).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// A new, empty, migrated database; `None` (skip) when PostgreSQL is not here.
async fn fresh() -> Option<(PgStore, Fresh)> {
    let mut admin = match PgConnection::connect(&admin_url()).await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !required(),
                "PostgreSQL is required (LATCHKEY_REQUIRE_POSTGRES=1) but unreachable at {}: {e}",
                admin_url()
            );
            say(&format!(
                "skipping: PostgreSQL is not reachable at {} ({e}); set LATCHKEY_TEST_POSTGRES_URL",
                admin_url()
            ));
            return None;
        }
    };
    let name = format!("latchkey_test_{}", uuid_like());
    let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""));
    sqlx::query(sql).execute(&mut admin).await.unwrap();
    let guard = Fresh { name };
    let store = PgStore::open(&guard.url(), 8).await.unwrap();
    Some((store, guard))
}

/// A unique lowercase name part, from the clock and the process.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{}_{}_{}", std::process::id(), nanos, n)
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

store_suite!(fresh());

/// Migration 0002 left one index per purpose on a login's rows: `(env, user_id)` for a user's
/// rows, and the setup-link index only where a login has one.
#[tokio::test]
async fn a_logins_rows_carry_only_the_indexes_they_need() {
    let Some((store, guard)) = fresh().await else {
        return;
    };
    drop(store);
    let mut c = PgConnection::connect(&guard.url()).await.unwrap();
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE tablename IN ('sessions', 'login_transactions')",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let def = |name: &str| {
        indexes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
    };
    assert_eq!(def("sessions_user"), None, "{indexes:?}");
    assert_eq!(def("login_transactions_user"), None, "{indexes:?}");
    assert!(def("sessions_env_user").is_some(), "{indexes:?}");
    assert!(def("login_transactions_env_user").is_some(), "{indexes:?}");
    assert!(
        def("login_transactions_setup").is_some_and(|d| d.contains("IS NOT NULL")),
        "{indexes:?}"
    );
}

/// Say why a test skips, past the test harness's output capture, so it shows in a normal run.
fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}
