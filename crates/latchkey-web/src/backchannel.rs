//! Delivering back-channel logout tokens (SPEC §9): one HTTP/1.1 POST per token, form-encoded
//! `logout_token=…`, over TLS (the system's CA certificates) for `https` URIs, within ten
//! seconds. A 2xx answer is a delivery; anything else is retried by the service's queue.

use std::{sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{Request, body::Bytes, header};
use hyper_util::rt::TokioIo;
use latchkey_service::oidc::logout::LogoutDelivery;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, rustls};

/// How long one delivery may take, connection included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts logout tokens over HTTP(S).
#[derive(Clone, Default)]
pub struct HttpDelivery {
    /// Made at the first `https` delivery: the system's CA certificates cost memory that a
    /// server with no back-channel URI never needs.
    tls: Arc<std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

/// A TLS client trusting the system's CA certificates (those that load).
fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl HttpDelivery {
    pub fn new() -> Self {
        Self::default()
    }

    async fn send(&self, uri: &str, logout_token: &str) -> Result<(), String> {
        let url = url::Url::parse(uri).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("no port")?;
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let body = format!(
            "logout_token={}",
            url::form_urlencoded::byte_serialize(logout_token.as_bytes()).collect::<String>()
        );
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let request = Request::post(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let status = if url.scheme() == "https" {
            let name =
                rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| e.to_string())?;
            let config = self.tls.get_or_init(client_config).clone()?;
            let tls = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            exchange(TokioIo::new(tls), request).await?
        } else {
            exchange(TokioIo::new(tcp), request).await?
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<hyper::StatusCode, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    driver.abort();
    answer.map(|r| r.status())
}

impl LogoutDelivery for HttpDelivery {
    async fn post(&self, uri: &str, logout_token: &str) -> Result<(), String> {
        tokio::time::timeout(DELIVERY_TIMEOUT, self.send(uri, logout_token))
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}
