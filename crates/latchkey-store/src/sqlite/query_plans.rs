//! A test of query plans: the statements that find a user's sessions and login transactions, or
//! the logins a setup link opened, search an index (migration 0002 left one per purpose) instead
//! of scanning the table — at a million sessions a scan would hold the writer for seconds.

use rusqlite::Connection;

/// The plan's lines for `sql`, its parameters bound to NULL.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
    stmt.query_map(rusqlite::params_from_iter(nulls), |row| {
        row.get::<_, String>(3)
    })
    .and_then(Iterator::collect)
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn statements_on_a_users_rows_search_an_index() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("latchkey.db");
    let store = crate::SqliteStore::open_path(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store.close().await;
    let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for (sql, index) in [
        (crate::sql::sessions::LIST.sqlite(), "sessions_env_user"),
        (crate::sql::sessions::END_ALL.sqlite(), "sessions_env_user"),
        (
            crate::sql::logins::EXPIRE_ALL.sqlite(),
            "login_transactions_env_user",
        ),
        (
            crate::sql::logins::END_ALL.sqlite(),
            "login_transactions_env_user",
        ),
        (
            crate::sql::logins::END_FROM_LINK.sqlite(),
            "login_transactions_setup",
        ),
        // The foreign keys' cascades when a user goes.
        (
            "DELETE FROM sessions WHERE env = ?1 AND user_id = ?2",
            "sessions_env_user",
        ),
        (
            "DELETE FROM login_transactions WHERE env = ?1 AND user_id = ?2",
            "login_transactions_env_user",
        ),
    ] {
        let plan = plan(&conn, sql);
        assert!(
            plan.iter()
                .any(|l| l.starts_with("SEARCH") && l.contains(&format!("INDEX {index} "))),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|l| l.starts_with("SCAN")),
            "{sql}: {plan:?}"
        );
    }
    // And the indexes that migration dropped, which would otherwise serve some of these, are gone.
    let indexes: Vec<String> = conn
        .prepare("SELECT name || ': ' || sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_else(|e| panic!("{e}"));
    for gone in ["sessions_user:", "login_transactions_user:"] {
        assert!(!indexes.iter().any(|i| i.starts_with(gone)), "{indexes:?}");
    }
    assert!(
        indexes
            .iter()
            .any(|i| i.starts_with("login_transactions_setup:") && i.contains("IS NOT NULL")),
        "{indexes:?}"
    );
}
