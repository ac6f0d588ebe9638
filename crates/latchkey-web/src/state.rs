//! What every handler shares (`AppState`): the service, the web settings (`WebConfig`: the
//! public URL and origin, cookie names and attributes, trusted proxies, redirect hosts) and the
//! key form tokens are derived with.

use std::{net::IpAddr, sync::Arc};

use latchkey_core::SecretBytes;
use latchkey_service::Service;

/// Settings of the HTTP layer, derived from the validated configuration.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `scheme://host[:port]` of the public URL, for the `Origin` check.
    pub public_origin: String,
    /// `false` only in loopback plain-HTTP development (SPEC §7): the cookie then drops the
    /// `__Host-` prefix and `Secure`.
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// The public URL without a trailing `/`, for links in pages and forward-auth redirects.
    pub public_url: String,
    /// Hosts (lower case, any port) that a `rd` may send the browser back to (SPEC §5.2).
    pub allowed_redirect_hosts: Vec<String>,
    /// Where `GET /metrics` is served, and to whom (SPEC §12).
    pub metrics: crate::metrics_access::MetricsAccess,
}

impl WebConfig {
    /// Settings for a public URL (`https://…`, or plain `http://` on loopback).
    pub fn for_public_url(public_url: &str, trusted_proxies: Vec<IpAddr>) -> Self {
        let url = public_url.trim_end_matches('/');
        let origin_end = url.find("://").map_or(url.len(), |i| {
            url[i + 3..].find('/').map_or(url.len(), |j| i + 3 + j)
        });
        // Browsers send the origin in ASCII (punycode) and leave default ports out.
        let origin = url::Url::parse(url).map_or_else(
            |_| url[..origin_end].to_ascii_lowercase(),
            |u| u.origin().ascii_serialization(),
        );
        let origin = origin
            .strip_suffix(":443")
            .filter(|o| o.starts_with("https://"))
            .or_else(|| {
                origin
                    .strip_suffix(":80")
                    .filter(|o| o.starts_with("http://"))
            })
            .map_or_else(|| origin.clone(), str::to_owned);
        Self {
            public_origin: origin,
            secure_cookies: !url.starts_with("http://"),
            trusted_proxies,
            public_url: url.to_owned(),
            allowed_redirect_hosts: Vec::new(),
            metrics: crate::metrics_access::MetricsAccess::default(),
        }
    }

    /// The same settings with `/metrics` served as `access` says.
    #[must_use]
    pub fn with_metrics(mut self, access: crate::metrics_access::MetricsAccess) -> Self {
        self.metrics = access;
        self
    }

    /// The same settings with the hosts a `rd` may name.
    #[must_use]
    pub fn with_redirect_hosts(mut self, hosts: &[String]) -> Self {
        // As a URL parser writes them: lower case, international names in punycode.
        self.allowed_redirect_hosts = hosts
            .iter()
            .filter_map(|h| url::Host::parse(h.trim().trim_end_matches('.')).ok())
            .map(|h| h.to_string())
            .collect();
        self
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-latchkey_session"
        } else {
            "latchkey_session"
        }
    }

    /// The pages' CSRF cookie (a random value the form tokens are derived from).
    pub fn csrf_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-latchkey_csrf"
        } else {
            "latchkey_csrf"
        }
    }

    /// The start of the device cookies' names; the environment's slug follows. Set when a login
    /// completes, a device cookie exempts the browser from the address throttle for that user
    /// (`docs/SECURITY.md`, "Logins").
    pub fn device_cookie_prefix(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-latchkey_device_"
        } else {
            "latchkey_device_"
        }
    }

    /// The `Set-Cookie` value of `env`'s device cookie.
    pub fn device_cookie(&self, env: &str, value: &str) -> String {
        let name = format!("{}{env}", self.device_cookie_prefix());
        self.cookie(&name, value, latchkey_service::DEVICE_COOKIE_MAX_AGE)
    }

    /// The pages' pending-login cookie (the login token between the steps of a login).
    pub fn login_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-latchkey_login"
        } else {
            "latchkey_login"
        }
    }

    /// A `Set-Cookie` value: `Path=/; HttpOnly; SameSite=Lax`, `Secure` outside loopback
    /// development; a `max_age` of 0 deletes the cookie.
    pub fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }
}

/// The router's state.
pub struct AppState<S> {
    /// Behind an `Arc`: axum clones the state for every request, and one reference count is
    /// cheaper than the service's own.
    pub service: Arc<Service<S>>,
    pub web: Arc<WebConfig>,
    /// The key form tokens are derived with (a subkey of the sealing key, so every node of a
    /// deployment accepts every other node's forms).
    pub csrf_key: Arc<SecretBytes>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            service: Arc::clone(&self.service),
            web: Arc::clone(&self.web),
            csrf_key: Arc::clone(&self.csrf_key),
        }
    }
}
