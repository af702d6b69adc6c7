//! The HTTP listener: one hyper connection task per client, the generated router
//! as the service, graceful shutdown on SIGINT/SIGTERM. Connections are bounded
//! in number, in number per address, and in how long a client may take to send
//! a request's head and body (`[connections]`), so slow or idle clients cannot
//! exhaust the server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use matrix_api::runtime::{RemoteAddr, RouterConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::ratelimit::is_trusted_proxy;
use crate::service::Server;

pub async fn serve(server: Arc<Server>) -> Result<(), String> {
    let bind = server.config.bind;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| format!("bind: cannot listen on {bind}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Links in messages point here when no public_baseurl is configured.
    let _ = server.listening_on.set(local);
    let router = matrix_api::router(
        server.clone(),
        RouterConfig {
            max_body_bytes: server.config.max_body_bytes,
            switched_off: server.switched_off(),
        },
    );
    tokio::spawn(purge_expired(server.clone()));
    tokio::spawn(release_idle(server.clone()));
    tokio::spawn(server.clone().retry_homeserver_updates());
    // Tests and scripts read the actual addresses (ports may be 0 in the
    // config); the metrics' comes first, so it is there once the API's is.
    if let Some(bind) = server.config.metrics.bind {
        let metrics = crate::metrics::serve(bind, server.clone()).await?;
        println!("metrics listening on http://{metrics}/metrics");
        tracing::info!(%metrics, "serving metrics");
    }
    println!("listening on http://{local}");
    tracing::info!(%local, server_name = server.config.server_name, "serving");

    let limits = &server.config.connections;
    let body_timeout = Duration::from_secs(limits.body_timeout_secs);
    let slots = Arc::new(Semaphore::new(limits.max));
    let per_address = PerAddress::new(limits.max_per_address);
    let trusted = server.config.rate_limits.trusted_proxies.clone();
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: no Matrix client speaks cleartext HTTP/2 to a homeserver
    // (browsers and reverse proxies use HTTP/1.1 to a backend), and hyper cannot
    // bound an HTTP/2 connection that stays idle while answering pings. The header
    // timeout needs the timer (without one hyper silently disables it); it runs
    // from the connection's start and between requests, so it also closes
    // silent and idle connections.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs));
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        // At the connection limit, wait for a slot before accepting more: new
        // clients queue in the listen backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                // One address may not take every slot (a proxy may: it carries
                // many clients).
                let address_slot = if is_trusted_proxy(peer.ip(), &trusted) {
                    None
                } else {
                    match per_address.enter(peer.ip()) {
                        Some(s) => Some(s),
                        None => {
                            tracing::debug!(%peer, "too many connections from one address");
                            continue;
                        }
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let mut req = req.map(|body| TimedBody::new(body, body_timeout));
                    req.extensions_mut().insert(RemoteAddr(peer));
                    let router = router.clone();
                    async move { Ok::<_, Infallible>(router.handle(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                    drop((slot, address_slot));
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

/// Open connections per client address, capped.
#[derive(Clone)]
struct PerAddress {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of an address; leaves the count when dropped.
struct AddressSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        PerAddress {
            max,
            open: Arc::default(),
        }
    }

    fn enter(&self, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A request body that fails once its deadline passes, so a client trickling
/// its body cannot hold the connection and its buffer indefinitely. The timer
/// starts the first time the body is not ready at once: a request whose body
/// came with its head (every GET, most small POSTs) never arms one.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            deadline: None,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Some(Err("the request body was not sent in time".into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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

/// What an idle server should not hold, given back every second:
/// password-hashing memory unused for two seconds (and with it what the burst
/// of work around those hashes left free in the heap), and SQLite read
/// snapshots nobody renewed.
async fn release_idle(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if server.hasher.trim(Duration::from_secs(2)) > 0 {
            crate::crypto::return_free_heap_to_the_os();
        }
        // The WAL's checkpoints wait on a snapshot.
        server.store.end_old_snapshots();
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
