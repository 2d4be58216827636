//! Health: the checks behind `/health` (DESIGN §4).
//!
//! Three kinds of check, all real: a storage probe (write then read a probe key), the
//! Root actor answering within [`CHECK_DEADLINE`], and every dependency check
//! registered through the library API ([`HealthChecks::add`]). A check that does not
//! answer within the deadline fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use serde::Serialize;

/// How long any one check may take before it counts as failed.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(1);

type CheckFn = dyn Fn() -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync;

/// Dependency checks registered by tools or embedders.
#[derive(Default)]
pub struct HealthChecks(Vec<(String, Box<CheckFn>)>);

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl HealthChecks {
    /// Register a check named `name`: `Ok(())` when the dependency is usable, else
    /// `Err(why)`.
    pub fn add<F, Fut>(&mut self, name: impl Into<String>, check: F) -> &mut Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + 'static,
    {
        self.0
            .push((name.into(), Box::new(move || Box::pin(check()))));
        self
    }

    /// Run every registered check (with the deadline) into `out`.
    pub async fn run_into(&self, out: &mut BTreeMap<String, CheckResult>) {
        for (name, check) in &self.0 {
            out.insert(name.clone(), timed(check()).await);
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CheckResult {
    /// `ok` or `fail`.
    pub status: &'static str,
    /// How long the check took.
    pub duration_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CheckResult {
    /// A check that passed at once (one that reads a number, not a dependency).
    pub fn passed() -> CheckResult {
        CheckResult {
            status: "ok",
            duration_ms: 0.0,
            error: None,
        }
    }

    /// A check that failed at once, for `why`.
    pub fn failed(why: impl Into<String>) -> CheckResult {
        CheckResult {
            status: "fail",
            duration_ms: 0.0,
            error: Some(why.into()),
        }
    }

    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Run one check under [`CHECK_DEADLINE`].
pub async fn timed(check: impl Future<Output = Result<(), String>>) -> CheckResult {
    let started = Instant::now();
    let outcome = match actix_rt::time::timeout(CHECK_DEADLINE, check).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} ms",
            CHECK_DEADLINE.as_millis()
        )),
    };
    CheckResult {
        status: if outcome.is_ok() { "ok" } else { "fail" },
        duration_ms: crate::telemetry::millis(started.elapsed()),
        error: outcome.err(),
    }
}

/// The `/health` body.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// `ok` when every check passed, else `fail`.
    pub status: &'static str,
    /// emcee's version.
    pub version: &'static str,
    /// Seconds since the process started.
    pub uptime_s: u64,
    /// Live sessions.
    pub sessions: usize,
    /// Resident memory.
    pub memory_rss_bytes: u64,
    /// Open MCP connections and `http.max_connections` (served over HTTP by
    /// [`crate::Server::serve`]); the `connections` check fails at the cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Connections>,
    /// Every check by name.
    pub checks: BTreeMap<String, CheckResult>,
}

/// Open MCP connections against their cap, in the `/health` body.
#[derive(Debug, Clone, Copy, Serialize)]
#[non_exhaustive]
pub struct Connections {
    /// Connections that sent an `/mcp` request and are still open.
    pub open: usize,
    /// `http.max_connections`.
    pub max: usize,
}

impl HealthReport {
    /// Assemble a report from finished checks.
    pub fn new(checks: BTreeMap<String, CheckResult>, sessions: usize) -> HealthReport {
        let ok = checks.values().all(CheckResult::ok);
        HealthReport {
            status: if ok { "ok" } else { "fail" },
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: crate::telemetry::now_ms() / 1000,
            sessions,
            memory_rss_bytes: rss_bytes().unwrap_or(0),
            connections: None,
            checks,
        }
    }

    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Resident set size of this process (Linux `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn failing_and_slow_checks_fail_the_report() {
        let mut checks = HealthChecks::default();
        checks.add("good", || async { Ok(()) });
        checks.add("bad", || async { Err("down".to_owned()) });
        let mut out = BTreeMap::new();
        checks.run_into(&mut out).await;
        assert!(out["good"].ok());
        assert_eq!(out["bad"].error.as_deref(), Some("down"));
        let report = HealthReport::new(out, 0);
        assert!(!report.ok());
        assert!(report.memory_rss_bytes > 0);
    }
}
