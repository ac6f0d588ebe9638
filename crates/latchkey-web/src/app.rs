//! The application as a value (`docs/ARCHITECTURE.md`, Conventions 1): `router(service,
//! web)`, every route (the API, the pages, forward-auth, `/healthz`, `/readyz`, `/metrics`)
//! with the body limit and the security headers (the CSP), for in-process tests and for
//! `serve`; and [`App`] to bind a listener, report its address and serve until told to stop,
//! finishing the requests in flight (SECURITY R4). Connections are served by `server.rs`,
//! HTTPS by `tls.rs` over it.

use std::{future::Future, io, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, header},
    routing::get,
};
use latchkey_service::{Service, Store};
use tokio::net::TcpListener;

use crate::{
    extract::BODY_LIMIT,
    fallback, health,
    server::Limits,
    state::{AppState, WebConfig},
};

/// The label of the sealing-key subkey that form tokens are derived with.
const CSRF_KEY_LABEL: &str = "latchkey/csrf/v1";

/// The pages' Content-Security-Policy (SPEC §6): nothing inline but SVG, nothing from
/// elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// All routes over `service`.
pub fn router<S: Store>(service: Service<S>, web: WebConfig) -> Router {
    let csrf_key = Arc::new(service.keyring().primary().derive(CSRF_KEY_LABEL));
    let https = web.secure_cookies;
    let state = AppState {
        service: Arc::new(service),
        web: Arc::new(web),
        csrf_key,
    };
    let router = crate::api::router::<S>()
        .merge(crate::pages::router::<S>())
        .merge(crate::oidc::router::<S>(state.clone()))
        .route("/auth/verify", get(crate::forward_auth::verify::<S>))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz::<S>))
        .route("/metrics", get(crate::metrics::on_main::<S>))
        .fallback(fallback::fallback)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_request(refuse_declared_oversize))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state);
    if https {
        router.layer(axum::middleware::map_response(strict_transport_security))
    } else {
        router
    }
}

/// When the public URL is `https://` (TLS here or in a proxy in front), browsers are told to
/// use nothing else for a year: a later plain-HTTP link or a stripped redirect cannot carry the
/// session cookie in clear. Not sent in loopback development, where the URL is plain HTTP.
async fn strict_transport_security(
    mut response: axum::response::Response,
) -> axum::response::Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// A request whose `Content-Length` is over [`BODY_LIMIT`] is answered 413 at once, before any
/// of its body is read (SECURITY R6); a body without a length is cut at the limit as it is read.
async fn refuse_declared_oversize(
    req: axum::extract::Request,
) -> Result<axum::extract::Request, crate::problem::Problem> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(crate::problem::Problem::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {BODY_LIMIT} bytes"),
        ));
    }
    Ok(req)
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A bound server.
pub struct App {
    pub(crate) listener: TcpListener,
    pub(crate) router: Router,
    pub(crate) limits: Limits,
}

impl App {
    /// Bind `addr` (port 0 picks a free port), with the default [`Limits`].
    pub async fn bind(addr: SocketAddr, router: Router) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            router,
            limits: Limits::default(),
        })
    }

    /// The same server under `limits`.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve plain HTTP until `shutdown` resolves, then stop accepting and let requests in
    /// flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        crate::server::serve(self.listener, self.router, None, self.limits, shutdown).await
    }
}
