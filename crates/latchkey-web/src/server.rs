//! Serving connections, in plain HTTP or TLS, under the limits that keep slow, stalled or
//! greedy clients from exhausting the server (SECURITY R6), and stopping gracefully (R4).
//!
//! - A request head must arrive within `header_timeout` of the connection's start (or of the
//!   end of the previous request); a body within `body_timeout` of the handler starting to
//!   read it (at once, for every handler that takes one); a connection with no request in
//!   flight is closed after `idle_timeout`.
//! - One client address (an IPv6 /64 counts as one) holds at most `per_client` connections:
//!   past that a new connection is closed at once, so one client can never hold them all.
//!   Connections from a trusted proxy are not counted against the proxy (it carries many
//!   clients); their requests in flight are counted against the address the proxy forwards
//!   instead, with the same bound.
//! - At most `total` connections in all (the binary derives it from the descriptor limit).
//!
//! Never reads a request body itself and never logs a request's content.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo, http::StatusCode, response::IntoResponse};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{mpsc, watch},
};
use tokio_rustls::TlsAcceptor;
use tower::Service;

use crate::problem::Problem;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the stop, requests in flight get this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest interval between a connection's idle checks.
const IDLE_CHECK_MIN: Duration = Duration::from_millis(250);

/// The limits of [`serve`].
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub per_client: usize,
    pub total: usize,
    /// Peers whose `X-Forwarded-For` is believed (the same list as the router's).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_mins(1),
            per_client: 256,
            total: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Connections (or, behind a proxy, requests) held per client address, and in all.
#[derive(Debug, Default)]
struct Counts {
    per_client: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
}

/// The key a client's connections are counted under: its IPv4 address, or its IPv6 /64 (one
/// subscriber usually holds a whole /64, and could otherwise take the bound once per address).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from_bits(
            v6.to_bits() & !u128::from(u64::MAX),
        )),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// A place taken in [`Counts`], given back when dropped.
struct Place {
    counts: Arc<Counts>,
    client: Option<IpAddr>,
    in_total: bool,
}

impl Counts {
    /// A place for `client` (and, with `in_total`, one of the `total`), or `None` when full.
    fn take(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        in_total: bool,
        limits: &Limits,
    ) -> Option<Place> {
        if in_total && self.total.fetch_add(1, Relaxed) >= limits.total {
            self.total.fetch_sub(1, Relaxed);
            return None;
        }
        let mut place = Place {
            counts: Arc::clone(self),
            client: None,
            in_total,
        };
        let Some(ip) = client.map(client_key) else {
            return Some(place);
        };
        let mut map = self
            .per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = map.entry(ip).or_insert(0);
        if *held >= limits.per_client {
            // `place` gives back its place in the total when dropped here.
            return None;
        }
        *held += 1;
        drop(map);
        place.client = Some(ip);
        Some(place)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.in_total {
            self.counts.total.fetch_sub(1, Relaxed);
        }
        if let Some(ip) = self.client {
            let mut map = self
                .counts
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = map.get_mut(&ip) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

/// Accept connections on `listener` (TLS with `tls`) and serve `router` on them until
/// `shutdown` resolves; then stop accepting, close idle connections, and let requests in
/// flight finish (at most [`DRAIN_TIMEOUT`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let counts = Arc::new(Counts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are dropped, every connection ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let from_proxy = limits
            .trusted_proxies
            .iter()
            .any(|t| t.to_canonical() == ip);
        let Some(place) = counts.take((!from_proxy).then_some(ip), true, &limits) else {
            tracing::debug!(%ip, "connection refused: the client holds too many");
            drop(tcp);
            continue;
        };
        let conn = Conn {
            router: router.clone(),
            peer,
            from_proxy,
            limits: Arc::clone(&limits),
            counts: Arc::clone(&counts),
            stop: stop_rx.clone(),
        };
        let tls = tls.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let _place = place;
            match tls {
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        conn.run(stream).await;
                    }
                }
                None => conn.run(tcp).await,
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv()).await;
    Ok(())
}

/// One accepted connection.
struct Conn {
    router: Router,
    peer: SocketAddr,
    from_proxy: bool,
    limits: Arc<Limits>,
    counts: Arc<Counts>,
    stop: watch::Receiver<bool>,
}

/// Requests in flight on a connection, and when the last one ended.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_millis: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_millis.load(Relaxed));
        Some(self.started.elapsed().saturating_sub(last))
    }
}

impl Conn {
    async fn run<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            router,
            peer,
            from_proxy,
            limits,
            counts,
            mut stop,
        } = self;
        let activity = Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_millis: AtomicU64::new(0),
        });
        let service = {
            let (limits, activity) = (Arc::clone(&limits), Arc::clone(&activity));
            tower::service_fn(move |mut req: axum::extract::Request<Incoming>| {
                activity.in_flight.fetch_add(1, Relaxed);
                // Behind a trusted proxy, the forwarded client's requests in flight count.
                let place = if from_proxy {
                    let (parts, body) = req.into_parts();
                    let client =
                        crate::extract::client_ip(peer.ip(), &parts, &limits.trusted_proxies);
                    req = axum::extract::Request::from_parts(parts, body);
                    counts.take(Some(client.to_canonical()), false, &limits)
                } else {
                    None
                };
                let refused = from_proxy && place.is_none();
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                let timeout = limits.body_timeout;
                let req = req.map(|body| {
                    axum::body::Body::new(TimedBody {
                        body,
                        timeout,
                        deadline: None,
                    })
                });
                // A router is always ready: no `poll_ready` needed.
                let mut router = router.clone();
                let activity = Arc::clone(&activity);
                async move {
                    let response = if refused {
                        too_many().into_response()
                    } else {
                        <Router as Service<axum::extract::Request>>::call(&mut router, req)
                            .await
                            .unwrap_or_else(|never| match never {})
                    };
                    drop(place);
                    activity.in_flight.fetch_sub(1, Relaxed);
                    activity.touch();
                    Ok::<_, std::convert::Infallible>(response)
                }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(conn);
        // A quarter of the idle timeout: an idle connection closes within 1.25 × the timeout,
        // and 10,000 open connections wake about 700 times a second at the default 60 s, not
        // 20,000 times as with a fixed half-second check.
        let mut check = tokio::time::interval((limits.idle_timeout / 4).max(IDLE_CHECK_MIN));
        let mut closing = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                changed = stop.changed(), if !closing => {
                    // Stopping (or the server is gone): finish the request in flight, then close.
                    let _ = changed;
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = check.tick(), if !closing => {
                    if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// The answer when a forwarded client already has its share of requests in flight.
fn too_many() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "this client has too many requests in progress; try again in a moment",
    )
}

/// A request body that must arrive within `timeout` of the first read; past it, reading
/// fails. The deadline is set at the first read, so a request whose body nobody reads (a
/// session check) costs no timer.
struct TimedBody {
    body: Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error of a body that did not arrive in time.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_client_and_in_all_and_given_back() {
        let limits = Limits {
            per_client: 2,
            total: 3,
            ..Limits::default()
        };
        let counts = Arc::new(Counts::default());
        let a = Some(IpAddr::from([127, 0, 0, 1]));
        let b = Some(IpAddr::from([127, 0, 0, 2]));
        let a1 = counts.take(a, true, &limits);
        let a2 = counts.take(a, true, &limits);
        assert!(a1.is_some() && a2.is_some());
        assert!(
            counts.take(a, true, &limits).is_none(),
            "a third for one client"
        );
        let b1 = counts.take(b, true, &limits);
        assert!(b1.is_some());
        assert!(
            counts.take(b, true, &limits).is_none(),
            "the total is reached"
        );
        assert_eq!(
            counts.total.load(Relaxed),
            3,
            "a refusal gives its place back"
        );
        drop(a1);
        assert!(
            counts.take(a, true, &limits).is_some(),
            "a place given back"
        );
        drop((a2, b1));
        assert_eq!(counts.total.load(Relaxed), 0);
        assert!(
            counts
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        );
        // Requests of a forwarded client are not counted in the total.
        let r = counts.take(b, false, &limits);
        assert!(r.is_some());
        assert_eq!(counts.total.load(Relaxed), 0);
        drop(r);
        // One IPv6 /64 is one client, whichever of its addresses connects.
        let v6 = |s: &str| s.parse::<IpAddr>().ok();
        let c1 = counts.take(v6("2001:db8:1:2::10"), true, &limits);
        let c2 = counts.take(v6("2001:db8:1:2:ffff::1"), true, &limits);
        assert!(c1.is_some() && c2.is_some());
        assert!(counts.take(v6("2001:db8:1:2::99"), true, &limits).is_none());
        assert!(
            counts.take(v6("2001:db8:1:3::10"), true, &limits).is_some(),
            "another /64"
        );
    }
}
