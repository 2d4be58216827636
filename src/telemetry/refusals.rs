//! Refusals: every request the server refuses (an HTTP 4xx/503, a JSON-RPC -32000
//! at an in-flight bound, a dropped listen stream) is counted in
//! `mcp_rejected_total{reason}` and logged here, in one place, with its reason, and
//! when known its HTTP status and client address.
//!
//! Flood control, per reason, in fixed windows of `limits.refusal_log_interval_ms`:
//! the first `limits.refusal_log_burst` refusals of a window are logged one line
//! each; the rest are only counted, and one summary line ("suppressed K refusals of
//! reason R in the last T s") is written when the window is over: by the next
//! refusal of that reason, by [`Refusals::flush`] (called every second while the
//! server runs) or at exit. So a flood of N bad requests costs at most
//! `burst + 1` lines per reason and window, and no refusal goes unaccounted for.
//!
//! Level: `warn` for the reasons that usually mean a misconfiguration (a Host or
//! Origin outside `http.allowed_hosts`, one address over
//! `http.max_connections_per_ip`, the MCP connection, session and listen-stream caps,
//! a listen client too slow), `info` for the rest.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use slog::Logger;

use crate::config::Limits;
use crate::telemetry::metrics::{reason, Metrics};
use crate::telemetry::{clip_to, Maybe, LOG_ERROR_MAX};

/// One refusal.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// The `mcp_rejected_total` reason (`telemetry::metrics::reason`).
    pub reason: &'static str,
    /// The HTTP status answered, if any (none for a JSON-RPC refusal on stdio or
    /// inside a 200).
    pub status: Option<u16>,
    /// The client's address, when the transport knows it.
    pub client: Option<SocketAddr>,
    /// The HTTP method (`POST`, `GET`...), if any.
    pub method: Option<&'a str>,
    /// Why, as the client was told (clipped in the log).
    pub detail: &'a str,
}

impl<'a> Refused<'a> {
    /// A refusal with no HTTP context.
    pub fn new(reason: &'static str, detail: &'a str) -> Refused<'a> {
        Refused {
            reason,
            status: None,
            client: None,
            method: None,
            detail,
        }
    }
}

/// The current window of one reason.
#[derive(Debug)]
struct Window {
    started: Instant,
    logged: usize,
    suppressed: u64,
}

/// Counts and logs refusals, with flood control (see the module doc).
#[derive(Debug)]
pub struct Refusals {
    rejected: IntCounterVec,
    log: Logger,
    burst: usize,
    interval: Duration,
    windows: Mutex<HashMap<&'static str, Window>>,
}

fn is_warning(reason: &str) -> bool {
    matches!(
        reason,
        reason::FORBIDDEN
            | reason::CONNECTION_LIMIT
            | reason::CONNECTION_CAP
            | reason::SESSION_CAP
            | reason::LISTEN_CAP
            | reason::LISTENER_SLOW
            | reason::RATE_LIMIT
            | reason::SESSION_SHARE
    )
}

impl Refusals {
    /// Refusals counted in `metrics` and logged to `log` within `limits`'
    /// `refusal_log_burst` per `refusal_log_interval`.
    pub fn new(metrics: &Metrics, limits: &Limits, log: Logger) -> Refusals {
        Refusals {
            rejected: metrics.rejected.clone(),
            log,
            burst: limits.refusal_log_burst,
            interval: limits.refusal_log_interval,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count `r` and log it, unless its reason already had its burst of lines in
    /// this window.
    pub fn refuse(&self, r: Refused<'_>) {
        self.rejected.with_label_values(&[r.reason]).inc();
        let now = Instant::now();
        let (log_it, ended) = {
            let Ok(mut windows) = self.windows.lock() else {
                return;
            };
            let w = windows.entry(r.reason).or_insert(Window {
                started: now,
                logged: 0,
                suppressed: 0,
            });
            let mut ended = None;
            if now.duration_since(w.started) >= self.interval {
                ended = (w.suppressed > 0).then(|| (w.suppressed, now.duration_since(w.started)));
                *w = Window {
                    started: now,
                    logged: 0,
                    suppressed: 0,
                };
            }
            if w.logged < self.burst {
                w.logged += 1;
                (true, ended)
            } else {
                w.suppressed += 1;
                (false, ended)
            }
        };
        if let Some((count, over)) = ended {
            self.summary(r.reason, count, over);
        }
        if log_it {
            let detail = clip_to(r.detail, LOG_ERROR_MAX);
            let status = Maybe("status", r.status);
            let client = Maybe("client", r.client.map(|a| a.to_string()));
            let method = Maybe("http_method", r.method);
            if is_warning(r.reason) {
                slog::warn!(self.log, "request refused"; "reason" => r.reason, status, client,
                    method, "error" => %detail);
            } else {
                slog::info!(self.log, "request refused"; "reason" => r.reason, status, client,
                    method, "error" => %detail);
            }
        }
    }

    /// Write the summary of every window that is over (every window, when `all`:
    /// at exit), and forget them.
    pub fn flush(&self, all: bool) {
        let now = Instant::now();
        let mut ended = Vec::new();
        if let Ok(mut windows) = self.windows.lock() {
            windows.retain(|reason, w| {
                let over = now.duration_since(w.started);
                if !all && over < self.interval {
                    return true;
                }
                if w.suppressed > 0 {
                    ended.push((*reason, w.suppressed, over));
                }
                false
            });
        }
        for (reason, count, over) in ended {
            self.summary(reason, count, over);
        }
    }

    fn summary(&self, reason: &'static str, count: u64, over: Duration) {
        let secs = over.as_secs_f64();
        let msg = format!("suppressed {count} refusals of reason {reason} in the last {secs:.0} s");
        if is_warning(reason) {
            slog::warn!(self.log, "{}", msg; "reason" => reason, "suppressed" => count,
                "window_s" => secs);
        } else {
            slog::info!(self.log, "{}", msg; "reason" => reason, "suppressed" => count,
                "window_s" => secs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogLevel;
    use crate::telemetry::logging::Buf;

    fn lines(buf: &Buf) -> Vec<serde_json::Value> {
        String::from_utf8(buf.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_flood_is_a_burst_of_lines_then_one_summary_per_window() {
        let buf = Buf::default();
        let log = crate::telemetry::logging::logger_to(buf.clone(), LogLevel::Info);
        let metrics = Metrics::new();
        let limits = Limits {
            refusal_log_burst: 3,
            refusal_log_interval: Duration::from_millis(50),
            ..Limits::default()
        };
        let refusals = Refusals::new(&metrics, &limits, log);
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        for _ in 0..100 {
            refusals.refuse(Refused {
                status: Some(403),
                client: Some(addr),
                method: Some("POST"),
                ..Refused::new(reason::FORBIDDEN, "host not allowed: \"evil\"")
            });
        }
        refusals.refuse(Refused::new(reason::BAD_REQUEST, "bad"));
        refusals.flush(false);
        let got = lines(&buf);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0]["msg"], "request refused");
        assert_eq!(got[0]["level"], "warning");
        assert_eq!(got[0]["status"], 403);
        assert_eq!(got[0]["client"], "127.0.0.1:4000");
        assert_eq!(got[0]["reason"], "forbidden");
        assert_eq!(got[3]["level"], "info");
        assert!(got[3].get("status").is_none() && got[3].get("client").is_none());
        std::thread::sleep(Duration::from_millis(60));
        refusals.flush(false);
        let got = lines(&buf);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[4]["suppressed"], 97);
        assert_eq!(got[4]["reason"], "forbidden");
        assert!(got[4]["msg"]
            .as_str()
            .unwrap()
            .starts_with("suppressed 97 refusals of reason forbidden in the last"));
        // A new window logs again.
        refusals.refuse(Refused::new(reason::FORBIDDEN, "again"));
        assert_eq!(lines(&buf).len(), 6);
        assert_eq!(
            metrics
                .rejected
                .with_label_values(&[reason::FORBIDDEN])
                .get(),
            101
        );
    }
}
