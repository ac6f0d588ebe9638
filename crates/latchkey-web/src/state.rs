//! What every handler shares: the service and the web settings.

use std::{net::IpAddr, sync::Arc};

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
}

impl WebConfig {
    /// Settings for a public URL (`https://…`, or plain `http://` on loopback).
    pub fn for_public_url(public_url: &str, trusted_proxies: Vec<IpAddr>) -> Self {
        let url = public_url.trim_end_matches('/');
        let origin_end = url.find("://").map_or(url.len(), |i| {
            url[i + 3..].find('/').map_or(url.len(), |j| i + 3 + j)
        });
        // Browsers leave default ports out of `Origin`.
        let origin = url[..origin_end].to_ascii_lowercase();
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
        }
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-latchkey_session"
        } else {
            "latchkey_session"
        }
    }
}

/// The router's state.
pub struct AppState<S> {
    pub service: Service<S>,
    pub web: Arc<WebConfig>,
}

impl<S> Clone for AppState<S>
where
    Service<S>: Clone,
{
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            web: Arc::clone(&self.web),
        }
    }
}
