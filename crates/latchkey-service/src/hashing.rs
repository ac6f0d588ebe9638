//! The bounded password-hashing pool (SPEC §8, SECURITY P6).
//!
//! argon2id costs tens of milliseconds of CPU and 19 MiB or more of memory per hash, so it runs
//! on `workers` threads of its own, started with the pool and never on the async executor. At
//! most `queue` requests wait or run; past that the caller waits up to [`ADMISSION_WAIT`] for a
//! place and then gets [`Busy`] (the API answers 503 with `Retry-After`), so a burst of logins
//! cannot stall session checks.
//!
//! Why threads of its own rather than tokio's blocking pool: the allocator keeps a freed hash's
//! memory in the arena of the thread that used it, and tokio starts a new blocking thread
//! whenever all are busy — under a login storm that was dozens of threads each keeping 19 MiB
//! (864 MiB peak RSS for 500 concurrent logins, `BENCHMARKS.md`). With a fixed set of threads
//! the memory is bounded by `workers` × the argon2 memory.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering::Relaxed},
    mpsc,
};

use latchkey_core::password::{Argon2Hasher, HashCost, PasswordError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use crate::metrics::PoolState;

/// How long a request waits for a place in a full pool before it is refused (503).
pub const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// The pool is saturated; try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the password hashing pool is saturated")]
pub struct Busy;

/// A hash to compute, with the admission it holds until it has run.
type Job = Box<dyn FnOnce(&Argon2Hasher) + Send + 'static>;

#[derive(Debug, Clone)]
pub struct HashPool {
    jobs: mpsc::Sender<(Job, OwnedSemaphorePermit)>,
    admitted: Arc<Semaphore>,
    /// Places in all (`queue`).
    places: usize,
    workers: usize,
    /// Hashes being computed now, and requests refused since start (for `/metrics`).
    running: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    cost: HashCost,
}

impl HashPool {
    /// `workers` hashes run at once, on as many threads; `queue` (≥ `workers`) may be
    /// admitted, running or waiting. The threads end when the last clone of the pool is
    /// dropped.
    pub fn new(cost: HashCost, workers: usize, queue: usize) -> Result<Self, PasswordError> {
        let workers = workers.max(1);
        let hasher = Arc::new(Argon2Hasher::new(cost)?);
        let (tx, rx) = mpsc::channel::<(Job, OwnedSemaphorePermit)>();
        let rx = Arc::new(Mutex::new(rx));
        let running = Arc::new(AtomicU64::new(0));
        for n in 0..workers {
            let (rx, hasher) = (Arc::clone(&rx), Arc::clone(&hasher));
            let running = Arc::clone(&running);
            let spawned = std::thread::Builder::new()
                .name(format!("latchkey-hash-{n}"))
                .spawn(move || {
                    loop {
                        // Take the next job; the lock is held only while waiting for it.
                        let next = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok((job, _admission)) = next else { return };
                        running.fetch_add(1, Relaxed);
                        job(&hasher);
                        running.fetch_sub(1, Relaxed);
                    }
                });
            if spawned.is_err() {
                return Err(PasswordError::Hashing);
            }
        }
        let places = queue.max(workers);
        Ok(Self {
            jobs: tx,
            admitted: Arc::new(Semaphore::new(places)),
            places,
            workers,
            running,
            refused: Arc::new(AtomicU64::new(0)),
            cost,
        })
    }

    /// Count a refusal.
    fn refuse(&self) -> Busy {
        self.refused.fetch_add(1, Relaxed);
        Busy
    }

    /// Threads, hashes running and waiting now, and refusals since start.
    pub fn state(&self) -> PoolState {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let admitted = count(
            self.places
                .saturating_sub(self.admitted.available_permits()),
        );
        let busy = self.running.load(Relaxed);
        PoolState {
            workers: count(self.workers),
            busy,
            queued: admitted.saturating_sub(busy),
            refused: self.refused.load(Relaxed),
        }
    }

    pub fn cost(&self) -> HashCost {
        self.cost
    }

    /// Run `f` with the hasher on a hashing thread, within the bounds.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Busy>
    where
        F: FnOnce(&Argon2Hasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit().await?.run(f).await
    }

    /// A place in the pool, taken before anything is counted: a login refused because the
    /// pool is full must not count as an attempt against the user's lockout. When the pool is
    /// full, the request waits up to [`ADMISSION_WAIT`] for a place (places are handed out in
    /// the order asked), using no CPU meanwhile, and is refused only then. A burst is absorbed
    /// instead of refused, and a storm of clients that retry at once, ignoring `Retry-After`,
    /// can send a few refused requests per second each instead of thousands: the CPU stays
    /// with the hashes being computed and with session checks (`BENCHMARKS.md`).
    pub async fn admit(&self) -> Result<Admission, Busy> {
        let permit = match self.admitted.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(self.refuse()),
            Err(TryAcquireError::NoPermits) => {
                match tokio::time::timeout(ADMISSION_WAIT, self.admitted.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) | Err(_) => return Err(self.refuse()),
                }
            }
        };
        Ok(Admission {
            jobs: self.jobs.clone(),
            permit,
        })
    }
}

/// A place in the hashing pool; given back when its hash has run (or when dropped unused).
#[derive(Debug)]
pub struct Admission {
    jobs: mpsc::Sender<(Job, OwnedSemaphorePermit)>,
    permit: OwnedSemaphorePermit,
}

impl Admission {
    /// Run `f` on a hashing thread. Queued at once, with the admission: if the caller goes
    /// away (a client hangs up), the hash still runs to its end and keeps its place until
    /// then, so the bound holds.
    pub async fn run<T, F>(self, f: F) -> Result<T, Busy>
    where
        F: FnOnce(&Argon2Hasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |hasher| {
            let _ = tx.send(f(hasher));
        });
        self.jobs.send((job, self.permit)).map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }
}
