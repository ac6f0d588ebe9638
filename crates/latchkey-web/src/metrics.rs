//! `GET /metrics` (SPEC §12): the service's counters in the Prometheus text format, to the
//! client addresses of `metrics_allow` only (default: loopback), 403 to anyone else; or, with
//! `metrics_listen`, on a listener of its own and no longer on the main one.
//!
//! The client address is the one `X-Forwarded-For` names when the peer is a trusted proxy; a
//! request from a trusted proxy whose `X-Forwarded-For` names no client beyond the proxies is
//! refused. A request that carries forwarding headers from a peer that is *not* trusted is
//! refused too: it comes through a proxy we were not told about (a loopback proxy would
//! otherwise make every client look local). A proxy that forwards without any such header
//! (TCP or TLS pass-through, a tunnel) cannot be told from a local client: `docs/OPERATIONS.md`
//! says to use `metrics_listen` or a narrow `metrics_allow` there.

use std::net::{IpAddr, SocketAddr};

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use latchkey_service::{Service, Store};

use crate::{extract::client_ip, problem::Problem, state::AppState};

/// An address or a network in CIDR notation (`127.0.0.0/8`, `::1`, `10.1.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `ADDR` or `ADDR/PREFIX`; an address alone is one host.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not an address or a network like 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32),
            IpAddr::V6(v6) => (v6.to_bits(), 128),
        };
        let (net, width) = bits(self.addr);
        let (ip, ip_width) = bits(ip.to_canonical());
        if width != ip_width {
            return false;
        }
        let host_bits = u32::from(width - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        net & mask == ip & mask
    }
}

/// The loopback networks: the default of `metrics_allow`.
pub fn loopback() -> Vec<IpNet> {
    vec![
        IpNet {
            addr: IpAddr::from([127, 0, 0, 0]),
            prefix: 8,
        },
        IpNet {
            addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            prefix: 128,
        },
    ]
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// On the main listener, to these client networks.
    Main(Vec<IpNet>),
    /// On a listener of its own (`metrics_listen`): not on the main one.
    Separate,
}

impl Default for MetricsAccess {
    fn default() -> Self {
        Self::Main(loopback())
    }
}

/// `GET /metrics` on the main listener.
pub(crate) async fn on_main<S: Store>(State(st): State<AppState<S>>, parts: Parts) -> Response {
    let allowed = match &st.web.metrics {
        MetricsAccess::Separate => return Problem::not_found().into_response(),
        MetricsAccess::Main(allowed) => allowed,
    };
    let Some(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return forbidden();
    };
    let trusted = &st.web.trusted_proxies;
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| parts.headers.contains_key(*h));
    let peer_trusted = trusted
        .iter()
        .any(|t| t.to_canonical() == peer.to_canonical());
    if forwarded && !peer_trusted {
        return forbidden();
    }
    let client = client_ip(peer, &parts, trusted);
    // From a trusted proxy, the client must be named by an `X-Forwarded-For` hop the proxy
    // added: when the walk ends on a trusted address (no header, a hop that is not an address,
    // or a proxy that only sends `X-Real-IP`/`Forwarded`), the client is unknown.
    let client_is_proxy = trusted
        .iter()
        .any(|t| t.to_canonical() == client.to_canonical());
    if peer_trusted && client_is_proxy {
        return forbidden();
    }
    if !allowed.iter().any(|net| net.contains(client)) {
        return forbidden();
    }
    text(&st.service)
}

fn forbidden() -> Response {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "metrics are served only to the addresses in metrics_allow",
    )
    .into_response()
}

fn text<S: Store>(service: &Service<S>) -> Response {
    let mut r = service.render_metrics().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// The router of a `metrics_listen` listener: `GET /metrics` to whoever reaches it (the
/// operator chose the address), and nothing else.
pub fn router<S: Store>(service: Service<S>) -> Router {
    let service = std::sync::Arc::new(service);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let service = std::sync::Arc::clone(&service);
                async move { text(&service) }
            }),
        )
        .fallback(|| async { Problem::not_found() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn networks() {
        let lo = loopback();
        for inside in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(lo.iter().any(|n| n.contains(ip(inside))), "{inside}");
        }
        for outside in ["128.0.0.1", "10.0.0.1", "::2", "fe80::1"] {
            assert!(!lo.iter().any(|n| n.contains(ip(outside))), "{outside}");
        }
        let net = IpNet::parse("10.1.0.0/16").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        let host = IpNet::parse(" 192.0.2.7 ").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let all = IpNet::parse("0.0.0.0/0").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "10.0.0.0/-1",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }
}
