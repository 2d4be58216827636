//! Prometheus metrics (own `Registry`, served at `/metrics`).
//!
//! Label values are bounded: `method` is one of the MCP method names emcee serves or
//! `other`; `tool` is a registered tool name (unknown tools are refused before any
//! metric is touched); `outcome` and `reason` are fixed strings from this module.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds: fine below a millisecond, up to the default call timeout.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Why a request was refused (`mcp_rejected_total{reason}`).
pub mod reason {
    /// Host or Origin not allowed.
    pub const FORBIDDEN: &str = "forbidden";
    /// Body over `limits.max_message_bytes`.
    pub const TOO_LARGE: &str = "too_large";
    /// Malformed HTTP request (headers, JSON, missing session id).
    pub const BAD_REQUEST: &str = "bad_request";
    /// Unknown or ended session id.
    pub const UNKNOWN_SESSION: &str = "unknown_session";
    /// `limits.max_sessions` reached.
    pub const SESSION_CAP: &str = "session_cap";
    /// `limits.max_in_flight_per_session` reached.
    pub const IN_FLIGHT_SESSION: &str = "in_flight_session";
    /// `limits.max_in_flight_total` reached.
    pub const IN_FLIGHT_TOTAL: &str = "in_flight_total";
    /// A tool's own concurrency limit reached.
    pub const IN_FLIGHT_TOOL: &str = "in_flight_tool";
    /// The server is draining.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// 2026-07-28: an HTTP header is missing or does not match the body (-32020).
    pub const HEADER_MISMATCH: &str = "header_mismatch";
    /// 2026-07-28: the request's protocol version is not served (-32022).
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// A method the server does not serve (-32601, HTTP 404 in 2026-07-28).
    pub const UNKNOWN_METHOD: &str = "unknown_method";
    /// One client address held `http.max_connections_per_ip` connections (429).
    pub const CONNECTION_LIMIT: &str = "connection_limit";
    /// An HTTP body did not arrive within `limits.body_timeout_ms` (408).
    pub const BODY_TIMEOUT: &str = "body_timeout";
    /// A `subscriptions/listen` client read too slowly; its stream was dropped.
    pub const LISTENER_SLOW: &str = "listener_slow";
    /// A session-era SSE connection whose client did not read `limits.sse_buffer_bytes`
    /// was closed (the client resumes with `Last-Event-ID`).
    pub const SSE_SLOW: &str = "sse_slow";
    /// Request bodies being read held `limits.max_body_bytes_total` (503).
    pub const BODY_BUDGET: &str = "body_budget";
    /// A client's running tasks fill its share of the task store
    /// (`limits.max_tasks_per_client`, `limits.task_store_bytes_per_client`).
    pub const TASK_SHARE: &str = "task_share";
    /// Running tasks fill the task store (`limits.max_tasks`,
    /// `limits.task_store_bytes`).
    pub const TASK_STORE: &str = "task_store";
    /// `http.max_connections` MCP connections were open (503, connection closed).
    pub const CONNECTION_CAP: &str = "connection_cap";
    /// `limits.max_listen_streams` (in all) or `limits.max_listen_streams_per_ip`
    /// listen streams were open (503).
    pub const LISTEN_CAP: &str = "listen_cap";
    /// Answers waiting on HTTP connections held `limits.max_pending_answer_bytes`:
    /// an answer not begun got 503, a stream was closed.
    pub const ANSWER_BUDGET: &str = "answer_budget";
    /// No bearer token, or one not in `[auth] tokens_file` (401).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// A token limited to some tools called another (403).
    pub const TOOL_FORBIDDEN: &str = "tool_forbidden";
    /// A `[rate]` limit was reached (429).
    pub const RATE_LIMIT: &str = "rate_limit";
    /// A principal held its share of the sessions,
    /// `limits.max_sessions_per_principal` (503).
    pub const SESSION_SHARE: &str = "session_share";
    /// A principal held its share of the calls in flight,
    /// `limits.max_in_flight_per_principal` (-32000).
    pub const IN_FLIGHT_PRINCIPAL: &str = "in_flight_principal";
    /// An OAuth access token without the scope the tool needs (`[auth.scopes]`, 403).
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
}

/// Every metric emcee exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `mcp_tool_calls_total{tool}`.
    pub tool_calls: IntCounterVec,
    /// `mcp_tool_errors_total{tool}`: isError results, panics, timeouts.
    pub tool_errors: IntCounterVec,
    /// `mcp_tool_duration_seconds{tool}`.
    pub tool_duration: HistogramVec,
    /// `mcp_active_sessions`.
    pub active_sessions: IntGauge,
    /// `mcp_active_connections` (HTTP connections, or the stdio connection).
    pub active_connections: IntGauge,
    /// `mcp_max_connections`: `http.max_connections` when serving HTTP (0 otherwise).
    pub max_connections: IntGauge,
    /// `mcp_requests_total{method,outcome}`.
    pub requests: IntCounterVec,
    /// `mcp_request_duration_seconds{method}`.
    pub request_duration: HistogramVec,
    /// `mcp_sessions_total`.
    pub sessions_total: IntCounter,
    /// `mcp_handler_panics_total`.
    pub handler_panics: IntCounter,
    /// `mcp_rejected_total{reason}`.
    pub rejected: IntCounterVec,
    /// `mcp_cancelled_total`.
    pub cancelled: IntCounter,
    /// `mcp_storage_errors_total`: durable writes that failed (a flush errored or
    /// timed out, or was refused while storage is failing).
    pub storage_errors: IntCounter,
    /// `mcp_fleet_bus_dropped_total`: messages to the other instances of a fleet
    /// not sent (Redis failing, or too many under way).
    pub bus_dropped: IntCounter,
    /// `mcp_jwks_fetch_failures_total`: fetches of `[auth] jwks_url` that failed
    /// (the keys held are kept).
    pub jwks_fetch_failures: IntCounter,
    /// The series of the commonest answer, a `tools/call` with outcome `ok`
    /// (`mcp_requests_total` and `mcp_request_duration_seconds`), looked up by
    /// label once, at the first such answer (so no series shows before it).
    call_ok: OnceLock<(IntCounter, Histogram)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric, plus process metrics (RSS, CPU, fds) on Linux.
    ///
    /// # Panics
    /// Never in practice: metric names are constants, registered once into a new registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let metrics = Metrics {
            tool_calls: counter_vec("mcp_tool_calls_total", "Tool calls started.", &["tool"]),
            tool_errors: counter_vec(
                "mcp_tool_errors_total",
                "Tool calls that failed (isError, panic, timeout).",
                &["tool"],
            ),
            tool_duration: histogram(
                "mcp_tool_duration_seconds",
                "Tool call duration.",
                &["tool"],
            ),
            active_sessions: gauge("mcp_active_sessions", "Live sessions."),
            active_connections: gauge("mcp_active_connections", "Open client connections."),
            max_connections: gauge(
                "mcp_max_connections",
                "MCP connections the HTTP listener serves at most (http.max_connections).",
            ),
            requests: counter_vec(
                "mcp_requests_total",
                "JSON-RPC requests answered, by method and outcome.",
                &["method", "outcome"],
            ),
            request_duration: histogram(
                "mcp_request_duration_seconds",
                "JSON-RPC request duration.",
                &["method"],
            ),
            sessions_total: counter("mcp_sessions_total", "Sessions opened."),
            handler_panics: counter("mcp_handler_panics_total", "Handler panics contained."),
            rejected: counter_vec(
                "mcp_rejected_total",
                "Requests refused, by reason.",
                &["reason"],
            ),
            cancelled: counter(
                "mcp_cancelled_total",
                "Calls cancelled by the client or at shutdown.",
            ),
            storage_errors: counter(
                "mcp_storage_errors_total",
                "Durable writes that failed (flush error or timeout, or refused while failing).",
            ),
            bus_dropped: counter(
                "mcp_fleet_bus_dropped_total",
                "Messages to the fleet's other instances not sent (Redis failing, or too many under way).",
            ),
            jwks_fetch_failures: counter(
                "mcp_jwks_fetch_failures_total",
                "Fetches of the OAuth issuer's JWKS (auth.jwks_url) that failed; the keys held are kept.",
            ),
            call_ok: OnceLock::new(),
            registry,
        };
        #[cfg(target_os = "linux")]
        {
            let _ = metrics.registry.register(Box::new(ProcessMetrics::new()));
        }
        let _ = metrics.registry.register(Box::new(LogDropped::new()));
        metrics
    }

    /// Count a refusal.
    pub fn reject(&self, reason: &'static str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    /// Count an answered request. `method` is a bounded label
    /// (`ClientRequest::label`: unknown methods are all `other`).
    pub fn request(&self, method: &'static str, outcome: &'static str, seconds: f64) {
        if method == crate::protocol::mcp::method::TOOLS_CALL && outcome == "ok" {
            let (count, duration) = self.call_ok.get_or_init(|| {
                (
                    self.requests.with_label_values(&[method, outcome]),
                    self.request_duration.with_label_values(&[method]),
                )
            });
            count.inc();
            duration.observe(seconds);
            return;
        }
        self.requests.with_label_values(&[method, outcome]).inc();
        self.request_duration
            .with_label_values(&[method])
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// `mcp_log_dropped_total`: log lines dropped because the stderr writer's queue
/// (`limits.log_queue_bytes`) was full, read at each scrape.
struct LogDropped {
    counter: IntCounter,
    /// One scrape at a time moves the counter.
    sync: std::sync::Mutex<()>,
}

impl LogDropped {
    fn new() -> LogDropped {
        LogDropped {
            counter: IntCounter::new(
                "mcp_log_dropped_total",
                "Log lines dropped because the log writer's queue was full.",
            )
            .expect("static metric definition"),
            sync: std::sync::Mutex::new(()),
        }
    }
}

impl prometheus::core::Collector for LogDropped {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.counter.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        if let Ok(_one) = self.sync.lock() {
            let now = crate::telemetry::logging::dropped_lines();
            let seen = self.counter.get();
            if now > seen {
                self.counter.inc_by(now - seen);
            }
        }
        self.counter.collect()
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at each scrape. Unlike
/// prometheus' own process collector, CPU time keeps its sub-second part (that one
/// divides clock ticks in whole numbers, so a lightly loaded server reads 0 for
/// minutes).
#[cfg(target_os = "linux")]
struct ProcessMetrics {
    descs: Vec<prometheus::core::Desc>,
    cpu: prometheus::Counter,
    rss: IntGauge,
    vsize: IntGauge,
    fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    start: prometheus::Gauge,
}

#[cfg(target_os = "linux")]
impl ProcessMetrics {
    fn new() -> ProcessMetrics {
        use prometheus::core::Collector;
        let gauge =
            |name: &str, help: &str| IntGauge::new(name, help).expect("static metric definition");
        let cpu = prometheus::Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .expect("static metric definition");
        let start = prometheus::Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )
        .expect("static metric definition");
        let rss = gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        let vsize = gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        );
        let fds = gauge("process_open_fds", "Number of open file descriptors.");
        let max_fds = gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
        let threads = gauge("process_threads", "Number of OS threads in the process.");
        let mut descs = Vec::new();
        descs.extend(cpu.desc().into_iter().cloned());
        descs.extend(start.desc().into_iter().cloned());
        for g in [&rss, &vsize, &fds, &max_fds, &threads] {
            descs.extend(g.desc().into_iter().cloned());
        }
        ProcessMetrics {
            descs,
            cpu,
            rss,
            vsize,
            fds,
            max_fds,
            threads,
            start,
        }
    }

    fn refresh(&self) {
        let Ok(me) = procfs::process::Process::myself() else {
            return;
        };
        let tps = procfs::ticks_per_second() as f64;
        if let Ok(stat) = me.stat() {
            let cpu = (stat.utime + stat.stime) as f64 / tps;
            let delta = cpu - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            self.vsize.set(stat.vsize as i64);
            self.rss.set(stat.rss as i64 * procfs::page_size() as i64);
            self.threads.set(stat.num_threads);
            if let Ok(boot) = procfs::boot_time_secs() {
                self.start.set(boot as f64 + stat.starttime as f64 / tps);
            }
        }
        if let Ok(n) = me.fd_count() {
            self.fds.set(n as i64);
        }
        if let Ok(limits) = me.limits() {
            if let procfs::process::LimitValue::Value(n) = limits.max_open_files.soft_limit {
                self.max_fds.set(n as i64);
            }
        }
    }
}

#[cfg(target_os = "linux")]
impl prometheus::core::Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.refresh();
        let mut families = Vec::new();
        families.extend(self.cpu.collect());
        families.extend(self.start.collect());
        for g in [
            &self.rss,
            &self.vsize,
            &self.fds,
            &self.max_fds,
            &self.threads,
        ] {
            families.extend(g.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_seconds_move_below_a_second() {
        let m = Metrics::new();
        let cpu = |m: &Metrics| -> f64 {
            m.render()
                .lines()
                .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
                .and_then(|v| v.trim().parse().ok())
                .expect("process_cpu_seconds_total")
        };
        let burn = || {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(60);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            std::hint::black_box(x);
        };
        burn();
        let before = cpu(&m);
        burn();
        let after = cpu(&m);
        // 60 ms of CPU shows: whole-second counting would read the same twice.
        assert!(after > before, "{before} -> {after}");
        assert!(m.render().contains("process_resident_memory_bytes"));
        assert!(m.render().contains("process_open_fds"));
    }

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.tool_calls.with_label_values(&["echo"]).inc();
        m.request("tools/call", "ok", 0.001);
        m.reject(reason::FORBIDDEN);
        let text = m.render();
        for name in [
            "mcp_tool_calls_total{tool=\"echo\"} 1",
            "mcp_requests_total{method=\"tools/call\",outcome=\"ok\"} 1",
            "mcp_rejected_total{reason=\"forbidden\"} 1",
            "mcp_active_sessions 0",
            "mcp_sessions_total 0",
            "mcp_handler_panics_total 0",
            "mcp_cancelled_total 0",
            "mcp_storage_errors_total 0",
            "mcp_fleet_bus_dropped_total 0",
            "mcp_log_dropped_total 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }

    #[test]
    fn a_tools_call_answered_ok_counts_in_the_same_series_as_any_other_answer() {
        let m = Metrics::new();
        assert!(!m.render().contains("method=\"tools/call\""));
        m.request("tools/call", "ok", 0.001);
        m.request("tools/call", "ok", 0.002);
        m.request("tools/call", "error", 0.003);
        m.request("ping", "ok", 0.0);
        let copy = m.clone();
        copy.request("tools/call", "ok", 0.004);
        let text = m.render();
        for line in [
            "mcp_requests_total{method=\"tools/call\",outcome=\"ok\"} 3",
            "mcp_requests_total{method=\"tools/call\",outcome=\"error\"} 1",
            "mcp_requests_total{method=\"ping\",outcome=\"ok\"} 1",
            "mcp_request_duration_seconds_count{method=\"tools/call\"} 4",
            "mcp_request_duration_seconds_sum{method=\"tools/call\"} 0.01",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(
            m.requests.with_label_values(&["tools/call", "ok"]).get(),
            3,
            "the labelled lookup sees the cached series"
        );
    }
}
