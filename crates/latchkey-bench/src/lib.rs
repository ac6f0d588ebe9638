//! What the benchmark programs share: bulk seeding of users into an environment.

pub mod seed;
