//! Bulk seeding of an environment (SQLite), for figures at a million users: one transaction
//! of set-based inserts (a recursive sequence), not a million round trips. The users are
//! `active` with an unusable password hash (no login can reach them), every `mfa_every`-th one
//! has a confirmed authenticator and every `session_every`-th one a session (with a token hash
//! nobody holds), so the tables and indexes have the shape of a real environment.

use std::{path::Path, time::Duration};

use anyhow::Context;
use sqlx::{Connection, SqliteConnection};

/// What to seed.
#[derive(Debug, Clone)]
pub struct Seed<'a> {
    pub env: &'a str,
    /// Email local part prefix: `{prefix}{i}@seed.example`.
    pub prefix: &'a str,
    pub users: u64,
    pub mfa_every: u64,
    pub session_every: u64,
}

/// Insert the users into the SQLite database at `path` (the environment must exist); returns
/// how long it took.
pub async fn seed_sqlite(path: &Path, s: &Seed<'_>) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    let url = format!("sqlite://{}", path.display());
    let mut c = SqliteConnection::connect(&url)
        .await
        .with_context(|| format!("open {}", path.display()))?;
    let n = i64::try_from(s.users)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let now = i64::try_from(now)?;
    let mut tx = c.begin().await?;
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1) \
         INSERT INTO users (id, env, email, email_norm, name, role, state, password_hash, \
         password_change_required, created_at, updated_at) \
         SELECT printf('%s-%09d', ?3, i), ?2, printf('%s%d@seed.example', ?3, i), \
                printf('%s%d@seed.example', ?3, i), 'Seeded user', 'user', 'active', 'x', 0, ?4, ?4 \
         FROM seq",
    )
    .bind(n)
    .bind(s.env)
    .bind(s.prefix)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("seeding users")?;
    let like = format!("{}-%", s.prefix);
    let every = |k: u64| i64::try_from(k.max(1)).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO authenticators (id, user_id, label, secret_sealed, confirmed_at, created_at) \
         SELECT 'a' || id, id, 'Phone', x'00', ?3, ?3 FROM users \
         WHERE env = ?1 AND id LIKE ?2 AND (rowid % ?4) = 0",
    )
    .bind(s.env)
    .bind(&like)
    .bind(now)
    .bind(every(s.mfa_every))
    .execute(&mut *tx)
    .await
    .context("seeding authenticators")?;
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, env, authenticated_at, amr, created_at, last_seen_at) \
         SELECT 's' || id, 'h' || id, id, ?1, ?3, 'pwd', ?3, ?3 FROM users \
         WHERE env = ?1 AND id LIKE ?2 AND (rowid % ?4) = 0",
    )
    .bind(s.env)
    .bind(&like)
    .bind(now)
    .bind(every(s.session_every))
    .execute(&mut *tx)
    .await
    .context("seeding sessions")?;
    tx.commit().await?;
    c.close().await?;
    Ok(started.elapsed())
}
