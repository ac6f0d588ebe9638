//! The argon2 bound: the time of one hash alone, and per hash with every core hashing, measured
//! in the driver with the server's own code and parameters.

use std::{sync::Arc, time::Instant};

use latchkey_core::password::{Argon2Hasher, Password};

/// Seconds per hash, one at a time: the median of fifteen.
pub fn single_hash(hasher: &Argon2Hasher, pw: &Password) -> f64 {
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            let _ = hasher.hash(pw);
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut times)
}

/// Seconds per hash with `cores` threads hashing at once (eight hashes each, after one to
/// warm each thread's memory).
pub fn parallel_hash(hasher: &Argon2Hasher, pw: &Password, cores: usize) -> anyhow::Result<f64> {
    let rounds = 8;
    let barrier = Arc::new(std::sync::Barrier::new(cores + 1));
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hasher, pw, barrier) = (hasher.clone(), pw.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let _ = hasher.hash(&pw);
                barrier.wait();
                for _ in 0..rounds {
                    let _ = hasher.hash(&pw);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?;
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(rounds))
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
