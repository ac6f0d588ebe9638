//! Opening what every command needs: the validated settings, the database (migrated), the
//! sealing key checked against the database, and the service over them.

use std::sync::Arc;

use anyhow::Context as _;
use latchkey_service::{Service, SystemClock, store::DatabaseStore};
use latchkey_store::{AnyStore, SqliteStore};

use crate::{
    config::Settings,
    keys::{self, KeySource},
};

pub struct Context {
    pub settings: Settings,
    pub service: Service<AnyStore>,
    pub key_source: KeySource,
}

/// Open everything. Only `create` (the server and `migrate`) may start a new database: a
/// mistyped `--database` or another working directory must not silently make an empty one.
pub async fn open(settings: Settings, create: bool) -> anyhow::Result<Context> {
    let url = &settings.database;
    let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_postgres {
        let path = SqliteStore::path_of(url)?;
        if !create && !path.exists() {
            anyhow::bail!(
                "there is no database at {}: start the server once (`latchkey serve`) or run `latchkey migrate` to create it, or pass --database",
                path.display()
            );
        }
    }
    let store = AnyStore::open(url, settings.database_connections).await?;
    let recorded = store
        .key_fingerprint()
        .await
        .context("cannot read the database")?;
    let env_key = std::env::var("LATCHKEY_SECRET_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (keyring, key_source) =
        keys::load(env_key.as_deref(), &settings.key_file, recorded.as_deref())?;
    let service = Service::start(
        store,
        Arc::new(SystemClock),
        keyring,
        settings.service.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Context {
        settings,
        service,
        key_source,
    })
}
