//! The bounded password-hashing pool (SPEC §8, SECURITY P6).
//!
//! argon2id costs tens of milliseconds of CPU and 19 MiB or more of memory per hash, so it runs
//! on tokio's blocking threads with at most `workers` at once, never on the async executor. At
//! most `queue` requests wait or run; past that the caller gets [`Busy`] at once (the API answers
//! 503 with `Retry-After`), so a burst of logins has a fixed memory ceiling and cannot stall
//! session checks.

use std::sync::Arc;

use latchkey_core::password::{Argon2Hasher, HashCost, PasswordError};
use tokio::sync::Semaphore;

/// The pool is saturated; try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the password hashing pool is saturated")]
pub struct Busy;

#[derive(Debug, Clone)]
pub struct HashPool {
    hasher: Arc<Argon2Hasher>,
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    cost: HashCost,
}

impl HashPool {
    /// `workers` hashes run at once; `queue` (≥ `workers`) may be admitted, running or waiting.
    pub fn new(cost: HashCost, workers: usize, queue: usize) -> Result<Self, PasswordError> {
        let workers = workers.max(1);
        Ok(Self {
            hasher: Arc::new(Argon2Hasher::new(cost)?),
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(queue.max(workers))),
            cost,
        })
    }

    pub fn cost(&self) -> HashCost {
        self.cost
    }

    /// Run `f` with the hasher on a blocking thread, within the bounds.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Busy>
    where
        F: FnOnce(&Argon2Hasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        let hasher = Arc::clone(&self.hasher);
        // The permits move into the blocking task: if the caller goes away (a client hangs up),
        // the hash still runs to its end and keeps its place until then, so the bound holds.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            f(&hasher)
        })
        .await
        .map_err(|_| Busy)
    }
}
