//! Every write to the SQLite file, on one thread that owns the one writing connection.
//!
//! SQLite lets one connection write at a time, so the writes of a node are a queue whatever we
//! do. Through sqlx, each statement of a transaction was handed to a worker thread and its
//! answer handed back: two thread switches per statement, about thirty per password + TOTP
//! login, and most of a login's CPU beside argon2 (`BENCHMARKS.md`, "Where a login's time
//! goes"). Here a whole transaction is one job: it is sent to the writer thread, runs there
//! from `BEGIN IMMEDIATE` to `COMMIT` with `rusqlite`, and its answer comes back once.
//!
//! A job commits synced unless it asks otherwise (`run_with`, [`Durability`]: a login attempt's
//! claim is flushed by the next synced commit). Synced commits are group commits: the writer
//! runs the jobs that are waiting one after the other, each its own transaction committed
//! without a flush (`synchronous = NORMAL`), then flushes the WAL once (`fdatasync` of the
//! `-wal` file, what `synchronous = FULL` does at each commit) and only then answers the synced
//! ones. Under load many commits share one flush; alone, a job costs what it did. `run_or_redo` may follow a rolled-back
//! transaction with a second one in the same job, with no other write in between (a code step
//! whose write failed is settled there).
//!
//! A job that fails rolls back (the transaction is dropped uncommitted), so nothing is left
//! half-written. A job once queued runs to its end even if its caller has gone away (a client
//! that hangs up): a claimed login attempt stays counted (SECURITY L2). A job that waited more
//! than [`QUEUE_DEADLINE`] for its turn is not run: its caller hears "unavailable" (R2).
//!
//! Other processes (the CLI, other nodes on the same file) share the file through SQLite's own
//! locking; the busy timeout bounds the wait for them.

use std::{
    convert::Infallible,
    panic::AssertUnwindSafe,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use latchkey_service::{StoreError, store::StoreResult};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::exec::lite_err;

/// A transaction to run on the writer's connection, given how long the job waited in the
/// queue. What it returns answers its caller once the WAL is flushed (with the flush's error,
/// if it failed); a job that needs no flush has answered already and returns `None`.
type Job = Box<dyn FnOnce(&mut Connection, Duration) -> Option<Deferred> + Send>;

/// An answer held until the WAL is on disk (given why, if it could not be flushed).
type Deferred = Box<dyn FnOnce(Option<String>) + Send>;

/// The most jobs committed before one flush.
const MAX_BATCH: usize = 64;

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Durability {
    /// Before it is answered (the WAL flushed after its commit, with the other commits of its
    /// batch): every write whose answer the client acts on — a used TOTP step, a session, a
    /// lock, a revocation.
    Synced = 1,
    /// With the next synced commit (answered without a flush). The WAL is one file written in
    /// order, so flushing it for any later commit flushes this one too; a crash of the process loses nothing, only a crash of the machine
    /// before the next synced commit does. For a claimed login attempt
    /// ([`super::throttle::claim`]): the service settles every claim it allowed with a synced
    /// write that changes rows (a success resets the counter, anything else records a failed
    /// attempt) before it says anything about the factor, so no verdict goes out before its
    /// claim is on disk. A refused claim changes nothing, or only sets a lock that fails closed.
    WithNextSync = 2,
}

/// A write that has waited this long for its turn (another process holding the write lock,
/// each write before it waiting out [`BUSY`]) is answered unavailable without running: the
/// caller fails closed within a bounded time, and a backlog built up during an outage is not
/// applied once the database is back (a login attempt nobody is waiting for any more must not
/// count against a lockout).
const QUEUE_DEADLINE: Duration = Duration::from_secs(15);

/// The longest a write waits for another process's write lock.
const BUSY: Duration = Duration::from_secs(10);

/// How a transaction ends: committed with its value, or rolled back, with what to do next.
pub(super) enum End<T, R> {
    Commit(T),
    Rollback(R),
}

/// Run `f` in one `BEGIN IMMEDIATE` transaction on `conn`: committed when it ends with
/// [`End::Commit`], rolled back (dropped uncommitted) on [`End::Rollback`] or an error.
fn transaction<T, R>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> StoreResult<End<T, R>>,
) -> StoreResult<End<T, R>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(lite_err)?;
    let end = f(&tx)?;
    if matches!(end, End::Commit(_)) {
        tx.commit().map_err(lite_err)?;
    }
    Ok(end)
}

/// The `-wal` file of the writer's database, flushed after each batch of synced commits.
struct Wal {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

impl Wal {
    fn of(conn: &Connection) -> StoreResult<Self> {
        let db = conn
            .path()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StoreError::Unavailable("the database has no file".into()))?;
        let mut path = std::path::PathBuf::from(db).into_os_string();
        path.push("-wal");
        Ok(Self {
            path: path.into(),
            file: None,
        })
    }

    /// `fdatasync` the WAL: every commit before this call is on disk after it. The file is
    /// opened again if it is no longer the one at the path (a descriptor of a replaced file
    /// would flush nothing that matters).
    fn sync(&mut self) -> StoreResult<()> {
        use std::os::unix::fs::MetadataExt;
        let current = |f: &std::fs::File| match (f.metadata(), std::fs::metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !self.file.as_ref().is_some_and(current) {
            self.file = Some(std::fs::File::open(&self.path).map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", self.path.display()))
            })?);
        }
        match &self.file {
            Some(f) => f
                .sync_data()
                .map_err(|e| StoreError::Unavailable(format!("cannot flush the WAL: {e}"))),
            None => Err(StoreError::Unavailable("no WAL file".into())),
        }
    }
}

/// The writer thread and the way to it.
pub(crate) struct Writer {
    jobs: Mutex<Option<mpsc::Sender<(Instant, Job)>>>,
    /// [`QUEUE_DEADLINE`], shorter in tests.
    deadline: Duration,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The durability of the last commit (`Durability as u8`, 0 before any), for tests.
    last_commit: Arc<AtomicU8>,
    /// WAL flushes so far, for tests.
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Open the writing connection to an existing, migrated database (WAL is a property of the
    /// file by then) and start its thread.
    pub(super) fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with_deadline(path, QUEUE_DEADLINE)
    }

    fn open_with_deadline(path: &Path, deadline: Duration) -> StoreResult<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(lite_err)?;
        conn.busy_timeout(BUSY).map_err(lite_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(lite_err)?;
        // Commits are not flushed one by one: a synced job is answered after the WAL is flushed
        // for its batch (`Durability`).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(lite_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut wal = Wal::of(&conn)?;
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Arc::clone(&syncs);
        let (jobs, queue) = mpsc::channel::<(Instant, Job)>();
        let thread = std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                // Ends when the last sender is dropped; the connection closes with the thread,
                // and the last connection to close checkpoints the WAL.
                while let Ok(first) = queue.recv() {
                    let mut waiting: Vec<Deferred> = Vec::new();
                    let mut next = Some(first);
                    let mut ran = 0;
                    while let Some((queued, job)) = next.take() {
                        let waited = queued.elapsed();
                        // A job that panics (a bug) is rolled back as its transaction unwinds,
                        // and its caller hears "unavailable"; the writer goes on with the next.
                        match std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn, waited)))
                        {
                            Ok(Some(deferred)) => waiting.push(deferred),
                            Ok(None) => {}
                            Err(_) => {
                                tracing::error!("a database write panicked and was rolled back");
                            }
                        }
                        ran += 1;
                        if ran < MAX_BATCH {
                            next = queue.try_recv().ok();
                        }
                    }
                    if !waiting.is_empty() {
                        let failed = wal.sync().err().map(|e| e.to_string());
                        counted.fetch_add(1, Ordering::Relaxed);
                        if let Some(e) = &failed {
                            tracing::error!(error = %e, "the WAL could not be flushed to disk");
                        }
                        for answer in waiting {
                            answer(failed.clone());
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            deadline,
            thread: Mutex::new(Some(thread)),
            last_commit: Arc::new(AtomicU8::new(0)),
            syncs,
        })
    }

    /// [`Writer::run_with`], synced (the tests' shorthand).
    #[cfg(test)]
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.run_with(Durability::Synced, f).await
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction on the writer thread, committed with the
    /// given [`Durability`] when it returns `Ok`, rolled back otherwise. `BEGIN IMMEDIATE`
    /// takes the write lock first, so a transaction that reads then writes never fails
    /// half-way on a stale snapshot.
    pub(crate) async fn run_with<T, F>(&self, wanted: Durability, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.job(wanted, move |conn| {
            match transaction(conn, |tx| f(tx).map(End::<T, Infallible>::Commit))? {
                End::Commit(v) => Ok(v),
                End::Rollback(never) => match never {},
            }
        })
        .await
    }

    /// Run `f` in one transaction (synced), as [`Writer::run_with`]; if it ends with
    /// [`End::Rollback`], everything it wrote is rolled back and `then` runs in a fresh
    /// transaction, in the same job: no other write of this node comes in between.
    pub(super) async fn run_or_redo<T, R, F, G>(&self, f: F, then: G) -> StoreResult<T>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<End<T, R>> + Send + 'static,
        G: FnOnce(&Transaction<'_>, R) -> StoreResult<T> + Send + 'static,
    {
        self.job(Durability::Synced, move |conn| {
            match transaction(conn, f)? {
                End::Commit(v) => Ok(v),
                End::Rollback(redo) => {
                    match transaction(conn, |tx| then(tx, redo).map(End::<T, Infallible>::Commit))?
                    {
                        End::Commit(v) => Ok(v),
                        End::Rollback(never) => match never {},
                    }
                }
            }
        })
        .await
    }

    /// Queue `body` for the writer thread, at the durability it asks for, and wait for its
    /// answer.
    async fn job<T, B>(&self, wanted: Durability, body: B) -> StoreResult<T>
    where
        T: Send + 'static,
        B: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let (deadline, last_commit) = (self.deadline, Arc::clone(&self.last_commit));
        let job: Job = Box::new(move |conn, waited| {
            if waited > deadline {
                let _ = answer.send(Err(StoreError::Unavailable(
                    "the database is busy: a write waited too long for its turn".into(),
                )));
                return None;
            }
            let result = body(conn);
            if result.is_ok() {
                last_commit.store(wanted as u8, Ordering::Relaxed);
            }
            match (wanted, result) {
                // Committed: answered once the WAL is on disk.
                (Durability::Synced, Ok(value)) => Some(Box::new(move |failed: Option<String>| {
                    let _ = answer.send(match failed {
                        None => Ok(value),
                        Some(e) => Err(StoreError::Unavailable(e)),
                    });
                }) as Deferred),
                // Rolled back (nothing to flush), or flushed by the next synced commit.
                (_, result) => {
                    let _ = answer.send(result);
                    None
                }
            }
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().map(|j| j.send((Instant::now(), job)).is_ok()),
            Err(_) => None,
        };
        if sent != Some(true) {
            return Err(StoreError::Unavailable("the database is closed".into()));
        }
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?
    }

    /// WAL flushes so far.
    #[cfg(test)]
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The durability the last committed job asked for.
    #[cfg(test)]
    pub(super) fn last_commit(&self) -> Option<Durability> {
        match self.last_commit.load(Ordering::Relaxed) {
            x if x == Durability::Synced as u8 => Some(Durability::Synced),
            x if x == Durability::WithNextSync as u8 => Some(Durability::WithNextSync),
            _ => None,
        }
    }

    /// Stop taking writes, let the queued ones finish, and close the connection.
    pub(super) fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(path: &Path) -> i64 {
        Connection::open(path)
            .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A WAL database with one table `t`, and a writer on it.
    fn table_and_writer(dir: &Path) -> (std::path::PathBuf, Writer) {
        let path = dir.join("w.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)"))
            .unwrap_or_else(|e| panic!("{e}"));
        let writer = Writer::open(&path).unwrap_or_else(|e| panic!("{e}"));
        (path, writer)
    }

    #[tokio::test]
    async fn a_job_commits_all_or_nothing_and_a_closed_writer_refuses() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, writer) = table_and_writer(dir.path());

        let two = writer
            .run(|tx| {
                tx.execute("INSERT INTO t VALUES (1), (2)", [])
                    .map_err(lite_err)?;
                Ok(2)
            })
            .await;
        assert_eq!(two.ok(), Some(2));
        assert_eq!(count(&path), 2);

        // A job that fails after writing leaves nothing of what it wrote.
        let failed = writer
            .run(|tx| {
                tx.execute("INSERT INTO t VALUES (3)", [])
                    .map_err(lite_err)?;
                Err::<(), _>(StoreError::Conflict("lost a race"))
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Conflict(_))));
        assert_eq!(count(&path), 2, "the failed job was rolled back");

        writer.close();
        let refused = writer.run(|_| Ok(())).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "a closed store fails closed: {refused:?}"
        );
        assert_eq!(count(&path), 2);
    }

    #[tokio::test]
    async fn a_job_can_roll_back_and_redo_in_a_fresh_transaction() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, writer) = table_and_writer(dir.path());
        let insert = |tx: &Transaction<'_>, x: i64| {
            tx.execute("INSERT INTO t VALUES (?1)", [x])
                .map_err(lite_err)
        };
        // Committed at once: `then` does not run.
        let kept = writer
            .run_or_redo(
                move |tx| insert(tx, 1).map(End::<_, i64>::Commit),
                |_, _| Ok(0),
            )
            .await;
        assert_eq!(kept.ok(), Some(1));
        // Rolled back: nothing of the first transaction stays, and the second commits.
        let redone = writer
            .run_or_redo(
                move |tx| {
                    insert(tx, 2)?;
                    Ok(End::<usize, i64>::Rollback(3))
                },
                move |tx, x| insert(tx, x),
            )
            .await;
        assert_eq!(redone.ok(), Some(1));
        let rows: Vec<i64> = Connection::open(&path)
            .and_then(|c| {
                let mut s = c.prepare("SELECT x FROM t ORDER BY x")?;
                s.query_map([], |r| r.get(0))?.collect()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows, [1, 3]);
        writer.close();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_synced_job_is_answered_after_a_flush_that_waiting_jobs_share() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, writer) = table_and_writer(dir.path());
        let writer = std::sync::Arc::new(writer);
        let insert = |x: i64| {
            move |tx: &Transaction<'_>| {
                tx.execute("INSERT INTO t VALUES (?1)", [x])
                    .map_err(lite_err)
            }
        };
        // A synced job: one flush before its answer (a used TOTP step is on disk when
        // answered: SECURITY T4). A job that may wait for the next flush: none.
        assert_eq!(writer.run(insert(1)).await.ok(), Some(1));
        assert_eq!(writer.syncs(), 1);
        let claim = writer.run_with(Durability::WithNextSync, insert(2)).await;
        assert_eq!(claim.ok(), Some(1));
        assert_eq!(
            writer.syncs(),
            1,
            "a claim waits for the next synced commit"
        );
        // A job that fails commits nothing and needs no flush.
        let failed = writer
            .run(|_| Err::<(), _>(StoreError::Conflict("lost a race")))
            .await;
        assert!(failed.is_err());
        assert_eq!(writer.syncs(), 1);

        // Twenty synced jobs that queue while one holds the writer: one batch, one flush.
        let slow = {
            let w = std::sync::Arc::clone(&writer);
            tokio::spawn(async move {
                w.run(|tx| {
                    std::thread::sleep(Duration::from_millis(300));
                    tx.execute("INSERT INTO t VALUES (100)", [])
                        .map_err(lite_err)
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rest: Vec<_> = (0..19)
            .map(|i| {
                let w = std::sync::Arc::clone(&writer);
                tokio::spawn(async move { w.run(insert(200 + i)).await })
            })
            .collect();
        assert_eq!(slow.await.ok().and_then(Result::ok), Some(1));
        for r in rest {
            assert_eq!(r.await.ok().and_then(Result::ok), Some(1));
        }
        assert_eq!(count(&path), 22);
        assert_eq!(writer.syncs(), 2, "twenty commits, one flush");
        assert_eq!(writer.last_commit(), Some(Durability::Synced));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_waited_past_the_deadline_is_refused_and_not_applied() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("w.db");
        let other = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        other
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)")
            .unwrap_or_else(|e| panic!("{e}"));
        let writer = std::sync::Arc::new(
            Writer::open_with_deadline(&path, Duration::from_millis(300))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        // Another process holds the write lock for a second.
        other
            .execute_batch("BEGIN IMMEDIATE")
            .unwrap_or_else(|e| panic!("{e}"));
        let insert = |x: i64| {
            let w = std::sync::Arc::clone(&writer);
            tokio::spawn(async move {
                w.run(move |tx| {
                    tx.execute("INSERT INTO t VALUES (?1)", [x])
                        .map_err(lite_err)
                })
                .await
            })
        };
        let first = insert(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = insert(2);
        tokio::time::sleep(Duration::from_secs(1)).await;
        other
            .execute_batch("COMMIT")
            .unwrap_or_else(|e| panic!("{e}"));
        let first = first.await.unwrap_or_else(|e| panic!("{e}"));
        let second = second.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.ok(), Some(1), "the running write waited for the lock");
        assert!(
            matches!(second, Err(StoreError::Unavailable(_))),
            "the queued write outlived its deadline: {second:?}"
        );
        assert_eq!(count(&path), 1, "and was not applied");
    }
}
