//! Rebuild the crate when a migration is added or changed: `sqlx::migrate!` embeds the files
//! of `migrations/` but, on stable Rust, does not tell cargo to watch that directory, so an
//! incremental build could otherwise ship without a new migration.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
