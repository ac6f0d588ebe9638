//! HTTPS in the server itself (SPEC §7: `serve --tls-cert FILE --tls-key FILE`, PEM): rustls
//! on the `ring` provider, TLS 1.2 and 1.3 with rustls' safe defaults, HTTP/1.1 (ALPN
//! `http/1.1`). Without these flags the server speaks plain HTTP and expects a TLS-terminating
//! proxy in front. Connections are served by `server.rs` in both modes, under the same limits
//! (a handshake must finish in 10 s) and with the same graceful stop (SECURITY R4, R6).

use std::{future::Future, io, path::Path, sync::Arc};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};

use crate::app::App;

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
    /// finish, under the same limits as plain HTTP (`server.rs`).
    pub async fn run_tls_until_stopped(
        self,
        tls: Arc<ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let acceptor = TlsAcceptor::from(tls);
        crate::server::serve(
            self.listener,
            self.router,
            Some(acceptor),
            self.limits,
            shutdown,
        )
        .await
    }
}
