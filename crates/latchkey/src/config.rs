//! Configuration: defaults < TOML file (`--config`) < `LATCHKEY_*` environment variables <
//! command-line flags, then validated once at start-up with messages that say what to fix.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use latchkey_core::{HumanDuration, model::Email, password::HashCost};
use latchkey_service::ServiceConfig;
use latchkey_web::{
    metrics::{IpNet, MetricsAccess},
    server::Limits,
};
use serde::{Deserialize, Deserializer, Serialize};

/// The keys that `LATCHKEY_*` variables may set (`LATCHKEY_PUBLIC_URL` sets `public_url`).
/// `LATCHKEY_SECRET_KEY` is read separately and never enters the configuration.
const ENV_KEYS: &[&str] = &[
    "listen",
    "database",
    "database_connections",
    "public_url",
    "key_file",
    "operator_email",
    "log_format",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "hash_workers",
    "hash_queue",
    "invite_ttl",
    "reset_ttl",
    "allowed_redirect_hosts",
    "trusted_proxies",
    "tls_cert",
    "tls_key",
    "metrics_allow",
    "metrics_listen",
    "max_connections_per_client",
    "header_timeout",
    "body_timeout",
    "idle_timeout",
];

/// The configuration as read, before validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database: String,
    pub database_connections: u32,
    pub public_url: String,
    pub key_file: PathBuf,
    pub operator_email: String,
    pub log_format: LogFormat,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_workers: Option<usize>,
    pub hash_queue: Option<usize>,
    pub invite_ttl: String,
    pub reset_ttl: String,
    #[serde(deserialize_with = "list")]
    pub allowed_redirect_hosts: Vec<String>,
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain: with `tls_key`, `serve` speaks HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Client addresses or networks that may read `/metrics` on the main listener.
    #[serde(deserialize_with = "list")]
    pub metrics_allow: Vec<String>,
    /// A listener of its own for `/metrics` (then not served on the main one).
    pub metrics_listen: Option<String>,
    /// Connections one client address may hold (behind a trusted proxy: requests in flight).
    pub max_connections_per_client: usize,
    /// A request head must arrive within this.
    pub header_timeout: String,
    /// A request body must arrive within this of its head.
    pub body_timeout: String,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        let cost = HashCost::default();
        Self {
            listen: "127.0.0.1:8080".into(),
            database: "sqlite://latchkey.db".into(),
            database_connections: 10,
            public_url: "http://127.0.0.1:8080".into(),
            key_file: PathBuf::from("latchkey.key"),
            operator_email: "admin@localhost".into(),
            log_format: LogFormat::Text,
            argon2_memory_kib: cost.memory_kib,
            argon2_iterations: cost.iterations,
            argon2_parallelism: cost.parallelism,
            hash_workers: None,
            hash_queue: None,
            invite_ttl: "7d".into(),
            reset_ttl: "24h".into(),
            allowed_redirect_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            metrics_allow: vec!["127.0.0.0/8".into(), "::1".into()],
            metrics_listen: None,
            max_connections_per_client: 256,
            header_timeout: "10s".into(),
            body_timeout: "15s".into(),
            idle_timeout: "60s".into(),
        }
    }
}

/// A list given as a TOML array or as one comma-separated string (environment variables).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Flags that override the file and the environment (only those given).
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Config {
    /// Merge the sources in order of precedence.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!("the configuration file {} does not exist", path.display());
            }
            std::fs::File::open(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed("LATCHKEY_").only(ENV_KEYS))
            .merge(Serialized::globals(overrides));
        figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }
}

/// The public URL, checked: `https://`, or plain `http://` on a loopback host only.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    pub url: String,
    pub https: bool,
}

impl PublicUrl {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim().trim_end_matches('/');
        let bad = || {
            anyhow::anyhow!(
                "public URL `{text}` is not valid: write it like https://auth.example.com or http://127.0.0.1:8080"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if path.contains(['?', '#'])
            || authority.is_empty()
            || authority.contains('@')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let host = if let Some(inner) = authority.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(bad)?;
            if !(after.is_empty()
                || after
                    .strip_prefix(':')
                    .is_some_and(|p| p.parse::<u16>().is_ok()))
            {
                return Err(bad());
            }
            h
        } else {
            let (h, port) = authority
                .split_once(':')
                .map_or((authority, None), |(h, p)| (h, Some(p)));
            if port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err(bad());
            }
            h
        };
        if host.is_empty() {
            return Err(bad());
        }
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !https && !loopback {
            bail!(
                "public URL `{text}` is plain http:// on a non-loopback host; session cookies would \
                 travel in clear. Use https:// (terminate TLS in a proxy or pass --tls-cert/--tls-key), \
                 or http://127.0.0.1 for local development"
            );
        }
        Ok(Self {
            url: text.to_owned(),
            https,
        })
    }

    /// Plain HTTP on loopback: the cookie drops `__Host-` and `Secure` (SPEC §7).
    pub fn is_local_development(&self) -> bool {
        !self.https
    }
}

/// The configuration, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: String,
    /// Connections each node keeps to PostgreSQL.
    pub database_connections: u32,
    pub public_url: PublicUrl,
    pub key_file: PathBuf,
    pub operator_email: Email,
    pub log_format: LogFormat,
    pub service: ServiceConfig,
    pub trusted_proxies: Vec<IpAddr>,
    /// Hosts a `rd` may send a browser back to after login (any port).
    pub allowed_redirect_hosts: Vec<String>,
    /// Certificate chain and key when the server speaks HTTPS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where `/metrics` is served and to whom.
    pub metrics: MetricsAccess,
    /// The address of the `/metrics` listener, when it has one of its own.
    pub metrics_listen: Option<SocketAddr>,
    /// Read timeouts and connection bounds (the total is set at start from the descriptor
    /// limit).
    pub limits: Limits,
}

impl Settings {
    pub fn validate(config: Config) -> anyhow::Result<Self> {
        let listen: SocketAddr = config.listen.parse().map_err(|_| {
            anyhow::anyhow!(
                "listen address `{}` is not valid: write it like 127.0.0.1:8080 or [::]:8080",
                config.listen
            )
        })?;
        let public_url = PublicUrl::parse(&config.public_url)?;
        if public_url.is_local_development() && !listen.ip().is_loopback() {
            bail!(
                "public URL {} is plain HTTP, which is for local development on a loopback address, \
                 but the server would listen on {listen}; use an https:// public URL (behind TLS) \
                 or listen on 127.0.0.1",
                public_url.url
            );
        }
        // Checked as a new address only when the operator is created (bootstrap): an address
        // accepted by an older release must not stop every command from starting.
        let operator_email = Email::from_stored(&config.operator_email)
            .map_err(|e| anyhow::anyhow!("operator email `{}`: {e}", config.operator_email))?;
        let hash_cost = HashCost {
            memory_kib: config.argon2_memory_kib,
            iterations: config.argon2_iterations,
            parallelism: config.argon2_parallelism,
        }
        .validate()
        .map_err(anyhow::Error::msg)?;
        let ttl = |name: &str, v: &str| -> anyhow::Result<HumanDuration> {
            v.parse().map_err(|e| anyhow::anyhow!("{name} `{v}`: {e}"))
        };
        let mut service = ServiceConfig::new(&public_url.url);
        service.hash_cost = hash_cost;
        service.invite_ttl = ttl("invite_ttl", &config.invite_ttl)?;
        service.reset_ttl = ttl("reset_ttl", &config.reset_ttl)?;
        if let Some(w) = config.hash_workers {
            if w == 0 || w > 1024 {
                bail!("hash_workers must be between 1 and 1024");
            }
            service.hash_workers = w;
            service.hash_queue = w * 32;
        }
        if let Some(q) = config.hash_queue {
            if q < service.hash_workers {
                bail!(
                    "hash_queue must be at least hash_workers ({})",
                    service.hash_workers
                );
            }
            service.hash_queue = q;
        }
        if !(1..=1000).contains(&config.database_connections) {
            bail!("database_connections must be between 1 and 1000");
        }
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpAddr>()
                    .map_err(|_| anyhow::anyhow!("trusted_proxies: `{p}` is not an IP address"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for h in &config.allowed_redirect_hosts {
            if h.contains('/') || h.contains(':') || h.contains('@') || h.trim().is_empty() {
                bail!(
                    "allowed_redirect_hosts: `{h}` is not a host name; write hosts only, like \
                     app.example.com (any port is allowed)"
                );
            }
        }
        let tls = tls_settings(config.tls_cert, config.tls_key, &public_url)?;
        let (metrics, metrics_listen) = metrics_settings(
            &config.metrics_allow,
            config.metrics_listen.as_deref(),
            listen,
        )?;
        let limits = Limits {
            header_timeout: timeout("header_timeout", &config.header_timeout)?,
            body_timeout: timeout("body_timeout", &config.body_timeout)?,
            idle_timeout: timeout("idle_timeout", &config.idle_timeout)?,
            per_client: config.max_connections_per_client,
            trusted_proxies: trusted_proxies.clone(),
            ..Limits::default()
        };
        if !(1..=100_000).contains(&limits.per_client) {
            bail!("max_connections_per_client must be between 1 and 100000");
        }
        Ok(Self {
            tls,
            metrics,
            limits,
            metrics_listen,
            allowed_redirect_hosts: config.allowed_redirect_hosts,
            listen,
            database: config.database,
            database_connections: config.database_connections,
            public_url,
            key_file: config.key_file,
            operator_email,
            log_format: config.log_format,
            service,
            trusted_proxies,
        })
    }
}

/// A read timeout: a duration from 1 s to 1 h.
fn timeout(name: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    let d: HumanDuration = value
        .parse()
        .map_err(|e| anyhow::anyhow!("{name} `{value}`: {e}"))?;
    let secs = d.as_secs_i64();
    if !(1..=3600).contains(&secs) {
        bail!("{name} must be between 1s and 1h (it is {value})");
    }
    Ok(std::time::Duration::from_secs(secs.unsigned_abs()))
}

/// The certificate and key, given both or neither, with an https public URL.
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    public_url: &PublicUrl,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => {
            if !public_url.url.starts_with("https://") {
                bail!(
                    "with tls_cert and tls_key the server speaks HTTPS: set the public URL to \
                     https://… (it is {})",
                    public_url.url
                );
            }
            Some((cert, key))
        }
        (None, None) => None,
        _ => {
            bail!("give both tls_cert and tls_key (--tls-cert FILE --tls-key FILE), or neither")
        }
    })
}

/// Where `/metrics` is served: on a listener of its own, or on the main one to `allow`.
fn metrics_settings(
    allow: &[String],
    listen_on: Option<&str>,
    listen: SocketAddr,
) -> anyhow::Result<(MetricsAccess, Option<SocketAddr>)> {
    let metrics_allow = allow
        .iter()
        .map(|n| IpNet::parse(n).map_err(|e| anyhow::anyhow!("metrics_allow: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metrics_listen = listen_on
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                anyhow::anyhow!("metrics_listen `{a}` is not valid: write it like 127.0.0.1:9090")
            })
        })
        .transpose()?;
    if metrics_listen.is_some_and(|m| m == listen && listen.port() != 0) {
        bail!("metrics_listen must be another address than listen ({listen})");
    }
    let access = if metrics_listen.is_some() {
        MetricsAccess::Separate
    } else {
        MetricsAccess::Main(metrics_allow)
    };
    Ok((access, metrics_listen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        for ok in [
            "https://auth.example.com",
            "https://auth.example.com/",
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9000",
            "https://x.example/base",
        ] {
            assert!(PublicUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "auth.example.com",
            "ftp://x.example",
            "http://auth.example.com",
            "http://10.0.0.1",
            "https://",
            "https://a@b.example",
            "https://x.example?a=b",
            "https://x.example:99999",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrl::parse("https://a.example/")
                .map(|u| u.url)
                .ok()
                .as_deref(),
            Some("https://a.example")
        );
    }

    #[test]
    fn metrics_settings() {
        let with = |allow: &[&str], listen: Option<&str>| {
            Settings::validate(Config {
                metrics_allow: allow.iter().map(|s| (*s).to_owned()).collect(),
                metrics_listen: listen.map(str::to_owned),
                ..Config::default()
            })
        };
        let s = with(&["10.0.0.0/8", "192.0.2.1"], None).map(|s| s.metrics);
        assert!(
            matches!(&s, Ok(MetricsAccess::Main(nets)) if nets.len() == 2),
            "{s:?}"
        );
        let s = with(&[], Some("127.0.0.1:9090"));
        assert!(
            s.as_ref()
                .is_ok_and(|s| s.metrics == MetricsAccess::Separate
                    && s.metrics_listen == "127.0.0.1:9090".parse().ok()),
            "{s:?}"
        );
        let e = with(&["10.0.0.0/40"], None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("metrics_allow") && e.contains("10.0.0.0/40"),
            "{e}"
        );
        let e = with(&[], Some("nine"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("metrics_listen"), "{e}");
        let e = with(&[], Some("127.0.0.1:8080"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("another address"), "{e}");
    }

    #[test]
    fn defaults_validate() {
        let s = Settings::validate(Config::default());
        assert!(s.is_ok(), "{s:?}");
    }
}
