//! The HTTP listener: one hyper connection task per client, the generated router
//! as the service, graceful shutdown on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use matrix_api::runtime::{RemoteAddr, RouterConfig};
use tokio::net::TcpListener;

use crate::service::Server;

pub async fn serve(server: Arc<Server>) -> Result<(), String> {
    let bind = server.config.bind;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| format!("bind: cannot listen on {bind}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let router = matrix_api::router(
        server.clone(),
        RouterConfig {
            max_body_bytes: server.config.max_body_bytes,
        },
    );
    tokio::spawn(purge_expired(server.clone()));
    tokio::spawn(trim_hash_memory(server.clone()));
    // Tests and scripts read the actual address (the port may be 0 in the config).
    println!("listening on http://{local}");
    tracing::info!(%local, server_name = server.config.server_name, "serving");

    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = service_fn(move |mut req| {
                    req.extensions_mut().insert(RemoteAddr(peer));
                    let router = router.clone();
                    async move { Ok::<_, Infallible>(router.handle(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// Password-hashing memory unused for two seconds goes back to the OS.
async fn trim_hash_memory(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        server.hasher.trim(Duration::from_secs(2));
    }
}

/// Expired sessions and tokens are already refused; this only reclaims space.
async fn purge_expired(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match server.store.purge_expired().await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "purged expired sessions and tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired state failed"),
        }
    }
}
