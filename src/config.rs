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
    /// A line of the bearer tokens file (`[auth] tokens_file`) is malformed, or
    /// the file cannot be read (`line` 0).
    #[error("invalid tokens file {path}: {}{message}", if *line > 0 { format!("line {line}: ") } else { String::new() })]
    Tokens {
        /// The file.
        path: PathBuf,
        /// The line (from 1); 0 when the file as a whole is the problem.
        line: usize,
        /// What is wrong, on one line (never the token).
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
/// Each has a range ([`Limits::validate`], checked at load and by
/// `ServerBuilder::build`): durations 1 ms to [`MAX_DURATION_MS`] (some may be 0),
/// counts and sizes at least 1, and at most what the runtime can take where a
/// larger value would overflow, panic or allocate.
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
    /// rejected (-32600 on stdio, 413 on HTTP) and discarded. Default 4 MiB; at most
    /// [`MAX_MESSAGE_BYTES`] and at most `max_body_bytes_total`.
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
    /// Tasks (tasks extension) kept, running or ended within their TTL. At the
    /// bound the oldest ended task is evicted to make room (its result is gone:
    /// `tasks/get` answers -32602, as for an expired task); when all are running,
    /// one more `tools/call` that would become a task is refused with -32000 (a
    /// tool that may also run without a task then does). Default 1,000.
    pub max_tasks: usize,
    /// Bytes of task records (results included) kept; at the bound ended tasks are
    /// evicted as for `max_tasks`; a result that still does not fit fails its task.
    /// Default 64 MiB.
    pub task_store_bytes: u64,
    /// Tasks one client may keep (its share of `max_tasks`): past it its own oldest
    /// ended task is evicted; when all its tasks are running, its next task is
    /// refused with -32000 (`mcp_rejected_total{reason="task_share"}`) while other
    /// clients go on. A client is its address over HTTP (an IPv6 address by its
    /// /64; behind a proxy, the proxy's address: all its clients share one share),
    /// the connection over stdio. Default 100.
    pub max_tasks_per_client: usize,
    /// Bytes of task records (results included) one client may keep (its share of
    /// `task_store_bytes`), evicted and refused as for `max_tasks_per_client`; a
    /// result that does not fit in it fails its task. Default 16 MiB.
    pub task_store_bytes_per_client: u64,
    /// Most ended tasks past their TTL the expiry sweep (every 30 s) forgets in one
    /// go; the rest wait for the next sweep (at their TTL they are already unknown
    /// to `tasks/get`). Default 1,000; at most 1,000,000.
    pub task_sweep_max: usize,
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
    /// With shared storage (`storage.url`), how long a task's instance vouches for
    /// it between renewals (every third of it, or every `task_poll_interval_ms` if
    /// shorter, when it also picks up cancellations and answers given through other
    /// instances): once it runs out (the instance stopped), any instance ends the
    /// task `failed`. Unused with sled. Default 30 s; at least 300 ms.
    #[serde(
        rename = "task_lease_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub task_lease: Duration,
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
    /// Sessions one principal (`[auth]`: a bearer token) may hold of
    /// `max_sessions`, live ones of this instance; one more `initialize` gets the
    /// cap's 503 with `Retry-After`, counted as `session_share`. 0 (the default):
    /// a quarter of `max_sessions` (at least 1). Without auth there are no
    /// principals, and no share: `max_sessions` alone bounds them.
    pub max_sessions_per_principal: usize,
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
    /// Default 256; at most [`MAX_LISTEN_QUEUE`].
    pub listen_queue: usize,
    /// `subscriptions/listen` streams (2026-07-28 HTTP) open at once in the whole
    /// server; one more is refused with 503 + `Retry-After`
    /// (`mcp_rejected_total{reason="listen_cap"}`, logged), so listen streams
    /// cannot take every connection (`http.max_connections`). Default 512.
    pub max_listen_streams: usize,
    /// Listen streams one client address may hold open (IPv6 addresses grouped by
    /// /64, as for `http.max_connections_per_ip`); one more is refused like one past
    /// `max_listen_streams`. Behind a proxy every stream comes from the proxy's
    /// address: raise it there. Default 64.
    pub max_listen_streams_per_ip: usize,
    /// A listen stream open this long ends with its final result (as at shutdown);
    /// the client opens a new one. Bounds how long one stream holds its place.
    /// Default 1 h.
    #[serde(
        rename = "listen_max_ms",
        serialize_with = "ser_ms",
        deserialize_with = "de_ms"
    )]
    pub listen_max: Duration,
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
    /// Bytes of answers waiting on HTTP connections, process-wide: every JSON body
    /// and SSE event (both eras) holds its size from the moment it is handed to its
    /// connection until actix-web has given its last byte to the kernel (or the
    /// connection dropped). An answer that does not fit: one not begun gets 503 +
    /// `Retry-After` and its connection is closed; a stream already answering is
    /// closed (a session-era client resumes it with `Last-Event-ID`); either is
    /// logged and counted as `mcp_rejected_total{reason="answer_budget"}`. So clients
    /// that do not read their answers hold at most this much of the server's memory.
    /// Default 64 MiB; at least `max_result_bytes` (else a largest result could never
    /// be answered).
    pub max_pending_answer_bytes: usize,
    /// Calls in flight in the whole server; one more is refused with JSON-RPC -32000 at
    /// once. Default 4096.
    pub max_in_flight_total: usize,
    /// Calls one principal (`[auth]`: a bearer token) may have in flight of
    /// `max_in_flight_total`, both eras together; one more is refused with JSON-RPC
    /// -32000 at once, counted as `in_flight_principal`. 0 (the default): a
    /// quarter of `max_in_flight_total` (at least 1). Without auth there is no
    /// share.
    pub max_in_flight_per_principal: usize,
    /// Calls of any one tool in flight at once (a tool may set its own); one more is
    /// refused with JSON-RPC -32000 at once. Default 1024.
    pub max_in_flight_per_tool: usize,
    /// Blocking handler code (`CallContext::blocking`) runs on at most this many
    /// threads off the event loop; more wait their turn, within their call timeout.
    /// Default 8; at most [`MAX_BLOCKING_THREADS`].
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
    // Saturating: `Duration::MAX` (an embedder's "never") must not wrap to a small
    // number, which would pass the range check.
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn de_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Longest duration a limit may be: 365 days. Deadlines are computed as `Instant`s
/// and millisecond timestamps, and tokio's timers are exact up to ~2.2 years: a
/// longer duration would overflow (a panic) or be cut short.
pub const MAX_DURATION_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// Largest `max_message_bytes` and `max_result_bytes`: 1 GiB. A body is reserved
/// from `max_body_bytes_total` in one piece of at most 4 GiB, and a message is held
/// in a few copies while it is decoded.
pub const MAX_MESSAGE_BYTES: u64 = 1 << 30;

/// Most `blocking_threads`: tokio's blocking pool has 512 threads; more permits
/// would only queue there.
pub const MAX_BLOCKING_THREADS: u64 = 512;

/// Most `listen_queue` messages: 65,536 (a few hundred bytes each, per listener).
/// A channel cannot be larger than tokio's `Semaphore::MAX_PERMITS`.
pub const MAX_LISTEN_QUEUE: u64 = 65_536;

/// Most `task_sweep_max`: what one expiry sweep may remove (a sweep holds the
/// task store's lock while it picks them).
pub const MAX_TASK_SWEEP: u64 = 1_000_000;

/// The range of one `[limits]` key.
struct Bound {
    /// `limits.<key>`: how errors name it.
    name: &'static str,
    min: u64,
    max: u64,
}

const fn bound(name: &'static str, min: u64, max: u64) -> Bound {
    Bound { name, min, max }
}

/// No upper bound (a larger value only means no limit).
const ANY: u64 = u64::MAX;

/// Every `[limits]` key and its allowed range. 0 only where it means something
/// (no grace, no replay log, only summaries); a maximum where a larger value would
/// overflow, panic or allocate (see the constants above).
const BOUNDS: &[Bound] = &[
    bound("limits.call_timeout_ms", 1, MAX_DURATION_MS),
    bound("limits.max_in_flight_per_session", 1, ANY),
    bound("limits.max_message_bytes", 1, MAX_MESSAGE_BYTES),
    bound("limits.page_size", 1, ANY),
    bound("limits.shutdown_grace_ms", 0, MAX_DURATION_MS),
    bound("limits.kv_list_max", 1, ANY),
    bound("limits.kv_max_bytes", 1, ANY),
    bound("limits.max_tasks", 1, ANY),
    bound("limits.task_store_bytes", 1, ANY),
    bound("limits.max_tasks_per_client", 1, ANY),
    bound("limits.task_store_bytes_per_client", 1, ANY),
    bound("limits.task_sweep_max", 1, MAX_TASK_SWEEP),
    bound("limits.task_ttl_ms", 1, MAX_DURATION_MS),
    bound("limits.task_timeout_ms", 1, MAX_DURATION_MS),
    bound("limits.task_poll_interval_ms", 1, MAX_DURATION_MS),
    bound("limits.task_lease_ms", 300, MAX_DURATION_MS),
    bound("limits.max_result_bytes", 1, MAX_MESSAGE_BYTES),
    bound("limits.max_output_bytes", 1, ANY),
    bound("limits.body_timeout_ms", 1, MAX_DURATION_MS),
    bound("limits.max_session_bytes", 1, ANY),
    bound("limits.max_subscriptions", 1, ANY),
    bound("limits.max_uri_bytes", 1, ANY),
    bound("limits.max_sessions", 1, ANY),
    bound("limits.max_sessions_per_principal", 0, ANY),
    bound("limits.session_idle_ttl_ms", 1, MAX_DURATION_MS),
    bound("limits.client_request_timeout_ms", 1, MAX_DURATION_MS),
    bound("limits.event_log_max", 0, ANY),
    bound("limits.event_log_bytes", 1, ANY),
    bound("limits.event_log_session_max", 1, ANY),
    bound("limits.event_log_session_bytes", 1, ANY),
    bound("limits.event_ttl_ms", 0, MAX_DURATION_MS),
    bound("limits.sse_keepalive_ms", 1, MAX_DURATION_MS),
    bound("limits.stream_probe_ms", 1, MAX_DURATION_MS),
    bound("limits.listen_queue", 1, MAX_LISTEN_QUEUE),
    bound("limits.max_listen_streams", 1, ANY),
    bound("limits.max_listen_streams_per_ip", 1, ANY),
    bound("limits.listen_max_ms", 1, MAX_DURATION_MS),
    bound("limits.sse_buffer_bytes", 1, ANY),
    bound("limits.max_body_bytes_total", 1, ANY),
    bound("limits.max_pending_answer_bytes", 1, ANY),
    bound("limits.max_in_flight_total", 1, ANY),
    bound("limits.max_in_flight_per_principal", 0, ANY),
    bound("limits.max_in_flight_per_tool", 1, ANY),
    bound("limits.blocking_threads", 1, MAX_BLOCKING_THREADS),
    bound("limits.refusal_log_burst", 0, ANY),
    bound("limits.refusal_log_interval_ms", 1, MAX_DURATION_MS),
    bound("limits.log_queue_bytes", 1, ANY),
];

fn bound_of(key: &str) -> Option<&'static Bound> {
    BOUNDS
        .iter()
        .find(|b| b.name.strip_prefix("limits.") == Some(key))
}

impl Bound {
    fn key(&self) -> &'static str {
        self.name.strip_prefix("limits.").unwrap_or(self.name)
    }

    fn unit(&self) -> &'static str {
        if self.name.ends_with("_ms") {
            " milliseconds"
        } else {
            ""
        }
    }

    /// `n` if it is within range, else an error naming the key and the range.
    fn check(&self, n: i128) -> Result<(), ConfigError> {
        if n >= i128::from(self.min) && n <= i128::from(self.max) {
            return Ok(());
        }
        let range = if self.max == ANY {
            format!("at least {}", self.min)
        } else {
            format!("{} to {}", self.min, self.max)
        };
        Err(bad(
            self.name,
            format!("{n} is out of range (allowed: {range}{})", self.unit()),
        ))
    }
}

/// The known key closest to `key` (a typo), if one is close enough to be meant.
fn closest_key(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    BOUNDS
        .iter()
        .map(|b| (edit_distance(&key, b.key()), b.key()))
        .filter(|(d, known)| *d <= (known.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Levenshtein distance (keys are a few dozen bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

impl Limits {
    /// The limits of `table` (the `[limits]` keys, each one optional) over the
    /// defaults, checked by [`Limits::check_key`] key by key, then by
    /// [`Limits::validate`]. Errors name the key (`limits.call_timeout_ms`).
    pub fn from_table(table: toml::Table) -> Result<Limits, ConfigError> {
        for (key, value) in &table {
            Limits::check_key(key, value)?;
        }
        let limits = Limits::deserialize(toml::Value::Table(table))
            .map_err(|e| bad("limits", e.message().to_owned()))?;
        limits.validate()?;
        Ok(limits)
    }

    /// One `[limits]` key and its value, alone: a known key (an unknown one gets the
    /// closest known key as a suggestion), a whole number, within the key's range.
    /// The error names the key and the allowed range.
    pub fn check_key(key: &str, value: &toml::Value) -> Result<(), ConfigError> {
        let Some(bound) = bound_of(key) else {
            let hint = match closest_key(key) {
                Some(known) => format!("did you mean `limits.{known}`?"),
                None => "`emcee config` prints every key".to_owned(),
            };
            return Err(bad(
                "limits",
                format!("unknown key `limits.{key}` ({hint})"),
            ));
        };
        match value {
            toml::Value::Integer(n) => bound.check(i128::from(*n)),
            other => {
                let shown = match other {
                    toml::Value::String(s) => format!(" {s:?}"),
                    toml::Value::Float(f) => format!(" {f}"),
                    toml::Value::Boolean(b) => format!(" {b}"),
                    toml::Value::Datetime(d) => format!(" {d}"),
                    _ => String::new(),
                };
                let of = if bound.unit().is_empty() { "" } else { " of" };
                Err(bad(
                    bound.name,
                    format!(
                        "expected a whole number{of}{}, got {}{shown}",
                        bound.unit(),
                        other.type_str()
                    ),
                ))
            }
        }
    }

    /// Whether every limit is within its range and the limits agree with each other
    /// (each combination refused here would crash the server or refuse every
    /// request); the error names the key and what is allowed. [`Limits::from_table`]
    /// and [`ServerBuilder::build`](crate::ServerBuilder::build) call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let all = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(all)) => all,
            _ => return Err(bad("limits", "cannot be read")),
        };
        for (key, value) in &all {
            let Some(bound) = bound_of(key) else {
                return Err(bad("limits", format!("limits.{key} has no range")));
            };
            bound.check(value.as_u64().map_or(i128::MAX, i128::from))?;
        }
        if self.max_body_bytes_total < self.max_message_bytes {
            return Err(bad(
                "limits.max_body_bytes_total",
                format!(
                    "{} is less than limits.max_message_bytes ({}): a body of that size could \
                     never be read (503 for ever); allowed: at least limits.max_message_bytes",
                    self.max_body_bytes_total, self.max_message_bytes
                ),
            ));
        }
        if self.max_pending_answer_bytes < self.max_result_bytes {
            return Err(bad(
                "limits.max_pending_answer_bytes",
                format!(
                    "{} is less than limits.max_result_bytes ({}): a result of that size could \
                     never be answered over HTTP (503 for ever); allowed: at least \
                     limits.max_result_bytes",
                    self.max_pending_answer_bytes, self.max_result_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// A principal's share of `total`: `configured`, or a quarter of `total` (at least
/// 1) when it is 0; never more than `total`.
fn share_of(configured: usize, total: usize) -> usize {
    let share = if configured == 0 {
        total.div_ceil(4).max(1)
    } else {
        configured
    };
    share.min(total)
}

impl Limits {
    /// The sessions one principal may hold: `max_sessions_per_principal`, or a
    /// quarter of `max_sessions` when it is 0.
    pub fn sessions_per_principal(&self) -> usize {
        share_of(self.max_sessions_per_principal, self.max_sessions)
    }

    /// The calls one principal may have in flight: `max_in_flight_per_principal`,
    /// or a quarter of `max_in_flight_total` when it is 0.
    pub fn in_flight_per_principal(&self) -> usize {
        share_of(self.max_in_flight_per_principal, self.max_in_flight_total)
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
            max_tasks_per_client: 100,
            task_store_bytes_per_client: 16 * 1024 * 1024,
            task_sweep_max: 1_000,
            task_ttl: Duration::from_secs(3600),
            task_timeout: Duration::from_secs(3600),
            task_poll_interval: Duration::from_secs(1),
            task_lease: Duration::from_secs(30),
            max_session_bytes: 16 * 1024,
            max_result_bytes: 4 * 1024 * 1024,
            max_output_bytes: 8 * 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            max_subscriptions: 16,
            max_uri_bytes: 2048,
            max_sessions: 2_000,
            max_sessions_per_principal: 0,
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
            max_listen_streams: 512,
            max_listen_streams_per_ip: 64,
            listen_max: Duration::from_secs(3600),
            sse_buffer_bytes: 1024 * 1024,
            max_body_bytes_total: 64 * 1024 * 1024,
            max_pending_answer_bytes: 64 * 1024 * 1024,
            max_in_flight_total: 4096,
            max_in_flight_per_principal: 0,
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
    /// Shared state on Redis or Valkey, e.g. `redis://127.0.0.1:6379/0`
    /// (`rediss://` for TLS is not built in): the kv, session records and task
    /// records that every instance of a fleet must see. Default: none, a sled
    /// database in the data directory.
    pub url: Option<String>,
    /// What an acknowledged write survives with Redis; see [`RedisDurability`].
    /// Default `none`.
    pub redis_durability: RedisDurability,
    /// Longest wait for one Redis command; past it storage is marked failing
    /// (`/health` 503) and commands are refused at once until Redis answers a
    /// `PING` again (every `retry_ms`). Default 2 s.
    #[serde(rename = "redis_timeout_ms", serialize_with = "ser_ms")]
    pub redis_timeout: Duration,
}

/// What an acknowledged write survives with Redis (`storage.redis_durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RedisDurability {
    /// What Redis acknowledged is in its memory (and in its snapshots or
    /// append-only file as its own configuration says): lost if Redis stops
    /// before it saved it.
    #[default]
    None,
    /// The server must run with `appendonly yes` (checked at start): a write
    /// survives a restart of Redis, and a power loss but for `appendfsync`'s
    /// window (1 s with `everysec`).
    Aof,
    /// Each acknowledged write is confirmed on the server's disk with `WAITAOF 1 0`
    /// (Redis 7.2+ or Valkey; checked at start): it survives a power loss.
    Fsync,
}

impl RedisDurability {
    /// The setting's value for this choice.
    pub fn name(self) -> &'static str {
        match self {
            RedisDurability::None => "none",
            RedisDurability::Aof => "aof",
            RedisDurability::Fsync => "fsync",
        }
    }

    /// The choice named `name`, if any.
    pub fn from_name(name: &str) -> Option<RedisDurability> {
        [
            RedisDurability::None,
            RedisDurability::Aof,
            RedisDurability::Fsync,
        ]
        .into_iter()
        .find(|d| d.name() == name)
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_capacity_bytes: 8 * 1024 * 1024,
            flush_timeout: Duration::from_secs(5),
            retry: Duration::from_secs(2),
            url: None,
            redis_durability: RedisDurability::None,
            redis_timeout: Duration::from_secs(2),
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
    /// refused with -32602; a warning at start where that can happen: an HTTP
    /// server with an `instance_id` or a non-loopback bind, never stdio).
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
        let secret = std::fs::read(path).map_err(|e| {
            bad(
                "mrtr.key_file",
                format!("cannot read the key file {}: {e}", path.display()),
            )
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
    /// cannot take every file descriptor. IPv6 addresses count by their /64 (one
    /// host usually has a whole /64), IPv4-mapped IPv6 as IPv4. Behind a proxy every
    /// connection comes from the proxy's address: raise it there, or limit
    /// connections per client in the proxy. Default 128: four addresses hold at
    /// most half of `max_connections`, so what they renew never fills the places
    /// the listener accepts (`/health/live` stays reachable).
    pub max_connections_per_ip: usize,
    /// Open MCP connections in all: a connection counts from its first `/mcp`
    /// request until it closes; the first `/mcp` request of one more gets 503 +
    /// `Retry-After` (`mcp_rejected_total{reason="connection_cap"}`) and its
    /// connection is closed. `/health` turns red (503, a `connections` check) while
    /// the cap is reached. Bounds what connections can hold in memory. Default
    /// 1024.
    pub max_connections: usize,
    /// Connections accepted beyond `max_connections` (split evenly between workers,
    /// like it): on them `/health*` and `/metrics` answer while the MCP connections
    /// are all taken, and an MCP request gets 503 at once. Past `max_connections +
    /// ops_connections` no new connection is accepted until one closes (they wait in
    /// the kernel's accept queue). With `admin_bind`, the admin listener accepts this
    /// many connections. Default 16; at most 4096.
    pub ops_connections: usize,
    /// Who may call: bearer tokens (`[auth]`). Default: none configured, anyone
    /// who reaches the port (and passes the Host/Origin check).
    pub auth: AuthConfig,
    /// Request rates (`[rate]`).
    pub rate: RateConfig,
}

/// `[rate]`: how often clients may start work over HTTP (`initialize`,
/// `tools/call`, a task's creation; never discovery, lists, `ping`, `listen`,
/// notifications or responses; stdio is never limited), as GCRA buckets: a rate
/// per second and a burst. Every rate is off by default (0): what a request costs
/// depends on the tools, which only the operator knows (SECURITY.md suggests
/// values). Past a limit: 429 + `Retry-After` with JSON-RPC
/// [`RATE_LIMITED`](crate::protocol::code::RATE_LIMITED) naming it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateConfig {
    /// Metered requests per second of one principal (`[auth]`). 0: off.
    pub per_principal_per_s: u32,
    /// Its burst (0: one second's worth).
    pub per_principal_burst: u32,
    /// Metered requests per second of one client address (IPv6 by /64) that
    /// brought no principal (auth off). 0: off.
    pub per_ip_per_s: u32,
    /// Its burst (0: one second's worth).
    pub per_ip_burst: u32,
    /// Metered requests per second of the whole server. 0: off.
    pub global_per_s: u32,
    /// Its burst (0: one second's worth).
    pub global_burst: u32,
    /// Keys (principals, addresses) each per-key limiter remembers; keys whose
    /// bucket is full again are forgotten (every 10 s, and at once at this bound).
    /// At the bound after that, a request of any key is refused (429 naming
    /// `rate.max_keys`). Default 10,000 (about 1 MiB).
    pub max_keys: usize,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            per_principal_per_s: 0,
            per_principal_burst: 0,
            per_ip_per_s: 0,
            per_ip_burst: 0,
            global_per_s: 0,
            global_burst: 0,
            max_keys: 10_000,
        }
    }
}

/// `[auth]`: bearer tokens and/or OAuth 2.1 access tokens on the HTTP transport
/// (stdio is never gated).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuthConfig {
    /// A file of bearer tokens: one a line, optionally followed by a space and the
    /// comma-separated tools it may call; `#` comments and blank lines ignored.
    /// Reloaded on SIGHUP while serving HTTP. Default: none, no token asked.
    pub tokens_file: Option<PathBuf>,
    /// Who may read `/health` (the details) and `/metrics` on the MCP listener when
    /// tokens are configured. `/health/live` and `/health/ready` stay open; the
    /// admin listener (`admin_bind`) is always open. Default: `token`.
    pub ops: OpsAccess,
    /// One kv namespace for every principal, as without auth. Default `false`:
    /// each principal's kv keys (the built-in kv tools, and
    /// [`CallContext::kv`](crate::handler::CallContext::kv)) are its own, each
    /// namespace within its own `limits.kv_max_bytes`.
    pub shared_kv: bool,
    /// Serve command tools (`[[tools.command]]`) on a non-loopback address
    /// without authentication; without it `emcee serve` refuses to start so.
    /// Default `false`. (The binary's rule: a library server has no command tools.)
    pub allow_unauthenticated_commands: bool,
    /// OAuth: the issuer a JWT access token's `iss` must equal. Setting it (or any
    /// other OAuth key) turns OAuth on; it then needs `jwks_file` or `jwks_url` and
    /// at least one of `authorization_servers`. Default: none, OAuth off.
    pub issuer: Option<String>,
    /// OAuth: the value a token's `aud` must contain. Default: `resource`.
    pub audience: Option<String>,
    /// OAuth: this server's resource URI (RFC 8707, RFC 9728), the public URL of
    /// the MCP endpoint, e.g. `https://mcp.example.com/mcp`. Default:
    /// `http://<bind address>/mcp` (logged at start).
    pub resource: Option<String>,
    /// OAuth: the authorization servers the metadata document names (issuer URLs).
    pub authorization_servers: Vec<String>,
    /// OAuth: the issuer's JWKS, read from this file at start (air-gapped hosts).
    pub jwks_file: Option<PathBuf>,
    /// OAuth: the issuer's JWKS, fetched from this URL (https, or http) at start and
    /// again for an unknown key id.
    pub jwks_url: Option<String>,
    /// OAuth: the shortest time between two JWKS fetches for unknown key ids.
    /// Default 30 s; 10..=60 s.
    pub jwks_refresh_min: Duration,
    /// OAuth: a JWKS fetch's time limit. Default 5 s; 100 ms..=30 s.
    pub jwks_timeout: Duration,
    /// OAuth: the largest JWKS document read (file or URL). Default 256 KiB;
    /// 1 KiB..=4 MiB.
    pub jwks_max_bytes: usize,
    /// OAuth: clock skew allowed on `exp` and `nbf`. Default 30 s; at most 300 s.
    pub leeway: Duration,
    /// OAuth: `[auth.scopes]`, tool name → the scope an access token needs to call
    /// it (and to see it in `tools/list`). Tools not named need none.
    pub scopes: std::collections::BTreeMap<String, String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            tokens_file: None,
            ops: OpsAccess::default(),
            shared_kv: false,
            allow_unauthenticated_commands: false,
            issuer: None,
            audience: None,
            resource: None,
            authorization_servers: Vec::new(),
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_min: Duration::from_secs(30),
            jwks_timeout: Duration::from_secs(5),
            jwks_max_bytes: 256 * 1024,
            leeway: Duration::from_secs(30),
            scopes: std::collections::BTreeMap::new(),
        }
    }
}

/// `[auth] jwks_refresh_min_s` bounds (seconds).
pub const JWKS_REFRESH_MIN_S: std::ops::RangeInclusive<u64> = 10..=60;
/// `[auth] jwks_timeout_ms` bounds.
pub const JWKS_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=30_000;
/// `[auth] jwks_max_bytes` bounds.
pub const JWKS_MAX_BYTES: std::ops::RangeInclusive<usize> = 1024..=4 * 1024 * 1024;
/// `[auth] leeway_s` at most.
pub const MAX_LEEWAY_S: u64 = 300;

impl AuthConfig {
    /// Whether tokens are asked for (a tokens file or OAuth).
    pub fn enabled(&self) -> bool {
        self.tokens_file.is_some() || self.oauth_enabled()
    }

    /// Whether an OAuth key is set (OAuth on).
    pub fn oauth_enabled(&self) -> bool {
        self.issuer.is_some()
            || self.audience.is_some()
            || self.resource.is_some()
            || !self.authorization_servers.is_empty()
            || self.jwks_file.is_some()
            || self.jwks_url.is_some()
            || !self.scopes.is_empty()
    }

    /// Check the OAuth keys: with OAuth on, `issuer`, one of `jwks_file` and
    /// `jwks_url`, and an authorization server are required; URLs are absolute
    /// http(s) URLs; bounds hold. The error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secs = |d: Duration| d.as_secs();
        if !JWKS_REFRESH_MIN_S.contains(&secs(self.jwks_refresh_min)) {
            return Err(bad("auth.jwks_refresh_min_s", "must be 10..=60 seconds"));
        }
        let ms = u64::try_from(self.jwks_timeout.as_millis()).unwrap_or(u64::MAX);
        if !JWKS_TIMEOUT_MS.contains(&ms) {
            return Err(bad("auth.jwks_timeout_ms", "must be 100..=30000"));
        }
        if !JWKS_MAX_BYTES.contains(&self.jwks_max_bytes) {
            return Err(bad("auth.jwks_max_bytes", "must be 1024..=4194304"));
        }
        if secs(self.leeway) > MAX_LEEWAY_S {
            return Err(bad("auth.leeway_s", "must be 0..=300 seconds"));
        }
        if !self.oauth_enabled() {
            return Ok(());
        }
        if cfg!(not(feature = "oauth")) {
            return Err(bad(
                "auth.issuer",
                "this build has no OAuth support (cargo feature `oauth`)",
            ));
        }
        let issuer = self
            .issuer
            .as_deref()
            .ok_or_else(|| bad("auth.issuer", "required when OAuth is on"))?;
        quoted_safe("auth.issuer", issuer)?;
        match (&self.jwks_file, &self.jwks_url) {
            (None, None) => {
                return Err(bad(
                    "auth.jwks_file",
                    "OAuth needs auth.jwks_file or auth.jwks_url",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(bad(
                    "auth.jwks_url",
                    "set auth.jwks_file or auth.jwks_url, not both",
                ))
            }
            (None, Some(url)) => http_url("auth.jwks_url", url)?,
            (Some(_), None) => {}
        }
        if self.authorization_servers.is_empty() {
            return Err(bad(
                "auth.authorization_servers",
                "OAuth needs at least one authorization server (its issuer URL)",
            ));
        }
        for server in &self.authorization_servers {
            http_url("auth.authorization_servers", server)?;
        }
        if let Some(resource) = &self.resource {
            http_url("auth.resource", resource)?;
            if resource.contains('#') {
                return Err(bad("auth.resource", "a resource URI has no fragment"));
            }
        }
        if let Some(audience) = &self.audience {
            if audience.is_empty() {
                return Err(bad("auth.audience", "must not be empty"));
            }
        }
        for (tool, scope) in &self.scopes {
            let ok = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !ok {
                return Err(bad(
                    "auth.scopes",
                    format!("the scope of `{tool}` must be one RFC 6749 scope token (no space, quote or backslash)"),
                ));
            }
        }
        Ok(())
    }
}

/// `value` is an absolute `http://` or `https://` URL fit for a quoted header
/// parameter.
fn http_url(name: &'static str, value: &str) -> Result<(), ConfigError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| bad(name, format!("`{value}` is not an http:// or https:// URL")))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad(name, format!("`{value}` has no host")));
    }
    quoted_safe(name, value)
}

/// `value` is visible ASCII without `"` or `\` (it goes into a quoted header
/// parameter or a log line).
fn quoted_safe(name: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(bad(
            name,
            "must be visible ASCII without spaces, quotes or backslashes",
        ));
    }
    Ok(())
}

/// `[auth] ops`: who may read `/health` and `/metrics` on the MCP listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpsAccess {
    /// Anyone the Host/Origin check lets in.
    Open,
    /// A valid bearer token (any of the file's), when tokens are configured.
    #[default]
    Token,
    /// Only on the admin listener (`admin_bind`, which must then be set): the MCP
    /// listener does not serve them.
    AdminOnly,
}

impl OpsAccess {
    /// The setting's value from its name: `open`, `token`, `admin_only`.
    pub fn from_name(name: &str) -> Option<OpsAccess> {
        match name {
            "open" => Some(OpsAccess::Open),
            "token" => Some(OpsAccess::Token),
            "admin_only" => Some(OpsAccess::AdminOnly),
            _ => None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allowed_hosts: ["localhost", "127.0.0.1", "[::1]"]
                .map(String::from)
                .to_vec(),
            allowed_origins: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections_per_ip: 128,
            max_connections: 1024,
            ops_connections: 16,
            auth: AuthConfig::default(),
            rate: RateConfig::default(),
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

    fn limits_of(text: &str) -> Result<Limits, String> {
        let table: toml::Table = toml::from_str(text).expect("toml");
        Limits::from_table(table).map_err(|e| e.to_string())
    }

    /// Every key `Limits` has has a range, and every range a key.
    #[test]
    fn every_limit_has_a_range() {
        let serde_json::Value::Object(all) =
            serde_json::to_value(Limits::default()).expect("serializes")
        else {
            panic!("an object")
        };
        let keys: Vec<&str> = all.keys().map(String::as_str).collect();
        let mut ranged: Vec<&str> = BOUNDS.iter().map(Bound::key).collect();
        ranged.sort_unstable();
        assert_eq!(keys, ranged);
        Limits::default()
            .validate()
            .expect("the defaults are valid");
    }

    /// Issue 18 item 7: each limit is accepted at both ends of its range and
    /// refused one past them, naming the key and the range.
    #[test]
    fn every_limit_is_refused_one_past_its_range() {
        for b in BOUNDS {
            let key = b.key();
            // max_message_bytes can only grow with max_body_bytes_total.
            let with = |n: u64| {
                let mut text = format!("{key} = {n}\n");
                if key == "max_message_bytes" {
                    text.push_str(&format!("max_body_bytes_total = {}\n", n.max(1)));
                }
                if key == "max_body_bytes_total" {
                    text.push_str("max_message_bytes = 1\n");
                }
                // max_result_bytes can only grow with max_pending_answer_bytes.
                if key == "max_result_bytes" {
                    text.push_str(&format!("max_pending_answer_bytes = {}\n", n.max(1)));
                }
                if key == "max_pending_answer_bytes" {
                    text.push_str("max_result_bytes = 1\n");
                }
                limits_of(&text)
            };
            assert!(with(b.min).is_ok(), "{key} = {}: {:?}", b.min, with(b.min));
            if b.min > 0 {
                let e = with(b.min - 1).unwrap_err();
                assert!(e.contains(b.name) && e.contains("allowed"), "{e}");
            }
            let top = b.max.min(i64::MAX as u64);
            assert!(with(top).is_ok(), "{key} = {top}: {:?}", with(top));
            if b.max < i64::MAX as u64 {
                let e = with(b.max + 1).unwrap_err();
                assert!(
                    e.contains(b.name) && e.contains(&format!("to {}", b.max)),
                    "{e}"
                );
            }
        }
        let e = limits_of("blocking_threads = 9223372036854775807").unwrap_err();
        assert_eq!(
            e,
            "invalid value for limits.blocking_threads: 9223372036854775807 is out of \
             range (allowed: 1 to 512)"
        );
        let e = limits_of("call_timeout_ms = -1").unwrap_err();
        assert!(
            e.contains("limits.call_timeout_ms") && e.contains("milliseconds"),
            "{e}"
        );
    }

    /// A result of `max_result_bytes` must fit in `max_pending_answer_bytes`, else
    /// every large answer gets 503 for ever (issue 18 item 1).
    #[test]
    fn the_answer_budget_must_hold_one_largest_result() {
        let e = limits_of("max_pending_answer_bytes = 1000\nmax_result_bytes = 1001").unwrap_err();
        assert!(
            e.contains("limits.max_pending_answer_bytes") && e.contains("limits.max_result_bytes"),
            "{e}"
        );
        assert!(limits_of("max_pending_answer_bytes = 1000\nmax_result_bytes = 1000").is_ok());
        assert_eq!(Limits::default().max_pending_answer_bytes, 64 * 1024 * 1024);
    }

    /// A body of `max_message_bytes` must fit in `max_body_bytes_total`, else every
    /// large request gets 503 for ever.
    #[test]
    fn the_body_budget_must_hold_one_largest_message() {
        let e = limits_of("max_body_bytes_total = 1000\nmax_message_bytes = 1001").unwrap_err();
        assert!(
            e.contains("limits.max_body_bytes_total") && e.contains("limits.max_message_bytes"),
            "{e}"
        );
        assert!(limits_of("max_body_bytes_total = 1000\nmax_message_bytes = 1000").is_ok());
        // 64 MiB default budget against a 100 MiB message.
        assert!(limits_of("max_message_bytes = 104857600").is_err());
    }

    /// An embedder's limits are checked the same way (`Server::builder().build()`
    /// calls `validate`): `Duration::MAX` does not wrap around to a small value.
    #[test]
    fn validate_refuses_what_from_table_refuses() {
        let l = Limits {
            blocking_threads: usize::MAX,
            ..Limits::default()
        };
        assert!(l
            .validate()
            .unwrap_err()
            .to_string()
            .contains("limits.blocking_threads"));
        let l = Limits {
            call_timeout: Duration::MAX,
            ..Limits::default()
        };
        assert!(l
            .validate()
            .unwrap_err()
            .to_string()
            .contains("limits.call_timeout_ms"));
        let l = Limits {
            listen_queue: usize::MAX,
            ..Limits::default()
        };
        assert!(l
            .validate()
            .unwrap_err()
            .to_string()
            .contains("limits.listen_queue"));
        let l = Limits {
            max_sessions: usize::MAX,
            ..Limits::default()
        };
        assert!(l.validate().is_ok(), "a count with no upper bound");
    }

    /// Issue 18 item 5: the task store's per-client shares and the sweep's batch
    /// are ranged at their edges.
    #[test]
    fn task_share_and_sweep_limits_are_ranged() {
        let check = |l: Limits| l.validate().map_err(|e| e.to_string());
        let share = |n| Limits {
            max_tasks_per_client: n,
            ..Limits::default()
        };
        assert!(check(share(1)).is_ok());
        assert!(check(share(0))
            .unwrap_err()
            .contains("limits.max_tasks_per_client"));
        let bytes = |n| Limits {
            task_store_bytes_per_client: n,
            ..Limits::default()
        };
        assert!(check(bytes(1)).is_ok());
        assert!(check(bytes(0))
            .unwrap_err()
            .contains("limits.task_store_bytes_per_client"));
        let sweep = |n| Limits {
            task_sweep_max: n,
            ..Limits::default()
        };
        assert!(check(sweep(1)).is_ok());
        assert!(check(sweep(MAX_TASK_SWEEP as usize)).is_ok());
        assert!(check(sweep(0))
            .unwrap_err()
            .contains("limits.task_sweep_max"));
        assert!(check(sweep(MAX_TASK_SWEEP as usize + 1))
            .unwrap_err()
            .contains("limits.task_sweep_max"));
    }

    /// Issue 18 item 14: a wrong type names the key and what is expected; a typo
    /// gets the closest key, not the list of all.
    #[test]
    fn key_errors_name_the_key_and_suggest_the_closest() {
        let e = limits_of("call_timeout_ms = \"5s\"").unwrap_err();
        assert_eq!(
            e,
            "invalid value for limits.call_timeout_ms: expected a whole number of \
             milliseconds, got string \"5s\""
        );
        let e = limits_of("call_timout_ms = 5").unwrap_err();
        assert_eq!(
            e,
            "invalid value for limits: unknown key `limits.call_timout_ms` (did you mean \
             `limits.call_timeout_ms`?)"
        );
        let e = limits_of("MAX_SESIONS = 5").unwrap_err();
        assert!(e.contains("did you mean `limits.max_sessions`?"), "{e}");
        let e = limits_of("colour = 1").unwrap_err();
        assert!(
            e.contains("`limits.colour`") && !e.contains("did you mean"),
            "{e}"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn a_missing_key_file_is_named_as_the_key_file() {
        let mrtr = MrtrConfig {
            key_file: Some("/nonexistent/key".into()),
            ..MrtrConfig::default()
        };
        let e = mrtr.secret().unwrap_err().to_string();
        assert!(
            e.contains("mrtr.key_file") && e.contains("/nonexistent/key"),
            "{e}"
        );
        assert!(!e.contains("config file"), "{e}");
    }

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
