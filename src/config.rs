//! The settings a server runs with: every limit the runtime enforces lives in
//! [`Limits`], with its default and what happens at the limit; [`StorageConfig`],
//! [`HttpConfig`], [`MrtrConfig`] and the process log's [`LogLevel`]. How the `emcee`
//! binary fills them (flags, `EMCEE_*` environment, a TOML file) is the binary's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default of [`Limits::log_queue_bytes`].
pub const LOG_QUEUE_BYTES: usize = 1024 * 1024;
/// A configuration problem: one line naming the flag, variable, file or value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for emcee.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, on one line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid value for {name}: {message}")]
    Value {
        /// The setting's name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn bad(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        name,
        message: message.into(),
    }
}

/// Runtime limits. Each is a bound on memory or time; each has a test at its edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// A call running longer is stopped; the caller gets an `isError` result naming the
    /// timeout (a JSON-RPC -32603 error for non-tool methods). Default 60 s.
    #[serde(
        rename = "call_timeout_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub call_timeout: Duration,
    /// In-flight requests per session (a session-era session, a stdio connection);
    /// one more is answered with JSON-RPC -32000 (server busy) at once. 2026-07-28
    /// HTTP requests have no session: `max_in_flight_total` and
    /// `max_in_flight_per_tool` bound them. Default 64.
    pub max_in_flight_per_session: usize,
    /// Largest accepted message (a stdio line, an HTTP body) in bytes; a larger one is
    /// rejected (-32600 on stdio, 413 on HTTP) and discarded. Default 4 MiB.
    pub max_message_bytes: usize,
    /// Items per page of list methods. Default 100.
    pub page_size: usize,
    /// On shutdown (EOF, SIGTERM) in-flight calls get this long to finish; the rest
    /// are answered as cancelled. Default 10 s.
    #[serde(
        rename = "shutdown_grace_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub shutdown_grace: Duration,
    /// Most keys `kv_list` returns in one call; more sets `truncated`. Default 1000.
    pub kv_list_max: usize,
    /// Bytes of keys and values the built-in kv tools may keep on disk, all clients
    /// together; a `kv_set` past it is an `isError` result naming this limit (delete
    /// keys to make room). Default 64 MiB.
    pub kv_max_bytes: u64,
    /// Tasks (tasks extension) kept, running or ended within their TTL; one more
    /// `tools/call` that would become a task is refused with -32000. Default 1,000.
    pub max_tasks: usize,
    /// Bytes of task records (results included) kept; past it new tasks are refused
    /// with -32000 and a result that does not fit fails its task. Default 64 MiB.
    pub task_store_bytes: u64,
    /// How long a task (and its result) is kept after its creation (`ttlMs`).
    /// Default 1 h.
    #[serde(
        rename = "task_ttl_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub task_ttl: Duration,
    /// A task running longer is stopped and `failed` (instead of `call_timeout_ms`,
    /// which bounds the call until it becomes a task). Default 1 h.
    #[serde(
        rename = "task_timeout_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub task_timeout: Duration,
    /// How often clients are told to poll a task (`pollIntervalMs`). Default 1 s.
    #[serde(
        rename = "task_poll_interval_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub task_poll_interval: Duration,
    /// Largest result a call may answer with, in bytes of JSON: a larger tool result
    /// is replaced by an `isError` result naming this limit (a JSON-RPC -32603 for
    /// `resources/read` and `prompts/get`); `kv_list` stops listing keys before it.
    /// Default 4 MiB.
    pub max_result_bytes: usize,
    /// stdio: answers and notifications the client has not read yet; while more than
    /// this many bytes wait, no new request is read (the calls in flight still
    /// answer, each within `max_result_bytes`). Default 8 MiB.
    pub max_output_bytes: usize,
    /// An HTTP request body must arrive whole within this long after its headers;
    /// a slower one (a client trickling bytes to hold a connection) is answered 408
    /// and its connection closed. Default 10 s.
    #[serde(
        rename = "body_timeout_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub body_timeout: Duration,
    /// Largest `initialize` params a session keeps (in memory and in its saved
    /// record), as JSON bytes; a larger `initialize` is refused with -32602 naming
    /// this limit. Bounds what a client makes the server keep per session. Default
    /// 16 KiB.
    pub max_session_bytes: usize,
    /// Resource subscriptions one session (or one `subscriptions/listen` stream) may
    /// hold; one more is refused with -32602 naming this limit. Default 16.
    pub max_subscriptions: usize,
    /// Longest resource URI a subscription may name, in bytes; a longer one is
    /// refused with -32602 naming this limit. Default 2048. (So subscriptions hold at
    /// most 32 KiB per session.)
    pub max_uri_bytes: usize,
    /// Live sessions (HTTP) plus saved ones that may be restored; one more
    /// `initialize` gets 503 with `Retry-After`. Default 2,000: with the other
    /// per-session bounds about 160 MiB at most (SECURITY.md); raise it on a host
    /// with the memory for more.
    pub max_sessions: usize,
    /// A session with no request and no open stream for this long is ended (its id
    /// then answers 404). Default 30 min.
    #[serde(
        rename = "session_idle_ttl_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub session_idle_ttl: Duration,
    /// How long a handler waits for the client to answer a server → client request
    /// (sampling, elicitation, roots) before it gets an error. Default 60 s.
    #[serde(
        rename = "client_request_timeout_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub client_request_timeout: Duration,
    /// SSE events kept for `Last-Event-ID` replay, process-wide; the oldest go first.
    /// Default 10 000.
    pub event_log_max: usize,
    /// Bytes of SSE event JSON the replay log keeps (oldest dropped first, checked
    /// every second): what the session era can make the server keep on disk for
    /// `Last-Event-ID`. Default 64 MiB.
    pub event_log_bytes: u64,
    /// Events one session may keep in the replay log; past it, that session's oldest
    /// are dropped as it logs more (never another session's, never its newest), so
    /// one session cannot push another's results out. Default 1,000.
    pub event_log_session_max: usize,
    /// Bytes of events one session may keep in the replay log (its newest event is
    /// kept whatever its size). Default 8 MiB: two results of `max_result_bytes`.
    pub event_log_session_bytes: u64,
    /// SSE events older than this are dropped from the replay log. Default 5 min.
    #[serde(
        rename = "event_ttl_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub event_ttl: Duration,
    /// An SSE stream with nothing to say for this long gets a keep-alive comment. Default 15 s.
    #[serde(
        rename = "sse_keepalive_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub sse_keepalive: Duration,
    /// 2026-07-28 HTTP streams (a slow request's SSE answer, `subscriptions/listen`)
    /// write a 3-byte comment this often (a slow JSON-only answer, a space): the
    /// server notices a client that closed the stream only when a write fails, and
    /// a closed request stream cancels its call, so this bounds how long a
    /// cancelled call runs on (about two periods).
    /// Default 250 ms.
    #[serde(
        rename = "stream_probe_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub stream_probe: Duration,
    /// Messages a `subscriptions/listen` stream (2026-07-28 HTTP) may have waiting
    /// for a client that does not read; one more and the stream is closed (logged,
    /// counted as `mcp_rejected_total{reason="listener_slow"}`). Each message is one
    /// notification of a few hundred bytes, so this bounds a listener's memory.
    /// Default 256.
    pub listen_queue: usize,
    /// Bytes a session-era SSE connection may hold that its client has not read (one
    /// event is always taken, however big); past it the connection is closed (logged,
    /// `mcp_rejected_total{reason="sse_slow"}`) and the client resumes from the replay
    /// log with `Last-Event-ID`. Replays are read from the log as the client reads,
    /// so this bounds a connection's memory. Default 1 MiB.
    pub sse_buffer_bytes: usize,
    /// Bytes all HTTP request bodies being read may hold together (each is reserved
    /// as it arrives, its declared length at once); a body that would pass it gets
    /// 503 + `Retry-After` (`mcp_rejected_total{reason="body_budget"}`). With
    /// `max_message_bytes` per body this bounds what slow uploads can hold. Default
    /// 64 MiB.
    pub max_body_bytes_total: usize,
    /// Calls in flight in the whole server; one more is refused with JSON-RPC -32000 at
    /// once. Default 4096.
    pub max_in_flight_total: usize,
    /// Calls of any one tool in flight at once (a tool may set its own); one more is
    /// refused with JSON-RPC -32000 at once. Default 1024.
    pub max_in_flight_per_tool: usize,
    /// Blocking handler code (`CallContext::blocking`) runs on at most this many
    /// threads off the event loop; more wait their turn, within their call timeout.
    /// Default 8.
    pub blocking_threads: usize,
    /// Refusals of one reason logged one line each per `refusal_log_interval`; the
    /// rest of that window are only counted (`mcp_rejected_total`) and summed up in
    /// one line when it ends. 0 logs only the summaries. Default 10.
    pub refusal_log_burst: usize,
    /// The window of `refusal_log_burst`. Default 10 s.
    #[serde(
        rename = "refusal_log_interval_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub refusal_log_interval: Duration,
    /// Bytes of log lines waiting for the thread that writes stderr; a line that
    /// finds the queue full is dropped and counted in `mcp_log_dropped_total`
    /// (serving never waits for stderr). A call line is about 400 bytes (error texts
    /// are clipped). Default 1 MiB.
    pub log_queue_bytes: usize,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn de_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Limits that may be 0 (every other must be greater than 0).
const ZERO_ALLOWED: [&str; 4] = [
    "shutdown_grace_ms",
    "event_log_max",
    "event_ttl_ms",
    "refusal_log_burst",
];

impl Limits {
    /// The limits of `table` (the `[limits]` keys, each one optional) over the
    /// defaults; a key that is unknown, of the wrong type or 0 where 0 makes no
    /// sense is an error naming it.
    pub fn from_table(table: toml::Table) -> Result<Limits, ConfigError> {
        let limits = Limits::deserialize(toml::Value::Table(table))
            .map_err(|e| bad("limits", e.message().to_owned()))?;
        if let Ok(toml::Value::Table(all)) = toml::Value::try_from(&limits) {
            for (key, value) in all {
                if value.as_integer() == Some(0) && !ZERO_ALLOWED.contains(&key.as_str()) {
                    return Err(ConfigError::Value {
                        name: "limits",
                        message: format!("limits.{key} must be greater than 0"),
                    });
                }
            }
        }
        Ok(limits)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(60),
            max_in_flight_per_session: 64,
            max_message_bytes: 4 * 1024 * 1024,
            page_size: 100,
            shutdown_grace: Duration::from_secs(10),
            kv_list_max: 1000,
            kv_max_bytes: 64 * 1024 * 1024,
            max_tasks: 1_000,
            task_store_bytes: 64 * 1024 * 1024,
            task_ttl: Duration::from_secs(3600),
            task_timeout: Duration::from_secs(3600),
            task_poll_interval: Duration::from_secs(1),
            max_session_bytes: 16 * 1024,
            max_result_bytes: 4 * 1024 * 1024,
            max_output_bytes: 8 * 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            max_subscriptions: 16,
            max_uri_bytes: 2048,
            max_sessions: 2_000,
            session_idle_ttl: Duration::from_secs(30 * 60),
            client_request_timeout: Duration::from_secs(60),
            event_log_max: 10_000,
            event_ttl: Duration::from_secs(5 * 60),
            sse_keepalive: Duration::from_secs(15),
            stream_probe: Duration::from_millis(250),
            event_log_bytes: 64 * 1024 * 1024,
            event_log_session_max: 1_000,
            event_log_session_bytes: 8 * 1024 * 1024,
            listen_queue: 256,
            sse_buffer_bytes: 1024 * 1024,
            max_body_bytes_total: 64 * 1024 * 1024,
            max_in_flight_total: 4096,
            max_in_flight_per_tool: 1024,
            blocking_threads: 8,
            refusal_log_burst: 10,
            refusal_log_interval: Duration::from_secs(10),
            log_queue_bytes: LOG_QUEUE_BYTES,
        }
    }
}

/// Storage settings.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StorageConfig {
    /// sled page cache size. sled's own default is 1 GiB; small hosts want little. Default 8 MiB.
    pub cache_capacity_bytes: u64,
    /// Longest wait for a durable write (a flush). Past it the write fails, storage is
    /// marked failed (`/health` 503, no systemd watchdog pings, an error log line,
    /// `mcp_storage_errors_total`), and writes that need a flush fail at once while a
    /// stuck flush is outstanding. The final flush at exit waits this long too (then
    /// exit 3). Default 5 s.
    #[serde(rename = "flush_timeout_ms", serialize_with = "ser_ms")]
    pub flush_timeout: Duration,
    /// While storage is failing (or the data directory is held by another process),
    /// how often to test whether the disk takes writes again and, if it does, reopen
    /// the database. Default 2 s.
    #[serde(rename = "retry_ms", serialize_with = "ser_ms")]
    pub retry: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_capacity_bytes: 8 * 1024 * 1024,
            flush_timeout: Duration::from_secs(5),
            retry: Duration::from_secs(2),
        }
    }
}

/// 2026-07-28 multi-round-trip requests (`[mrtr]`): how `requestState` is sealed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MrtrConfig {
    /// A file whose bytes are the HMAC secret (its SHA-256 is the key). Instances
    /// that share it accept each other's `requestState`. Default: none, a random key
    /// per process (a retry reaching another instance or a restarted process is
    /// refused with -32602; logged once at start).
    pub key_file: Option<PathBuf>,
    /// A `requestState` is refused this long after it was issued. Default 10 min.
    #[serde(rename = "state_ttl_ms", serialize_with = "ser_ms")]
    pub state_ttl: Duration,
    /// Longest `requestState`, which carries the client's answers of earlier rounds;
    /// a call whose answers would need more fails with a message naming this.
    /// Default 64 KiB.
    pub max_state_bytes: usize,
}

impl MrtrConfig {
    /// The secret in `key_file`, if one is named: at least 32 bytes, else an error.
    pub fn secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let secret = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        if secret.len() < 32 {
            return Err(bad(
                "mrtr.key_file",
                format!(
                    "{} holds {} bytes; use at least 32 random bytes (head -c 32 /dev/urandom > FILE)",
                    path.display(),
                    secret.len()
                ),
            ));
        }
        Ok(Some(secret))
    }
}

impl Default for MrtrConfig {
    fn default() -> Self {
        MrtrConfig {
            key_file: None,
            state_ttl: Duration::from_secs(600),
            max_state_bytes: 64 * 1024,
        }
    }
}

/// HTTP settings (DESIGN §1: Host and Origin validation against an allowlist).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Host names (no port) accepted in `Host` and in `Origin`; `"*"` accepts any.
    /// Default: localhost names. Anything else gets 403 before any work is done.
    pub allowed_hosts: Vec<String>,
    /// Exact origins (`scheme://host[:port]`) accepted besides those whose host is in
    /// `allowed_hosts`. Default: none.
    pub allowed_origins: Vec<String>,
    /// HTTP worker threads. Default: the number of CPUs.
    pub workers: usize,
    /// Open connections one client address may hold; a request on one more is
    /// answered 429 with `Retry-After` and its connection closed, so one client
    /// cannot take every file descriptor. Behind a proxy every connection comes from
    /// the proxy's address: raise it there. Default 256.
    pub max_connections_per_ip: usize,
    /// Open MCP connections in all (split evenly between workers); past it no new
    /// connection is accepted until one closes (they wait in the kernel's accept
    /// queue). Bounds what connections can hold in memory. Default 1024.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allowed_hosts: ["localhost", "127.0.0.1", "[::1]"]
                .map(String::from)
                .to_vec(),
            allowed_origins: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections_per_ip: 256,
            max_connections: 1024,
        }
    }
}

/// What to tell an operator at start about `allowed_hosts` for a server bound to
/// some address (issue 11: a public bind that refuses every client with 403 must
/// not be silent).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostWarning {
    /// The bind is not loopback, but every allowed host is: clients that reach the
    /// machine by another name or address get 403.
    LoopbackHostsOnly,
    /// `"*"` is allowed: Host/Origin checks, hence DNS-rebinding protection, are off.
    AnyHost,
}

impl HostWarning {
    /// The warning's text, naming the key (and the variable and flag) to set.
    pub fn message(&self) -> &'static str {
        match self {
            HostWarning::LoopbackHostsOnly => {
                "listening on a non-loopback address, but http.allowed_hosts names only \
                 loopback hosts: clients that reach this machine by another name or address \
                 get 403 host not allowed; add the names clients use to http.allowed_hosts \
                 (or EMCEE_ALLOWED_HOSTS, --allowed-hosts)"
            }
            HostWarning::AnyHost => {
                "http.allowed_hosts contains \"*\": Host and Origin are not checked, so \
                 DNS-rebinding protection is off (a web page a local user visits can call \
                 this server); list the host names clients use instead"
            }
        }
    }
}

/// A loopback host name: `localhost`, `*.localhost`, or a loopback IP literal
/// (`127.0.0.1`, `[::1]`).
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    literal
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl HttpConfig {
    /// What to warn about at start, serving on `bind` with this allowlist.
    pub fn host_warnings(&self, bind: SocketAddr) -> Vec<HostWarning> {
        let mut warnings = Vec::new();
        if self.allowed_hosts.iter().any(|h| h == "*") {
            warnings.push(HostWarning::AnyHost);
        } else if !bind.ip().is_loopback() && self.allowed_hosts.iter().all(|h| is_loopback_host(h))
        {
            warnings.push(HostWarning::LoopbackHostsOnly);
        }
        warnings
    }
}

/// Log levels of the process's own (stderr) log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Per-request lines.
    Debug,
    /// Lifecycle and sessions (default).
    Info,
    /// Recoverable problems.
    Warning,
    /// Failures.
    Error,
    /// Only fatal problems.
    Critical,
}

impl LogLevel {
    /// Parse a level name (`warn` is accepted for `warning`).
    pub fn parse(s: &str) -> Result<LogLevel, ConfigError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" | "crit" => LogLevel::Critical,
            other => {
                return Err(bad(
                    "log level",
                    format!("`{other}` (expected trace, debug, info, warning, error or critical)"),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn host_warnings_name_exposed_binds_and_the_wildcard() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let http = HttpConfig::default();
        assert_eq!(http.host_warnings(any), [HostWarning::LoopbackHostsOnly]);
        assert_eq!(
            http.host_warnings("[::]:8080".parse().unwrap()),
            [HostWarning::LoopbackHostsOnly]
        );
        assert!(http.host_warnings(local).is_empty());
        let named = HttpConfig {
            allowed_hosts: vec!["localhost".into(), "mcp.example.com".into()],
            ..HttpConfig::default()
        };
        assert!(named.host_warnings(any).is_empty());
        let loopbacks = HttpConfig {
            allowed_hosts: vec!["app.localhost".into(), "127.0.0.2".into(), "::1".into()],
            ..HttpConfig::default()
        };
        assert_eq!(
            loopbacks.host_warnings(any),
            [HostWarning::LoopbackHostsOnly]
        );
        let star = HttpConfig {
            allowed_hosts: vec!["*".into()],
            ..HttpConfig::default()
        };
        assert_eq!(star.host_warnings(local), [HostWarning::AnyHost]);
        assert_eq!(star.host_warnings(any), [HostWarning::AnyHost]);
    }
}
