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

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use latchkey_service::{Service, Store};

pub use crate::metrics_access::{IpNet, MetricsAccess, loopback};
use crate::{extract::client_ip, problem::Problem, state::AppState};

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
