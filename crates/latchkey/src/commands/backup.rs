//! `latchkey backup FILE`: a consistent copy of the database while the server runs.

use std::path::Path;

use super::fail;
use crate::context::Context;

pub async fn run(ctx: &Context, file: &Path) -> anyhow::Result<()> {
    ctx.service.backup(file).await.map_err(fail)?;
    println!(
        "Wrote a consistent copy of the database to {}.",
        file.display()
    );
    println!(
        "Keep the key file (or LATCHKEY_SECRET_KEY) with it: without the key, TOTP secrets cannot be read."
    );
    Ok(())
}
