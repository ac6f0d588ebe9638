//! Point reads on SQLite — the session check's, and a login's (environment, counters, user,
//! login transaction, authenticators) — without sqlx's hand-off of every statement to a worker
//! thread and back (two thread switches per query; half the CPU of a check in the profile in
//! `BENCHMARKS.md`). A small pool of read-only `rusqlite` connections to the same file (the
//! same bundled SQLite library), used inline on the calling task: an indexed read from the
//! page cache takes microseconds, less than the switch it saves. WAL readers do not wait for
//! the writer; a short busy timeout bounds the rare wait (a checkpoint), and a busy or failed
//! read is reported as unavailable, so the check fails closed (SECURITY R2). The session check
//! asks the cache (`cache.rs`) first.
//!
//! Read only: nothing here writes, and every connection is opened `SQLITE_OPEN_READ_ONLY`
//! with `query_only`.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use latchkey_core::token::TokenHash;
use latchkey_service::store::{SessionView, StoreResult, TokenView};
use rusqlite::{Connection, OpenFlags};

use super::{
    cache::SessionCache,
    exec::{Lite, lite_err},
};
use crate::sql::{self, run_now};

/// Connections kept open for reuse (more are opened under load, then closed).
const KEEP: usize = 16;
/// The longest a check waits for a lock before answering unavailable.
const BUSY: Duration = Duration::from_millis(250);

/// Read-only connections to one database file.
pub(crate) struct FastReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Set up at the first check (the writer has put the database in WAL mode by then), or
    /// later: a database that cannot have one (`cache.rs`) is tried again every [`RETRY`].
    cache: OnceLock<SessionCache<Cached>>,
    /// When setting the cache up last failed.
    cache_failed: Mutex<Option<Instant>>,
    /// Run between a check's query and the caching of its answer (tests only).
    #[cfg(test)]
    after_query: Mutex<Option<Box<dyn Fn() + Send>>>,
}

/// How long after a failed attempt the cache is set up again.
const RETRY: Duration = Duration::from_secs(30);

impl std::fmt::Debug for FastReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastReads")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FastReads {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            cache: OnceLock::new(),
            cache_failed: Mutex::new(None),
            #[cfg(test)]
            after_query: Mutex::new(None),
        }
    }

    fn cache(&self) -> Option<&SessionCache<Cached>> {
        if let Some(cache) = self.cache.get() {
            return Some(cache);
        }
        let mut failed = self.cache_failed.lock().ok()?;
        if failed.is_some_and(|at| at.elapsed() < RETRY) {
            return None;
        }
        if let Some(cache) = SessionCache::open(&self.path) {
            *failed = None;
            return Some(self.cache.get_or_init(|| cache));
        }
        if failed.is_none() {
            tracing::warn!(
                path = %self.path.display(),
                "session checks read the database every time: no session cache without WAL and a readable -shm file"
            );
        }
        *failed = Some(Instant::now());
        None
    }

    /// Checks answered from the cache so far.
    #[cfg(test)]
    pub(super) fn cache_hits(&self) -> u64 {
        self.cache.get().map_or(0, SessionCache::hits)
    }

    /// Close every connection (the store is closing), so the last one out checkpoints.
    pub(super) fn close(&self) {
        if let Some(cache) = self.cache.get() {
            cache.close();
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    fn open(&self) -> StoreResult<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(lite_err)?;
        conn.busy_timeout(BUSY).map_err(lite_err)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(lite_err)?;
        Ok(conn)
    }

    /// Run `f` on an idle connection (or a new one), then keep the connection for the next.
    /// For point reads only (a row or a few by an index): it runs on the caller's thread.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&conn);
        // A connection that failed is dropped rather than reused.
        if result.is_ok()
            && let Ok(mut v) = self.idle.lock()
            && v.len() < KEEP
        {
            v.push(conn);
        }
        result
    }

    /// Run `f` like [`FastReads::read`], on a blocking-pool thread: for reads that may scan
    /// (lists, pages, counts), which must not hold up the async workers.
    pub(crate) async fn scan<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let reads = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || reads.read(f))
            .await
            .map_err(|e| {
                latchkey_service::StoreError::Unavailable(format!("a read was cancelled: {e}"))
            })?
    }

    /// The session with its user and environment, by the token's hash: from the cache while
    /// nothing has been written since it was read, from the database otherwise.
    pub(crate) fn session_by_token(&self, hash: &TokenHash) -> StoreResult<Option<SessionView>> {
        self.cached(
            hash,
            Cached::Session,
            |c| match c {
                Cached::Session(v) => Some(v),
                Cached::Token(_) => None,
            },
            |c| run_now(sql::sessions::by_token(&mut Lite(c), hash)),
        )
    }

    /// An application's token with its session, user and environment (`userinfo`, every
    /// refresh): cached as a session is.
    pub(crate) fn oidc_token(&self, hash: &TokenHash) -> StoreResult<Option<TokenView>> {
        self.cached(
            hash,
            |v| Cached::Token(Box::new(v)),
            |c| match c {
                Cached::Token(v) => Some(*v),
                Cached::Session(_) => None,
            },
            |c| run_now(sql::oidc::token(&mut Lite(c), hash)),
        )
    }

    /// A read by a token's hash, answered from the cache while nothing has been written since
    /// it was read. Unknown tokens are never cached.
    fn cached<T: Clone>(
        &self,
        hash: &TokenHash,
        wrap: impl FnOnce(T) -> Cached,
        unwrap: impl FnOnce(Cached) -> Option<T>,
        query: impl FnOnce(&Connection) -> StoreResult<Option<T>>,
    ) -> StoreResult<Option<T>> {
        let token_hash = hash.as_str();
        let cache = self.cache();
        let header = cache.and_then(SessionCache::header);
        if let (Some(cache), Some(header)) = (cache, &header)
            && let Some(found) = cache.get(token_hash, header).and_then(unwrap)
        {
            return Ok(Some(found));
        }
        let found = self.read(query)?;
        #[cfg(test)]
        if let Ok(hook) = self.after_query.lock()
            && let Some(hook) = hook.as_ref()
        {
            hook();
        }
        if let (Some(cache), Some(header), Some(value)) = (cache, header, &found) {
            cache.put(token_hash, header, &wrap(value.clone()));
        }
        Ok(found)
    }
}

/// What the cache holds, by a token's hash: a session (a browser's or a client's session
/// token), or an application's access or refresh token (OpenID Connect). The hashes of two
/// random 256-bit tokens never meet.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // the session is every page's check: not boxed for it
pub(super) enum Cached {
    Session(SessionView),
    Token(Box<TokenView>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated database with one environment, one user and one session (token hash `h`),
    /// and a connection that writes to it.
    async fn database(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("latchkey.db");
        let store = crate::SqliteStore::open_path(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let writer = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        writer
            .execute_batch(
                "INSERT INTO environments (slug, name, mfa_policy, session_max_age, created_at, updated_at)
                     VALUES ('shop', 'Shop', 'optional', 86400, 1, 1);
                 INSERT INTO users (id, env, email, email_norm, name, role, state, created_at, updated_at)
                     VALUES ('u1', 'shop', 'dan@example.com', 'dan@example.com', 'Dan', 'user', 'active', 1, 1);
                 INSERT INTO sessions (id, token_hash, user_id, env, authenticated_at, amr, created_at, last_seen_at)
                     VALUES ('s1', 'h', 'u1', 'shop', 1, 'pwd', 1, 1);",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        store.close().await;
        (path, writer)
    }

    fn name_of(reads: &FastReads) -> Option<String> {
        reads
            .session_by_token(&TokenHash::from_stored("h".into()))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|v| v.user.name.as_str().to_owned())
    }

    #[tokio::test]
    async fn repeated_checks_come_from_the_cache_until_a_write() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, writer) = database(dir.path()).await;
        let reads = FastReads::new(&path);
        assert_eq!(name_of(&reads).as_deref(), Some("Dan"));
        assert_eq!(reads.cache_hits(), 0);
        assert_eq!(name_of(&reads).as_deref(), Some("Dan"));
        assert_eq!(name_of(&reads).as_deref(), Some("Dan"));
        assert_eq!(reads.cache_hits(), 2, "the cache answers repeated checks");
        assert_eq!(
            reads
                .session_by_token(&TokenHash::from_stored("unknown".into()))
                .ok()
                .flatten()
                .map(|_| ()),
            None
        );

        writer
            .execute("UPDATE users SET name = 'Daniel' WHERE id = 'u1'", [])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name_of(&reads).as_deref(), Some("Daniel"));
        writer
            .execute("DELETE FROM sessions WHERE id = 's1'", [])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            name_of(&reads),
            None,
            "a deleted session is gone at the next check"
        );
        assert_eq!(reads.cache_hits(), 2);
    }

    #[tokio::test]
    async fn a_write_between_the_query_and_the_caching_is_not_missed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, writer) = database(dir.path()).await;
        let writer = Mutex::new(writer);
        let reads = FastReads::new(&path);
        // The first check's answer ("Dan") is cached just after a rename has committed: it must
        // be cached under the header read before its query, which the rename has changed.
        let renamed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&renamed);
        let rename = move || {
            if !flag.swap(true, std::sync::atomic::Ordering::SeqCst)
                && let Ok(w) = writer.lock()
            {
                w.execute("UPDATE users SET name = 'Daniel' WHERE id = 'u1'", [])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        };
        *reads.after_query.lock().unwrap_or_else(|e| panic!("{e}")) = Some(Box::new(rename));
        assert_eq!(name_of(&reads).as_deref(), Some("Dan"));
        assert!(renamed.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(
            name_of(&reads).as_deref(),
            Some("Daniel"),
            "the stale answer was not served"
        );
        assert_eq!(reads.cache_hits(), 0);
    }
}
