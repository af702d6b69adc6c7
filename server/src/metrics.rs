//! Metrics for operators: requests per operation (count by status, latency),
//! password hashing (queue, duration), the database (pool connections, write
//! batch sizes), rate-limit refusals and the process (memory, CPU), served in
//! the OpenMetrics text format (`prometheus-client`) as `GET /metrics` on a
//! listener of their own (`[metrics] bind`), off unless configured. Not part
//! of the Matrix API, so not in `api/`.
//!
//! Recording is global: the `record_*` functions and [`observe_request`] do
//! nothing until [`serve`] has set the metrics up (one atomic load), so code
//! anywhere can call them. The request path is the hot one (~70k requests a
//! second on two cores): its figures are plain atomics in slots made once per
//! operation, found by the operation's `&'static` metadata, and read only when
//! scraped. Everything else is rare enough for `prometheus-client`'s own types,
//! and what exists anyway (pool connections, hash queue, process memory and
//! CPU time) is read at scrape time.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use matrix_api::runtime::{HttpResponse, Metadata};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::service::Server;

/// The OpenMetrics text format, which Prometheus asks for and understands.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The figures recorded as things happen (the rest are read when scraped).
struct Metrics {
    requests: Requests,
    hash_seconds: Histogram,
    write_batch_size: Histogram,
    rate_limited: Family<[(&'static str, &'static str); 1], Counter>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// One request answered by the router (the `Authenticator::observe` hook):
/// its operation (`None`: no operation matched), status and latency.
pub fn observe_request(
    operation: Option<&'static Metadata>,
    status: StatusCode,
    elapsed: Duration,
) {
    if let Some(m) = METRICS.get() {
        m.requests.observe(operation, status, elapsed);
    }
}

/// One argon2 computation (a hash or a check, dummy checks included) and how
/// long it ran, not counting the wait for a core.
pub fn record_hash(elapsed: Duration) {
    if let Some(m) = METRICS.get() {
        m.hash_seconds.observe(elapsed.as_secs_f64());
    }
}

/// One write batch the store committed (a group commit), of `n` writes.
pub fn record_write_batch(n: usize) {
    if let Some(m) = METRICS.get() {
        m.write_batch_size.observe(n as f64);
    }
}

/// A request refused with `429` by the rate-limit bucket (its configuration
/// key, `login_address`, ...) or `password_hash_queue` (too many hashes
/// waiting).
pub fn record_rate_limited(bucket: &'static str) {
    if let Some(m) = METRICS.get() {
        m.rate_limited.get_or_create(&[("bucket", bucket)]).inc();
    }
}

/// Starts the metrics listener on `bind` and returns its address (port 0 in
/// the configuration picks one). From then on the figures are recorded.
pub async fn serve(bind: SocketAddr, server: Arc<Server>) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| format!("metrics.bind: cannot listen on {bind}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics = METRICS.get_or_init(|| Metrics {
        requests: Requests::new(matrix_api::router::ROUTES),
        // 1 ms to 4 s: a cheap test cost to a queue far behind.
        hash_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
        // 1 to 1024 writes in one commit.
        write_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        rate_limited: Family::default(),
    });
    let registry = Arc::new(registry(metrics, server.clone()));
    let header_timeout = Duration::from_secs(server.config.connections.header_timeout_secs);
    tokio::spawn(async move {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    // Out of descriptors, say: try again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = registry.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(answer(&registry, &req)) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "metrics: connection closed with an error");
                }
            });
        }
    });
    Ok(local)
}

/// `GET /metrics`: the exposition; anything else `404`.
fn answer<B>(registry: &Registry, req: &Request<B>) -> HttpResponse {
    let reply = |status, content_type, body: String| {
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(Bytes::from(body).into())
            .expect("a valid response")
    };
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "Not found\n".into());
    }
    let mut text = String::with_capacity(16 * 1024);
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => reply(StatusCode::OK, CONTENT_TYPE, text),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "encoding the metrics failed\n".into(),
        ),
    }
}

fn registry(metrics: &'static Metrics, server: Arc<Server>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(&metrics.requests));
    registry.register(
        "matrix_account_password_hash_duration_seconds",
        "Time one argon2 hash or check ran (a core's time, not the wait for one)",
        metrics.hash_seconds.clone(),
    );
    registry.register(
        "matrix_account_write_batch_size",
        "Writes committed together in one database transaction (group commit)",
        metrics.write_batch_size.clone(),
    );
    registry.register(
        "matrix_account_rate_limited",
        "Requests refused with 429, by rate-limit bucket (password_hash_queue: too many hashes waiting)",
        metrics.rate_limited.clone(),
    );
    registry.register_collector(Box::new(Live(server)));
    registry
}

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Statuses a slot counts: 100 to 999, all `http::StatusCode` can be.
const STATUSES: usize = 900;

/// Per operation: counts by status and a latency histogram, as atomics.
struct Slot {
    operation: &'static str,
    /// Index: status − 100. Zeroed memory, so untouched pages cost nothing.
    statuses: Box<[AtomicU64]>,
    /// Requests per latency bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Slot {
    fn new(operation: &'static str) -> Slot {
        Slot {
            operation,
            statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// The request figures: a slot per operation of the route table, plus one for
/// requests no operation matched (`operation="unmatched"`).
struct Requests {
    /// Operation metadata addresses with their slot, sorted by address.
    index: Vec<(usize, usize)>,
    slots: Vec<Slot>,
    /// `LATENCY_BUCKETS` in nanoseconds, for comparing without floats.
    bounds_nanos: [u64; LATENCY_BUCKETS.len()],
}

impl Requests {
    fn new(routes: &'static [matrix_api::runtime::Route]) -> Requests {
        let mut slots = vec![Slot::new("unmatched")];
        let mut index: Vec<(usize, usize)> = Vec::new();
        for route in routes {
            let address = std::ptr::from_ref(route.metadata) as usize;
            // Legacy routes share their operation's slot.
            if !index.iter().any(|(a, _)| *a == address) {
                index.push((address, slots.len()));
                slots.push(Slot::new(route.metadata.operation_id));
            }
        }
        index.sort_unstable();
        Requests {
            index,
            slots,
            bounds_nanos: LATENCY_BUCKETS.map(|s| (s * 1e9) as u64),
        }
    }

    fn slot(&self, operation: Option<&'static Metadata>) -> &Slot {
        let found = operation.and_then(|m| {
            let address = std::ptr::from_ref(m) as usize;
            self.index
                .binary_search_by_key(&address, |(a, _)| *a)
                .ok()
                .map(|i| self.index[i].1)
        });
        &self.slots[found.unwrap_or(0)]
    }

    fn observe(&self, operation: Option<&'static Metadata>, status: StatusCode, elapsed: Duration) {
        let slot = self.slot(operation);
        let status = usize::from(status.as_u16()).saturating_sub(100);
        if let Some(count) = slot.statuses.get(status) {
            count.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self
            .bounds_nanos
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        slot.buckets[bucket].fetch_add(1, Relaxed);
        slot.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

impl fmt::Debug for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Requests({} operations)", self.slots.len() - 1)
    }
}

impl Collector for &'static Requests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut counts = encoder.encode_descriptor(
            "matrix_account_http_requests",
            "Requests answered, by operation (operationId; unmatched: no operation, i.e. 404, 405 and CORS preflights) and status",
            None,
            MetricType::Counter,
        )?;
        for slot in &self.slots {
            for (i, count) in slot.statuses.iter().enumerate() {
                let n = count.load(Relaxed);
                if n > 0 {
                    let status = i + 100;
                    let labels = ([("operation", slot.operation)], [("status", status)]);
                    ConstCounter::new(n).encode(counts.encode_family(&labels)?)?;
                }
            }
        }
        let mut latency = encoder.encode_descriptor(
            "matrix_account_http_request_duration_seconds",
            "Time from a request's head to its answer being ready, by operation",
            None,
            MetricType::Histogram,
        )?;
        for slot in &self.slots {
            let per_bucket: Vec<u64> = slot.buckets.iter().map(|b| b.load(Relaxed)).collect();
            let count: u64 = per_bucket.iter().sum();
            if count == 0 {
                continue;
            }
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(per_bucket)
                .collect();
            let sum = slot.sum_nanos.load(Relaxed) as f64 / 1e9;
            let labels = [("operation", slot.operation)];
            latency
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, count, &buckets, None,
                )?;
        }
        Ok(())
    }
}

/// What is read when scraped: the database pool, the hash queue, the process.
struct Live(Arc<Server>);

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let (open, idle) = self.0.store.pool_connections();
        let in_use = (open as usize).saturating_sub(idle);
        let mut db = encoder.encode_descriptor(
            "matrix_account_db_connections",
            "Database pool connections, by state (in_use, idle)",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("in_use", in_use), ("idle", idle)] {
            ConstGauge::new(n as i64).encode(db.encode_family(&[("state", state)])?)?;
        }
        gauge(
            &mut encoder,
            "matrix_account_password_hash_queue_depth",
            "Password hashes waiting for a core (at most passwords.max_queued_hashes)",
            self.0.hasher.queued() as i64,
        )?;
        gauge(
            &mut encoder,
            "matrix_account_password_hashes_running",
            "Password hashes running (at most one per core)",
            self.0.hasher.running() as i64,
        )?;
        if let Some(rss) = resident_bytes() {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                rss as i64,
            )?;
        }
        if let Some(cpu) = cpu_seconds() {
            let counter = ConstCounter::new(cpu);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// `VmRSS` of `/proc/self/status`; `None` where there is no procfs.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User and system time from `/proc/self/stat`; `None` where there is no procfs.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count
    // from after it. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(requests: &'static Requests) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(requests));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn requests_are_counted_per_operation_and_status_with_their_latency() {
        use matrix_api::client_server::versions::get_versions;
        let requests: &'static Requests =
            Box::leak(Box::new(Requests::new(matrix_api::router::ROUTES)));
        let ms = Duration::from_millis;
        requests.observe(Some(&get_versions::METADATA), StatusCode::OK, ms(2));
        requests.observe(Some(&get_versions::METADATA), StatusCode::OK, ms(20));
        requests.observe(
            Some(&get_versions::METADATA),
            StatusCode::NOT_FOUND,
            ms(200),
        );
        requests.observe(None, StatusCode::NOT_FOUND, ms(0));
        let text = exposition(requests);
        for line in [
            "matrix_account_http_requests_total{operation=\"getVersions\",status=\"200\"} 2",
            "matrix_account_http_requests_total{operation=\"getVersions\",status=\"404\"} 1",
            "matrix_account_http_requests_total{operation=\"unmatched\",status=\"404\"} 1",
            "matrix_account_http_request_duration_seconds_count{operation=\"getVersions\"} 3",
            "matrix_account_http_request_duration_seconds_sum{operation=\"getVersions\"} 0.222",
            "matrix_account_http_request_duration_seconds_bucket{le=\"0.0025\",operation=\"getVersions\"} 1",
            "matrix_account_http_request_duration_seconds_bucket{le=\"0.025\",operation=\"getVersions\"} 2",
            "matrix_account_http_request_duration_seconds_bucket{le=\"+Inf\",operation=\"getVersions\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        // Operations nobody called are not listed.
        assert!(!text.contains("operation=\"login\""), "{text}");
    }

    #[test]
    fn every_operation_has_its_slot_and_legacy_routes_share_it() {
        let requests = Requests::new(matrix_api::router::ROUTES);
        for route in matrix_api::router::ROUTES {
            let slot = requests.slot(Some(route.metadata));
            assert_eq!(slot.operation, route.metadata.operation_id);
        }
        let operations: std::collections::BTreeSet<_> = matrix_api::router::ROUTES
            .iter()
            .map(|r| r.metadata.operation_id)
            .collect();
        assert_eq!(requests.slots.len(), operations.len() + 1);
    }

    #[test]
    fn the_process_reads_its_memory_and_cpu_time() {
        assert!(resident_bytes().is_some_and(|b| b > 1024 * 1024));
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
