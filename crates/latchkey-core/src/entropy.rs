//! Randomness from the operating system's CSPRNG (`getrandom`), the only source Latchkey uses
//! for secrets. Never replace it with a seeded or user-space generator.

use thiserror::Error;

/// The operating system refused to hand out randomness. Callers fail closed.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
#[error("the operating system's random number generator failed")]
pub struct EntropyError;

/// `N` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], EntropyError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| EntropyError)?;
    Ok(buf)
}

/// Fill a buffer from the OS CSPRNG.
pub fn fill(buf: &mut [u8]) -> Result<(), EntropyError> {
    getrandom::fill(buf).map_err(|_| EntropyError)
}
