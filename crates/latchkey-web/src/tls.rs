//! HTTPS in the server itself (SPEC §7: `serve --tls-cert FILE --tls-key FILE`, PEM): rustls
//! on the `ring` provider, TLS 1.2 and 1.3 with rustls' safe defaults, HTTP/1.1 (ALPN
//! `http/1.1`). Without these flags the server speaks plain HTTP and expects a TLS-terminating
//! proxy in front. A handshake or a request head that does not arrive in time is dropped, and
//! SIGTERM lets the requests in flight finish, as in plain HTTP (SECURITY R4).

use std::{future::Future, io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::extract::ConnectInfo;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tower::Service;

use crate::app::App;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// After SIGTERM, requests in flight get this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Read a PEM certificate chain and private key into a server configuration. Every failure
/// says which file and what is wrong with it.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {}: no PEM certificate in the file",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key do not make a pair: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl App {
    /// Serve HTTPS until `shutdown` resolves, then stop accepting and let requests in flight
    /// finish (at most [`DRAIN_TIMEOUT`]).
    pub async fn run_tls_until_stopped(
        self,
        tls: Arc<ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let acceptor = TlsAcceptor::from(tls);
        let graceful = GracefulShutdown::new();
        let App { listener, router } = self;
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
            let acceptor = acceptor.clone();
            let router = router.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = tower::service_fn(
                    move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                        // A router is always ready: no `poll_ready` needed.
                        let mut router = router.clone();
                        <axum::Router as Service<axum::extract::Request>>::call(
                            &mut router,
                            req.map(axum::body::Body::new),
                        )
                    },
                );
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let _ = watcher.watch(conn).await;
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
        Ok(())
    }
}
