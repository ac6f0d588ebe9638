//! The session check's cache on SQLite: a session read before is answered again only while
//! nothing at all has been written to the database since, by any connection of any process.
//!
//! What "nothing written since" rests on: in WAL mode, every commit rewrites the wal-index
//! header at the start of the `-shm` file (its change counter `iChange` and its last frame
//! `mxFrame` move with every transaction; SQLite's "WAL-mode file format", §2.2.1), and every
//! process that opens the database maps that same file. So the 96 bytes of the header's two
//! copies, read with one `pread` and without any lock, are equal to an earlier reading only if
//! no transaction committed in between — in this process (the service's writes) or in another
//! (the CLI, a second server on the same file). A logout, a password reset, a disabled user,
//! a changed session lifetime: each is a commit, so each empties the cache for the next check,
//! and revocation stays immediate (SECURITY S6, S7). The lifetime rules themselves are applied by
//! the service on every check, cached or not.
//!
//! Reading the header while a writer rewrites it can see a mixture of old and new bytes; a
//! mixture differs from the old header unless it is the old header, which is a reading taken
//! before the commit finished — the same as a check that arrived a moment earlier. The entry
//! is stored under the header read *before* its query, so a commit racing with the query makes
//! the entry stale at once.
//!
//! The cache exists only when the database is in WAL mode and its `-shm` file can be read. The
//! `-shm` path is the one SQLite itself uses: the database's name as SQLite resolved it
//! (symbolic links followed), plus `-shm`; the file opened must be that path's file and still
//! linked. A read-only connection (the anchor) stays open with it, so SQLite never deletes or
//! truncates the `-shm` file under it (it does so only when the last connection closes).
//!
//! The descriptor is never closed: closing any descriptor of a file drops every POSIX lock the
//! process holds on it, SQLite's own `-shm` locks included. Each `-shm` file is opened once per
//! process and kept in [`SHM_FILES`].
//!
//! Unknown tokens are never cached. At most [`CAPACITY`] sessions are kept (about 1.5 KiB each).
//! On SQLite, a session answered from the cache is the database's last committed state: a node
//! whose database file has become unreadable still answers those sessions while the `-shm`
//! header reads as before (SECURITY R2 in `docs/SECURITY.md`).

use std::{
    collections::HashMap,
    fs::File,
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use rusqlite::{Connection, OpenFlags};

/// Sessions kept at most; when full, entries older than the database's current state go first.
pub(super) const CAPACITY: usize = 4096;

/// The two copies of the wal-index header (2 × 48 bytes).
type Header = [u8; 96];

/// Offset of `isInit` in the header: 1 once a connection has built the wal-index.
const IS_INIT: usize = 12;

/// Every `-shm` file this process opened for a cache: never closed.
static SHM_FILES: LazyLock<Mutex<Vec<Arc<File>>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Whether `file` is the file now at `path` (same device and inode, still linked: an inode
/// number can be reused once a deleted file is gone).
fn is_file_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(f), Ok(p)) => f.dev() == p.dev() && f.ino() == p.ino() && f.nlink() > 0,
        _ => false,
    }
}

/// The `-shm` file at `path`, opened at most once per process while it stays the same file.
/// `None` if it cannot be opened or is replaced while being opened.
fn shm_file(path: &Path) -> Option<Arc<File>> {
    let mut files = SHM_FILES.lock().ok()?;
    if let Some(file) = files.iter().find(|f| is_file_at(f, path)) {
        return Some(Arc::clone(file));
    }
    let file = Arc::new(File::open(path).ok()?);
    // Kept before anything else can fail, so that it is never closed.
    files.push(Arc::clone(&file));
    is_file_at(&file, path).then_some(file)
}

/// Values (the sessions, `V` = `SessionView`) by token hash, each with the header it was
/// read under.
pub(super) struct SessionCache<V> {
    shm: Arc<File>,
    /// Keeps the database open in this process while the cache reads its `-shm` file.
    anchor: Mutex<Option<Connection>>,
    entries: Mutex<HashMap<String, (Header, Arc<V>), foldhash::fast::FixedState>>,
    /// Set by [`SessionCache::close`]: without the anchor, the header proves nothing.
    closed: AtomicBool,
    /// Checks answered from memory (tests only).
    #[cfg(test)]
    hits: std::sync::atomic::AtomicU64,
}

impl<V> std::fmt::Debug for SessionCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache").finish_non_exhaustive()
    }
}

impl<V: Clone> SessionCache<V> {
    /// The cache for the database at `path`, or `None` when it cannot be trusted: the database
    /// is not in WAL mode, or its `-shm` file cannot be opened or read.
    pub(super) fn open(path: &Path) -> Option<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let anchor = Connection::open_with_flags(path, flags).ok()?;
        anchor
            .busy_timeout(std::time::Duration::from_secs(1))
            .ok()?;
        let mode: String = anchor
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        // A read makes this connection map the wal-index, so the `-shm` file exists now.
        anchor
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?;
        // The name SQLite resolved (links followed), as its unix VFS names the `-shm` file.
        let mut shm_path = PathBuf::from(anchor.path()?).into_os_string();
        shm_path.push("-shm");
        let cache = Self {
            shm: shm_file(Path::new(&shm_path))?,
            anchor: Mutex::new(Some(anchor)),
            entries: Mutex::new(HashMap::default()),
            closed: AtomicBool::new(false),
            #[cfg(test)]
            hits: std::sync::atomic::AtomicU64::new(0),
        };
        cache.header()?;
        Some(cache)
    }

    /// The wal-index header now; `None` if it cannot be read or is not initialised.
    pub(super) fn header(&self) -> Option<Header> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut h = [0u8; 96];
        self.shm.read_exact_at(&mut h, 0).ok()?;
        (h[IS_INIT] == 1).then_some(h)
    }

    /// The session read under the same `header`, if any.
    pub(super) fn get(&self, token_hash: &str, header: &Header) -> Option<V> {
        let hit = {
            let entries = self.entries.lock().ok()?;
            let (at, view) = entries.get(token_hash)?;
            (at == header).then(|| Arc::clone(view))
        }?;
        #[cfg(test)]
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(V::clone(&hit))
    }

    /// Remember `view`, read by a query that started after `header` was read.
    pub(super) fn put(&self, token_hash: &str, header: Header, view: &V) {
        let view = Arc::new(view.clone());
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY && !entries.contains_key(token_hash) {
            entries.retain(|_, (at, _)| *at == header);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token_hash.to_owned(), (header, view));
    }

    /// Forget everything and let the database close (the store is closing).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
        if let Ok(mut anchor) = self.anchor.lock() {
            anchor.take();
        }
    }

    /// Checks answered from memory so far.
    #[cfg(test)]
    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A database in WAL mode with one table, and a connection that writes to it (as another
    /// process would: its own connection, its own mapping of the `-shm` file).
    fn database(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("db.sqlite");
        let writer = Connection::open(&path).unwrap();
        writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .unwrap();
        writer.execute("CREATE TABLE t (v INTEGER)", []).unwrap();
        (path, writer)
    }

    #[test]
    fn an_entry_is_answered_only_until_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let cache = SessionCache::<String>::open(&path).expect("a WAL database has a cache");
        let before = cache.header().unwrap();
        cache.put("token", before, &"alice".to_owned());
        assert_eq!(cache.header().unwrap(), before, "reads change nothing");
        assert_eq!(cache.get("token", &before).as_deref(), Some("alice"));
        assert_eq!(cache.get("other", &before), None);

        // Any commit, by any connection, makes every entry stale.
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after = cache.header().unwrap();
        assert_ne!(after, before);
        assert_eq!(cache.get("token", &after), None);
        // So does an update.
        writer
            .execute("UPDATE t SET v = 2 WHERE v = 1", [])
            .unwrap();
        let third = cache.header().unwrap();
        assert_ne!(third, after);

        // A rolled-back transaction leaves the header (and the cache) as it was.
        writer
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (3); ROLLBACK;")
            .unwrap();
        assert_eq!(cache.header().unwrap(), third);
    }

    #[test]
    fn a_checkpoint_and_a_restarted_wal_still_change_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let cache = SessionCache::<String>::open(&path).unwrap();
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let before = cache.header().unwrap();
        cache.put("token", before, &"alice".to_owned());
        // The WAL starts again from its first frame: the header still differs.
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let after = cache.header().unwrap();
        assert_ne!(after, before);
        assert_eq!(cache.get("token", &after), None);
    }

    #[test]
    fn no_cache_without_wal_and_none_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollback.sqlite");
        let c = Connection::open(&path).unwrap();
        c.execute("CREATE TABLE t (v INTEGER)", []).unwrap();
        assert!(SessionCache::<String>::open(&path).is_none());

        let (path, _writer) = database(dir.path());
        let cache = SessionCache::<String>::open(&path).unwrap();
        let h = cache.header().unwrap();
        cache.put("token", h, &"alice".to_owned());
        cache.close();
        assert_eq!(cache.header(), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn through_a_symbolic_link_the_cache_reads_the_shm_file_sqlite_uses() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let link = dir.path().join("link.sqlite");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        // A stale, initialised `-shm` beside the link, which SQLite never reads.
        std::fs::write(
            dir.path().join("link.sqlite-shm"),
            std::fs::read(dir.path().join("db.sqlite-shm")).unwrap(),
        )
        .unwrap();
        let cache = SessionCache::<String>::open(&link).unwrap();
        let before = cache.header().unwrap();
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_ne!(cache.header().unwrap(), before);
    }

    #[test]
    fn a_full_cache_keeps_current_entries_and_drops_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let cache = SessionCache::<u32>::open(&path).unwrap();
        let old = cache.header().unwrap();
        for i in 0..CAPACITY {
            cache.put(&format!("old{i}"), old, &0);
        }
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let new = cache.header().unwrap();
        cache.put("fresh", new, &1);
        assert_eq!(cache.len(), 1, "the stale entries made room");
        for i in 0..CAPACITY - 1 {
            cache.put(&format!("new{i}"), new, &2);
        }
        cache.put("one more", new, &3);
        assert!(cache.len() <= CAPACITY);
        assert_eq!(cache.get("one more", &new), Some(3));
    }
}
