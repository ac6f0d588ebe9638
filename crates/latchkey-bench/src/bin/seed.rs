//! `latchkey-seed DB ENV USERS [PREFIX]`: bulk-insert USERS users into the existing
//! environment ENV of the SQLite database DB (one transaction), for figures at scale. A third
//! get an authenticator, half a session. Prints the time taken.

use anyhow::Context;
use latchkey_bench::seed::{Seed, seed_sqlite};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: latchkey-seed DB ENV USERS [PREFIX]";
    let db = args.first().context(usage)?;
    let env = args.get(1).context(usage)?;
    let users: u64 = args.get(2).context(usage)?.parse().context(usage)?;
    let prefix = args.get(3).map_or("seed", String::as_str);
    let path = std::path::Path::new(db.strip_prefix("sqlite://").unwrap_or(db));
    let took = seed_sqlite(
        path,
        &Seed {
            env,
            prefix,
            users,
            mfa_every: 3,
            session_every: 2,
        },
    )
    .await?;
    println!(
        "seeded {users} users into {env} in {:.2} s",
        took.as_secs_f64()
    );
    Ok(())
}
