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
use latchkey_testkit::ScratchDatabase;
use sqlx::{Connection, PgConnection};

/// A new, empty, migrated database; `None` (skip) when PostgreSQL is not here.
async fn fresh() -> Option<(PgStore, ScratchDatabase)> {
    let database = ScratchDatabase::create("test").await?;
    let store = PgStore::open(&database.url, 8).await.unwrap();
    Some((store, database))
}

store_suite!(fresh());

/// Migration 0002 left one index per purpose on a login's rows: `(env, user_id)` for a user's
/// rows, and the setup-link index only where a login has one.
#[tokio::test]
async fn a_logins_rows_carry_only_the_indexes_they_need() {
    let Some((store, guard)) = fresh().await else {
        return;
    };
    drop(store);
    let mut c = PgConnection::connect(&guard.url).await.unwrap();
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
