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
//! claim is flushed by the next synced commit). `run_or_redo` may follow a rolled-back
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

/// A transaction to run on the writer's connection, given the durability the connection is
/// set to and how long the job waited in the queue.
type Job = Box<dyn FnOnce(&mut Connection, &mut Durability, Duration) + Send>;

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Durability {
    /// Before it is answered (`synchronous = FULL`): every write whose answer the client acts
    /// on — a used TOTP step, a session, a lock, a revocation.
    Synced = 1,
    /// With the next synced commit (`synchronous = NORMAL`: the WAL is not flushed at this
    /// commit). The WAL is one file written in order, so flushing it for any later commit
    /// flushes this one too; a crash of the process loses nothing, only a crash of the machine
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

/// The writer thread and the way to it.
pub(crate) struct Writer {
    jobs: Mutex<Option<mpsc::Sender<(Instant, Job)>>>,
    /// [`QUEUE_DEADLINE`], shorter in tests.
    deadline: Duration,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The durability of the last commit (`Durability as u8`, 0 before any), for tests.
    last_commit: Arc<AtomicU8>,
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
        // A commit is on disk before it is answered (a used TOTP step must stay used), unless
        // its job says otherwise (`Durability`).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(lite_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = mpsc::channel::<(Instant, Job)>();
        let thread = std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                // What the connection was opened with, above.
                let mut durability = Durability::Synced;
                // Ends when the last sender is dropped; the connection closes with the thread,
                // and the last connection to close checkpoints the WAL.
                while let Ok((queued, job)) = queue.recv() {
                    let waited = queued.elapsed();
                    // A job that panics (a bug) is rolled back as its transaction unwinds, and
                    // its caller hears "unavailable"; the writer goes on with the next.
                    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        job(&mut conn, &mut durability, waited);
                    }));
                    if ran.is_err() {
                        tracing::error!("a database write panicked and was rolled back");
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            deadline,
            thread: Mutex::new(Some(thread)),
            last_commit: Arc::new(AtomicU8::new(0)),
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
        let job: Job = Box::new(move |conn, durability, waited| {
            if waited > deadline {
                let _ = answer.send(Err(StoreError::Unavailable(
                    "the database is busy: a write waited too long for its turn".into(),
                )));
                return;
            }
            if *durability != wanted {
                let level = match wanted {
                    Durability::Synced => "FULL",
                    Durability::WithNextSync => "NORMAL",
                };
                // A job never runs at a level it did not ask for: if the switch fails, it is
                // refused, and the connection keeps the level it had.
                if let Err(e) = conn.pragma_update(None, "synchronous", level) {
                    let _ = answer.send(Err(lite_err(e)));
                    return;
                }
                *durability = wanted;
            }
            let result = body(conn);
            if result.is_ok() {
                last_commit.store(wanted as u8, Ordering::Relaxed);
            }
            let _ = answer.send(result);
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

    /// `synchronous` as the job's transaction sees it: 2 is FULL, 1 is NORMAL.
    fn level(tx: &Transaction<'_>) -> StoreResult<i64> {
        tx.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(lite_err)
    }

    #[tokio::test]
    async fn each_job_commits_at_the_durability_it_asked_for() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (path, writer) = table_and_writer(dir.path());
        let at = |d: Durability| {
            let writer = &writer;
            async move { writer.run_with(d, level).await.ok() }
        };
        // Synced by default; a job that may wait for the next sync gets NORMAL, and the next
        // synced job FULL again, whatever ran before it (a used TOTP step is on disk when
        // answered: SECURITY T4).
        assert_eq!(writer.run(level).await.ok(), Some(2));
        assert_eq!(at(Durability::WithNextSync).await, Some(1));
        assert_eq!(at(Durability::WithNextSync).await, Some(1));
        assert_eq!(writer.run(level).await.ok(), Some(2));
        assert_eq!(at(Durability::Synced).await, Some(2));
        // What a job wrote at either level is committed and visible to every connection.
        let wrote = writer
            .run_with(Durability::WithNextSync, |tx| {
                tx.execute("INSERT INTO t VALUES (1)", []).map_err(lite_err)
            })
            .await;
        assert_eq!(wrote.ok(), Some(1));
        assert_eq!(count(&path), 1);
        writer.close();
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
