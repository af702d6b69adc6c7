//! Black-box: the server's Prometheus metrics (`[metrics]`). Known traffic is
//! sent to the real binary, the metrics listener is scraped, and the figures
//! must add up: request counts per operation and status, latency histograms
//! counting the same requests, password hashes, rate-limit refusals, the
//! process's memory. Off by default: no listener at all. On SQLite (nothing
//! here depends on the database).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use matrix_tests::server::{Db, TestServer};

const METRICS_ON: &str = "[metrics]\nbind = \"127.0.0.1:0\"\n";

/// Rate limits as configured by default, but one username check per client
/// at a time, so that the second is refused.
const ONE_AVAILABILITY_CHECK: &str = "[rate_limits]\nenabled = true\n\
     [rate_limits.availability]\nper_second = 0.001\nburst = 1\n";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The metrics URL the server printed (`metrics listening on http://…/metrics`).
fn metrics_url(server: &TestServer) -> String {
    let stdout = server.stdout();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("metrics listening on "))
        .unwrap_or_else(|| panic!("no metrics address printed:\n{stdout}"))
        .trim()
        .to_string()
}

/// One scrape: each sample `name{labels}` with its value.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let mut resp = agent()
        .get(url)
        .call()
        .expect("the metrics listener answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = resp.body_mut().read_to_string().unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("`{l}`"));
            let value = value.parse().unwrap_or_else(|_| panic!("`{l}`"));
            (series.to_string(), value)
        })
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no `{series}` in {samples:#?}"))
}

/// The value of every sample of metric `name` per value of `label`, summed.
fn by_label(samples: &BTreeMap<String, f64>, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (series, value) in samples {
        let Some(labels) = series
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('{'))
        else {
            continue;
        };
        let key = format!("{label}=\"");
        let start = labels.find(&key).expect("the label") + key.len();
        let end = start + labels[start..].find('"').unwrap();
        *out.entry(labels[start..end].to_string()).or_default() += value;
    }
    out
}

#[test]
fn metrics_add_up_to_the_traffic_sent() {
    let server = TestServer::start(Db::Sqlite, &format!("{METRICS_ON}{ONE_AVAILABILITY_CHECK}"))
        .expect("SQLite needs nothing");
    let url = metrics_url(&server);
    for _ in 0..3 {
        assert_eq!(server.get("/_matrix/client/versions", None).status, 200);
    }
    // A bad token, under the current path and the pre-v1.1 one: one operation.
    for prefix in ["/_matrix/client/v3", "/_matrix/client/r0"] {
        let whoami = server.get(&format!("{prefix}/account/whoami"), Some("not-a-token"));
        assert_eq!(whoami.status, 401);
    }
    // Registration: the challenge (401), then the account (200) with one hash.
    server.register("alice", "correct horse");
    assert_eq!(server.login("alice", "correct horse").status, 200);
    let available = "/_matrix/client/v3/register/available?username=bob";
    assert_eq!(server.get(available, None).status, 200);
    assert_eq!(server.get(available, None).status, 429);
    assert_eq!(server.get("/_matrix/client/v3/nowhere", None).status, 404);

    let samples = scrape(&url);
    let requests = |operation: &str, status: u16| {
        sample(
            &samples,
            &format!(
                "matrix_account_http_requests_total{{operation=\"{operation}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("getVersions", 200), 3.0);
    assert_eq!(requests("getTokenOwner", 401), 2.0);
    assert_eq!(requests("register", 401), 1.0);
    assert_eq!(requests("register", 200), 1.0);
    assert_eq!(requests("login", 200), 1.0);
    assert_eq!(requests("checkUsernameAvailability", 200), 1.0);
    assert_eq!(requests("checkUsernameAvailability", 429), 1.0);
    assert_eq!(requests("unmatched", 404), 1.0);

    // Nothing else was counted, and each operation's latency histogram holds
    // exactly its requests.
    let counted = by_label(&samples, "matrix_account_http_requests_total", "operation");
    let expected: BTreeMap<String, f64> = [
        ("checkUsernameAvailability", 2.0),
        ("getTokenOwner", 2.0),
        ("getVersions", 3.0),
        ("login", 1.0),
        ("register", 2.0),
        ("unmatched", 1.0),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_string(), n))
    .collect();
    assert_eq!(counted, expected);
    let timed = by_label(
        &samples,
        "matrix_account_http_request_duration_seconds_count",
        "operation",
    );
    assert_eq!(timed, expected);
    for (operation, n) in &expected {
        let inf = format!(
            "matrix_account_http_request_duration_seconds_bucket{{le=\"+Inf\",operation=\"{operation}\"}}"
        );
        assert_eq!(sample(&samples, &inf), *n, "{operation}");
        let sum = format!(
            "matrix_account_http_request_duration_seconds_sum{{operation=\"{operation}\"}}"
        );
        assert!(sample(&samples, &sum) > 0.0, "{operation}");
    }

    // The registration's hash and the login's check at least.
    let hashes = sample(
        &samples,
        "matrix_account_password_hash_duration_seconds_count",
    );
    assert!(hashes >= 2.0, "{hashes} hashes");
    assert_eq!(
        sample(&samples, "matrix_account_password_hash_queue_depth"),
        0.0
    );
    assert_eq!(
        sample(&samples, "matrix_account_password_hashes_running"),
        0.0
    );
    assert_eq!(
        sample(
            &samples,
            "matrix_account_rate_limited_total{bucket=\"availability\"}"
        ),
        1.0
    );
    let rate_limited = by_label(&samples, "matrix_account_rate_limited_total", "bucket");
    assert_eq!(rate_limited.len(), 1, "{rate_limited:?}");
    let in_use = sample(&samples, "matrix_account_db_connections{state=\"in_use\"}");
    let idle = sample(&samples, "matrix_account_db_connections{state=\"idle\"}");
    assert!(
        in_use >= 0.0 && in_use + idle >= 1.0,
        "{in_use} in use, {idle} idle"
    );
    // Recorded by the store's group commit: present, whatever it counted.
    sample(&samples, "matrix_account_write_batch_size_count");
    assert!(sample(&samples, "process_resident_memory_bytes") > 1e6);
    assert!(sample(&samples, "process_cpu_seconds_total") > 0.0);

    // Scraping is not API traffic: a second scrape counts the same requests.
    let again = scrape(&url);
    assert_eq!(
        by_label(&again, "matrix_account_http_requests_total", "operation"),
        expected
    );

    // Only GET /metrics.
    let base = url.strip_suffix("/metrics").unwrap();
    assert_eq!(
        agent().get(format!("{base}/")).call().unwrap().status(),
        404
    );
    assert_eq!(
        agent()
            .get(format!("{base}/_matrix/client/versions"))
            .call()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(agent().post(&url).send_empty().unwrap().status(), 404);
}

#[test]
fn metrics_are_off_by_default() {
    let server = TestServer::start(Db::Sqlite, "").expect("SQLite needs nothing");
    let stdout = server.stdout();
    assert!(!stdout.contains("metrics"), "{stdout}");
    // The API's socket is the only one the process listens on.
    assert_eq!(listening_sockets(server.pid()), 1);

    let on = TestServer::start(Db::Sqlite, METRICS_ON).expect("SQLite needs nothing");
    assert_eq!(listening_sockets(on.pid()), 2);
}

/// TCP sockets in the LISTEN state that process `pid` holds (Linux: its
/// descriptors' socket inodes, looked up in /proc/net/tcp and tcp6).
fn listening_sockets(pid: u32) -> usize {
    let held: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("procfs")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut listening = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st (4th field) 0A is LISTEN; the inode is the 10th field.
            if fields.len() > 9 && fields[3] == "0A" && held.contains(fields[9]) {
                listening.insert(fields[9].to_string());
            }
        }
    }
    listening.len()
}
