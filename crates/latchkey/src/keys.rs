//! The sealing key for TOTP secrets (SPEC §7): `LATCHKEY_SECRET_KEY` (base64 of 32 bytes) or a
//! key file. Against an empty database a missing key file is created with mode 0600; against a
//! database initialised with another key every command refuses to start. The key is never
//! printed; only its fingerprint is.

use std::{io::Write, path::Path};

use anyhow::{Context, bail};
use latchkey_core::sealing::{Keyring, SealingKey};

/// Where the key came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File,
    CreatedFile,
}

/// Load the key. `initialised` is the fingerprint the database recorded, if any.
pub fn load(
    env_key: Option<&str>,
    key_file: &Path,
    initialised: Option<&str>,
) -> anyhow::Result<(Keyring, KeySource)> {
    if let Some(text) = env_key {
        let key = SealingKey::from_base64(text)
            .map_err(|e| anyhow::anyhow!("LATCHKEY_SECRET_KEY: {e}"))?;
        return Ok((Keyring::new(key), KeySource::Environment));
    }
    match std::fs::read_to_string(key_file) {
        Ok(text) => {
            let key = SealingKey::from_base64(&text)
                .map_err(|e| anyhow::anyhow!("key file {}: {e}", key_file.display()))?;
            warn_if_readable_by_others(key_file);
            Ok((Keyring::new(key), KeySource::File))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(fingerprint) = initialised {
                bail!(
                    "the key file {} does not exist, but this database was initialised with the key \
                     whose fingerprint is {fingerprint}; restore that key file or set LATCHKEY_SECRET_KEY",
                    key_file.display()
                );
            }
            let key = SealingKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
            write_new_key_file(key_file, key.to_base64().expose())?;
            Ok((Keyring::new(key), KeySource::CreatedFile))
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the key file {}", key_file.display()))
        }
    }
}

/// Create the key file, readable by its owner only, refusing to overwrite anything.
fn write_new_key_file(path: &Path, base64: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    writeln!(file, "{base64}")
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    // Make the new directory entry durable too: the database records this key's fingerprint
    // next, and a crash must not leave that without the file.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A key file others can read defeats encryption at rest: say so on every start.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "latchkey: warning: the key file {} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}
