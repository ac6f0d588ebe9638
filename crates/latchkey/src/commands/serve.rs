//! `latchkey serve`: first-start bootstrap (the operator's setup link printed once), then the
//! HTTP server — HTTPS with `--tls-cert` and `--tls-key` — and, with `metrics_listen`, the
//! `/metrics` listener, until SIGTERM or SIGINT; expired rows are purged every ten minutes, and
//! due back-channel logouts are sent every second.
//! [`Stop::listen`] registers the signal handlers; `main` calls it before anything else.

use latchkey_web::{App, WebConfig, router};

use super::fail;
use crate::{context::Context, keys::KeySource};

/// `stop` is set at SIGTERM or SIGINT; `main` registers it before anything else happens, so a
/// signal at any moment after start ends the server gracefully.
pub async fn run(ctx: Context, stop: Stop) -> anyhow::Result<()> {
    let Context {
        settings,
        service,
        key_source,
    } = ctx;
    if key_source == KeySource::CreatedFile {
        tracing::info!(path = %settings.key_file.display(), fingerprint = %service.keyring().primary().id_hex(), "created a new secret key file (mode 0600); back it up with the database");
    }
    let bootstrap = tokio::select! {
        done = service.bootstrap(&settings.operator_email) => done.map_err(fail)?,
        () = stop.clone().requested() => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    if let Some(link) = bootstrap {
        // The one deliberate exception to "no token in the output" (SPEC §7): printed once, on
        // stdout, never through the structured log.
        println!(
            "Operator setup link (valid {}): {}",
            link.valid_for, link.url
        );
    }
    if settings.public_url.is_local_development() {
        println!(
            "Local development mode: {} is plain HTTP on loopback, so the session cookie is `latchkey_session` without Secure.",
            settings.public_url.url
        );
    }
    let web = WebConfig::for_public_url(&settings.public_url.url, settings.trusted_proxies.clone())
        .with_redirect_hosts(&settings.allowed_redirect_hosts)
        .with_metrics(settings.metrics.clone());
    // Read the certificate before binding, so a bad file stops the start with its reason.
    let tls = match &settings.tls {
        Some((cert, key)) => Some(latchkey_web::tls::load(cert, key).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let descriptors = crate::limits::raise_descriptors();
    let limits = latchkey_web::server::Limits {
        total: crate::limits::connection_bound(descriptors),
        ..settings.limits.clone()
    };
    tracing::info!(
        descriptors,
        connections = limits.total,
        per_client = limits.per_client,
        "connection limits"
    );
    let app = App::bind(settings.listen, router(service.clone(), web))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?
        .with_limits(limits.clone());
    let addr = app.local_addr()?;
    let metrics = match settings.metrics_listen {
        Some(listen) => {
            let metrics_app = App::bind(listen, latchkey_web::metrics::router(service.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (metrics_listen): {e}"))?
                .with_limits(limits.clone());
            let metrics_addr = metrics_app.local_addr()?;
            tracing::info!(%metrics_addr, "metrics are served on a listener of their own");
            println!("Metrics on http://{metrics_addr}/metrics");
            Some(tokio::spawn(
                metrics_app.run_until_stopped(stop.clone().requested()),
            ))
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, public_url = %settings.public_url.url, tls = tls.is_some(), "latchkey is listening");
    println!("Listening on {scheme}://{addr}");
    let purger = tokio::spawn(purge_periodically(service.clone()));
    let logouts = tokio::spawn(deliver_logouts(service.clone()));
    let main_stop = stop.requested();
    match tls {
        Some(config) => app.run_tls_until_stopped(config, main_stop).await?,
        None => app.run_until_stopped(main_stop).await?,
    }
    if let Some(metrics) = metrics {
        match metrics.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the metrics listener failed"),
            Err(e) => tracing::warn!(error = %e, "the metrics listener ended abnormally"),
        }
    }
    purger.abort();
    logouts.abort();
    service.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Every ten minutes, delete rows nobody can use any more, so the database does not grow with
/// expired logins or with counters of guessed emails.
async fn purge_periodically(service: latchkey_service::Service<latchkey_store::AnyStore>) {
    let mut every = tokio::time::interval(std::time::Duration::from_mins(10));
    loop {
        every.tick().await;
        match service.purge_expired().await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge expired rows"),
        }
    }
}

/// Every second, POST the back-channel logouts that are due (SPEC §9). Every node runs this;
/// the queue hands each delivery to one node at a time. A check with nothing due is one read.
async fn deliver_logouts(service: latchkey_service::Service<latchkey_store::AnyStore>) {
    let delivery = latchkey_web::backchannel::HttpDelivery::new();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = service.deliver_logouts(&delivery).await {
            tracing::warn!(error = %e, "could not deliver back-channel logouts");
        }
    }
}

/// A request to stop: set once, at the first SIGTERM or SIGINT. Cloned to everything that must
/// stop (start-up steps, each listener).
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Register the SIGTERM and SIGINT handlers now. Done before anything else, so a supervisor
    /// that stops the service the moment it starts gets a graceful stop (status 0), not the
    /// default action of a signal nobody handles yet; a signal during start-up (migrations, the
    /// first operator) ends it there, and one after start stops the listeners.
    pub fn listen() -> anyhow::Result<Self> {
        let signal = shutdown_signal()?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Ok(Self(rx))
    }

    /// Resolves once a stop was asked for.
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Registers the SIGINT and SIGTERM handlers now, and returns a future that resolves at the
/// first of them.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| anyhow::anyhow!("cannot handle SIGTERM: {e}"))?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| anyhow::anyhow!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    })
}
