//! The storage suite on SQLite, plus the invariants only SQL can show: cascades into every
//! child table, the CHECK and trigger rules, the pragmas, and the backup's integrity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod suite;

use latchkey_service::store::{CredentialStore, DatabaseStore, UserQuery, UserStore};
use latchkey_store::SqliteStore;
use sqlx::Connection;
use tempfile::TempDir;

async fn fresh() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("test.db"))
        .await
        .unwrap();
    (store, dir)
}

store_suite!(async { Some(fresh().await) });

async fn raw(dir: &TempDir) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

async fn count(c: &mut sqlx::SqliteConnection, table: &'static str) -> i64 {
    let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"));
    sqlx::query_scalar(sql).fetch_one(c).await.unwrap()
}

#[tokio::test]
async fn pragmas_are_set_for_durability() {
    let (store, dir) = fresh().await;
    store.ping().await.unwrap();
    let mut c = raw(&dir).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
}

#[tokio::test]
async fn deleting_a_user_removes_every_child_row() {
    let (store, dir) = fresh().await;
    suite::seed(&store).await;
    let u = suite::user("prod", 1, "a@example.com");
    let (_, s) = suite::setup(1, &u.user.id);
    store
        .create_user(&u, &s, &suite::audit("prod", 100, "user.created", None))
        .await
        .unwrap();
    store
        .insert_authenticator(&suite::authenticator("a1", &u.user.id, true))
        .await
        .unwrap();
    let mut c = raw(&dir).await;
    let uid = u.user.id.clone();
    for sql in [
        "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ('r1', ?1, 'h1', 0)",
        "INSERT INTO sessions (id, token_hash, user_id, env, authenticated_at, amr, created_at, last_seen_at) VALUES ('s1', 'th1', ?1, 'prod', 0, 'pwd otp', 0, 0)",
        "INSERT INTO login_transactions (id, token_hash, user_id, env, state, created_at, expires_at) VALUES ('l1', 'lh1', ?1, 'prod', 'mfa_required', 0, 300)",
    ] {
        sqlx::query(sql).bind(&uid).execute(&mut c).await.unwrap();
    }
    for table in [
        "authenticators",
        "recovery_codes",
        "sessions",
        "login_transactions",
        "setup_tokens",
    ] {
        assert_eq!(count(&mut c, table).await, 1, "{table} before");
    }
    assert!(
        store
            .delete_user(
                &suite::slug("prod"),
                &uid,
                &suite::audit("prod", 101, "user.deleted", Some(&uid))
            )
            .await
            .unwrap()
    );
    for table in [
        "authenticators",
        "recovery_codes",
        "sessions",
        "login_transactions",
        "setup_tokens",
    ] {
        assert_eq!(count(&mut c, table).await, 0, "{table} after");
    }
    assert_eq!(
        count(&mut c, "audit_events").await,
        4,
        "audit events outlive their target"
    );
}

#[tokio::test]
async fn setup_links_are_stored_as_hashes_only() {
    let (store, dir) = fresh().await;
    suite::seed(&store).await;
    let u = suite::user("prod", 1, "a@example.com");
    let (token, record) = suite::setup(1, &u.user.id);
    store
        .create_user(
            &u,
            &record,
            &suite::audit("prod", 100, "user.created", None),
        )
        .await
        .unwrap();
    let mut c = raw(&dir).await;
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM setup_tokens")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(stored, record.hash.as_str());
    assert_ne!(stored, token.expose());
    drop(c);
    store.close().await;
    let bytes = std::fs::read(dir.path().join("test.db")).unwrap();
    assert!(
        !bytes
            .windows(token.expose().len())
            .any(|w| w == token.expose().as_bytes())
    );
}

#[tokio::test]
async fn sql_rules_hold_even_against_raw_writes() {
    let (store, dir) = fresh().await;
    suite::seed(&store).await;
    let mut c = raw(&dir).await;
    // MFA is always required in `system`.
    let r = sqlx::query("INSERT INTO environments (slug, name, mfa_policy, session_max_age, created_at, updated_at) VALUES ('system', 'S', 'off', 60, 0, 0)").execute(&mut c).await;
    assert!(r.is_err());
    // Slugs follow the documented shape.
    let r = sqlx::query("INSERT INTO environments (slug, name, mfa_policy, session_max_age, created_at, updated_at) VALUES ('Bad Slug', 'S', 'off', 60, 0, 0)").execute(&mut c).await;
    assert!(r.is_err());
    // The audit log is append-only.
    let r = sqlx::query("UPDATE audit_events SET outcome = 'failure'")
        .execute(&mut c)
        .await;
    assert!(r.is_err());
    let r = sqlx::query("DELETE FROM audit_events")
        .execute(&mut c)
        .await;
    assert!(r.is_err());
    // Authenticator parameters are constrained.
    let r = sqlx::query("INSERT INTO users (id, env, email, email_norm, name, role, state, created_at, updated_at) VALUES ('u', 'prod', 'a@b.co', 'a@b.co', 'A', 'user', 'invited', 0, 0)").execute(&mut c).await;
    assert!(r.is_ok());
    let r = sqlx::query("INSERT INTO authenticators (id, user_id, label, secret_sealed, digits, created_at) VALUES ('a', 'u', 'x', x'00', 7, 0)").execute(&mut c).await;
    assert!(r.is_err());
    let r = sqlx::query("INSERT INTO users (id, env, email, email_norm, name, role, state, created_at, updated_at) VALUES ('u2', 'nowhere', 'a@b.co', 'a@b.co', 'A', 'user', 'invited', 0, 0)").execute(&mut c).await;
    assert!(r.is_err(), "foreign keys are enforced");
}

#[tokio::test]
async fn backup_passes_integrity_check_and_holds_the_data() {
    let (store, dir) = fresh().await;
    let copy = suite::backup_is_a_readable_copy(store, dir.path()).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup holds what the database holds");
    }
    let restored = SqliteStore::open_path(&copy).await.unwrap();
    assert_eq!(restored.integrity_check().await.unwrap(), "ok");
    let users = restored
        .list_users(
            &suite::slug("prod"),
            &UserQuery {
                limit: 10,
                ..UserQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
}

#[tokio::test]
async fn database_file_is_private_and_urls_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(SqliteStore::open("postgres://localhost/x").await.is_err());
    assert!(SqliteStore::open("sqlite://").await.is_err());
    let missing_dir = dir.path().join("no/such/dir/x.db");
    let err = SqliteStore::open_path(&missing_dir)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("does not exist"), "{err}");
}

/// Issue 17's rule, held: every statement on Latchkey's tables is written once, in `src/sql/`.
/// Outside their tests, the backends' modules name a table only in PostgreSQL's row locks
/// (`postgres/exec.rs`), and no statement text stands in both a SQLite and a PostgreSQL module.
#[test]
fn no_statement_is_written_once_per_backend() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let migrations = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/0001_initial.sql"),
    )
    .unwrap();
    let tables: Vec<String> = migrations
        .split("CREATE TABLE ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(
        tables.len() >= 10 && tables.contains(&"users".to_owned()),
        "{tables:?}"
    );
    let statements = |dir: &str| -> Vec<(String, String)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(src.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Compiled for tests only (`#[cfg(test)] mod query_plans`).
            if name == "query_plans.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for literal in code.split('"').skip(1).step_by(2) {
                let sql = literal.split_whitespace().collect::<Vec<_>>().join(" ");
                if ["SELECT ", "INSERT ", "UPDATE ", "DELETE "]
                    .iter()
                    .any(|verb| sql.contains(verb))
                {
                    found.push((format!("{dir}/{name}"), sql));
                }
            }
        }
        found
    };
    let (lite, pg) = (statements("sqlite"), statements("postgres"));
    assert!(!pg.is_empty(), "the walk found PostgreSQL's row locks");
    let names_a_table = |sql: &str| {
        tables.iter().any(|t| {
            sql.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|word| word == t)
        })
    };
    for (file, sql) in lite.iter().chain(&pg) {
        let row_lock = file == "postgres/exec.rs" && sql.contains(" FOR ");
        assert!(
            !names_a_table(sql) || row_lock,
            "{file} writes its own statement on a table (it belongs in src/sql/): {sql}"
        );
    }
    for (file, sql) in &lite {
        assert!(
            !pg.iter().any(|(_, other)| other == sql),
            "{file} and a PostgreSQL module both hold: {sql}"
        );
    }
}
