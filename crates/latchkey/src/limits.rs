//! The process's descriptor limit: `serve` raises its soft limit to the hard one at start (a
//! service manager's default soft limit, often 1,024, would let a few hundred held connections
//! starve the database and the listener of descriptors), and sizes the connection bound from
//! what it then has. Never lowers a limit.

/// Descriptors kept aside for everything that is not a client connection: the database files
/// and connections, the listeners, the log.
const RESERVED: u64 = 256;

/// Raise the soft descriptor limit to the hard one; returns the soft limit in force after.
#[cfg(unix)]
pub fn raise_descriptors() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current != now.maximum {
        let raised = Rlimit {
            current: now.maximum,
            maximum: now.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the descriptor limit");
        }
    }
    // `None` is unlimited: bound what we count anyway.
    getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)
}

#[cfg(not(unix))]
pub fn raise_descriptors() -> u64 {
    8192
}

/// How many client connections to accept in all with `descriptors` available.
pub fn connection_bound(descriptors: u64) -> usize {
    let free = descriptors.saturating_sub(RESERVED).max(64);
    usize::try_from(free).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_keeps_descriptors_aside() {
        assert_eq!(connection_bound(20_000), 19_744);
        assert_eq!(connection_bound(1024), 768);
        assert_eq!(connection_bound(100), 64, "never less than 64");
    }

    #[cfg(unix)]
    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let soft = raise_descriptors();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(Some(soft), now.current.or(Some(1 << 20)));
        assert_eq!(now.current, now.maximum);
    }
}
