//! What the crates' tests share, so it is written once: a PostgreSQL database of a test's own
//! ([`ScratchDatabase`]) and a way to say why a test skips ([`say`]). Never a dependency of
//! the server: only of tests.
//!
//! The PostgreSQL server is `LATCHKEY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`, used only to create and drop the scratch
//! databases). Where it cannot be reached, a test skips with a printed reason — unless
//! `LATCHKEY_REQUIRE_POSTGRES=1` (set by `.ci/run`), which makes it fail instead.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, PgConnection};

/// The server the scratch databases are made on (its database is only connected to).
pub fn postgres_admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether PostgreSQL's tests must run (`LATCHKEY_REQUIRE_POSTGRES=1`) rather than skip.
pub fn postgres_required() -> bool {
    std::env::var("LATCHKEY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Say why a test skips, past the test harness's output capture, so it shows in a normal run.
pub fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// A new, empty database on the test server, dropped (with its connections) when this is.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// Its URL: the server's, with this database.
    pub url: String,
    name: String,
}

impl ScratchDatabase {
    /// Create one named after `purpose`; `None` when PostgreSQL cannot be reached (having said
    /// so), and a panic instead when it is required, or when it is reached but refuses.
    pub async fn create(purpose: &str) -> Option<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin = postgres_admin_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("latchkey_{purpose}_{}_{nanos}_{n}", std::process::id());
        let mut c = match PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    !postgres_required(),
                    "PostgreSQL is required (LATCHKEY_REQUIRE_POSTGRES=1) but unreachable at {admin}: {e}"
                );
                say(&format!(
                    "skipping: PostgreSQL is not reachable at {admin} ({e}); set LATCHKEY_TEST_POSTGRES_URL"
                ));
                return None;
            }
        };
        // Reached but refusing (no right to create databases, a full disk): a broken setup,
        // never a reason to skip.
        let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""));
        if let Err(e) = sqlx::query(sql).execute(&mut c).await {
            panic!("PostgreSQL at {admin} refused to create a test database: {e}");
        }
        let server = admin.rsplit_once('/').map_or(admin.as_str(), |(s, _)| s);
        Some(Self {
            url: format!("{server}/{name}"),
            name,
        })
    }

    /// [`ScratchDatabase::create`], for a test without a runtime of its own.
    pub fn create_blocking(purpose: &str) -> Option<Self> {
        runtime().block_on(Self::create(purpose))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime for the test database: {e}"))
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread and a runtime of their own: Drop cannot await, and the test's runtime may
        // be ending.
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                if let Ok(mut c) = PgConnection::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}
