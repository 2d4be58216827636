//! What a run measured: per-worker [`Stats`] (an HdrHistogram of latencies in
//! microseconds, errors by kind) merged into a [`Report`], printed as a table or as
//! one JSON object whose field names are stable (listed in `emcee bench --help`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::{profile_name, protocol_name, Plan, Profile, Protocol};
use super::procfs::Sample;
use super::rpc::Fail;

/// Longest latency the histogram tracks (longer ones saturate): one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// One worker's (or the merged) counts.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latencies of successful requests, µs (3 significant digits).
    pub hist: Histogram<u64>,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by [`Fail::kind`].
    pub errors: BTreeMap<String, u64>,
    /// The first message seen of each kind.
    pub examples: BTreeMap<String, String>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Empty counts.
    pub fn new() -> Stats {
        Stats {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
            ok: 0,
            errors: BTreeMap::new(),
            examples: BTreeMap::new(),
        }
    }

    /// A success that took `latency`.
    pub fn ok(&mut self, latency: Duration) {
        self.ok += 1;
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
    }

    /// A failure.
    pub fn fail(&mut self, f: &Fail) {
        let kind = f.kind();
        if !self.examples.contains_key(&kind) {
            self.examples.insert(kind.clone(), f.to_string());
        }
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Add `other`'s counts.
    pub fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.merge_errors(other);
    }

    /// Add `other`'s failures only (when its successes are of another kind of request).
    pub fn merge_errors(&mut self, other: &Stats) {
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        for (k, m) in &other.examples {
            self.examples.entry(k.clone()).or_insert_with(|| m.clone());
        }
    }

    /// All failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Fastest.
    pub min: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

impl Latency {
    /// Percentiles of `h` (all 0 when it is empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The sampled server process.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Server {
    /// Its pid.
    pub pid: u32,
    /// RSS at the start of the measured phase, bytes.
    pub rss_before_bytes: u64,
    /// RSS at its end, bytes.
    pub rss_after_bytes: u64,
    /// CPU time (user + system) spent during it, seconds.
    pub cpu_s: f64,
    /// That CPU time over the phase's wall time, in percent of one core.
    pub cpu_percent: f64,
}

impl Server {
    /// From samples at the start and the end of a phase of `wall` length.
    pub fn of(pid: u32, before: Sample, after: Sample, wall: Duration) -> Server {
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        let wall = wall.as_secs_f64();
        Server {
            pid,
            rss_before_bytes: before.rss_bytes,
            rss_after_bytes: after.rss_bytes,
            cpu_s: round3(cpu),
            cpu_percent: if wall > 0.0 {
                (cpu / wall * 1000.0).round() / 10.0
            } else {
                0.0
            },
        }
    }
}

/// The result of a run; serialized as-is by `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Profile name.
    pub profile: Profile,
    /// Protocol name.
    pub protocol: Protocol,
    /// URL or command line.
    pub target: String,
    /// The tool called.
    pub tool: String,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Sessions used (call) or opened (sessions); `None` for churn and stdio.
    pub sessions: Option<usize>,
    /// Client threads.
    pub threads: usize,
    /// Measured requests (ok + errors).
    pub requests: u64,
    /// Successful ones.
    pub ok: u64,
    /// Failed ones.
    pub errors: u64,
    /// Failed ones by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first message of each kind.
    pub error_examples: BTreeMap<String, String>,
    /// Wall time of the measured phase, seconds.
    pub duration_s: f64,
    /// `requests / duration_s`.
    pub requests_per_s: f64,
    /// Latency of successful requests, µs.
    pub latency_us: Latency,
    /// The sampled server, when there is a pid.
    pub server: Option<Server>,
    /// Sessions profile: RSS growth / sessions opened, bytes.
    pub memory_per_session_bytes: Option<u64>,
}

impl Report {
    /// Assemble a report of `plan`'s run.
    pub fn new(plan: &Plan, stats: &Stats, wall: Duration, server: Option<Server>) -> Report {
        let errors = stats.error_count();
        let requests = stats.ok + errors;
        let secs = wall.as_secs_f64();
        let sessions = match (plan.profile, plan.protocol) {
            (Profile::Call, Protocol::Legacy) | (Profile::Sessions, _) => Some(plan.sessions),
            _ => None,
        };
        let memory_per_session_bytes = match (plan.profile, &server) {
            (Profile::Sessions, Some(s)) if stats.ok > 0 => {
                Some(s.rss_after_bytes.saturating_sub(s.rss_before_bytes) / stats.ok)
            }
            _ => None,
        };
        Report {
            profile: plan.profile,
            protocol: plan.protocol,
            target: plan.target.describe(),
            tool: plan.tool.clone(),
            concurrency: plan.concurrency,
            sessions,
            threads: plan.threads,
            requests,
            ok: stats.ok,
            errors,
            errors_by_kind: stats.errors.clone(),
            error_examples: stats.examples.clone(),
            duration_s: round3(secs),
            requests_per_s: if secs > 0.0 {
                (requests as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
            latency_us: Latency::of(&stats.hist),
            server,
            memory_per_session_bytes,
        }
    }

    /// The one-object JSON form.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let unit = match self.profile {
            Profile::Churn => "iterations",
            Profile::Sessions => "sessions opened",
            Profile::Call | Profile::Stdio => "requests",
        };
        let _ = writeln!(
            t,
            "emcee bench: {} profile, {} protocol, {}",
            profile_name(self.profile),
            protocol_name(self.protocol),
            self.target
        );
        let mut shape = format!("tool {}, {} workers", self.tool, self.concurrency);
        if let (Profile::Call, Some(s)) = (self.profile, self.sessions) {
            let _ = write!(shape, " over {s} sessions");
        }
        let _ = writeln!(t, "  {shape}, {} client threads", self.threads);
        let _ = writeln!(t);
        let _ = writeln!(t, "  {:<12}{} {unit}", "requests", self.requests);
        let _ = writeln!(t, "  {:<12}{}", "ok", self.ok);
        let _ = writeln!(t, "  {:<12}{}", "errors", self.errors);
        let _ = writeln!(t, "  {:<12}{:.3} s", "duration", self.duration_s);
        let _ = writeln!(
            t,
            "  {:<12}{:.1} {unit}/s",
            "throughput", self.requests_per_s
        );
        let l = &self.latency_us;
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "  {:<12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency", "min", "p50", "p90", "p99", "p99.9", "max"
        );
        let _ = writeln!(
            t,
            "  {:<12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "",
            fmt_us(l.min),
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max)
        );
        if !self.errors_by_kind.is_empty() {
            let _ = writeln!(t);
            let _ = writeln!(t, "  errors by kind");
            for (kind, n) in &self.errors_by_kind {
                let example = self
                    .error_examples
                    .get(kind)
                    .map(|m| format!("  (e.g. {m})"))
                    .unwrap_or_default();
                let _ = writeln!(t, "    {kind:<20}{n:>10}{example}");
            }
        }
        if let Some(s) = &self.server {
            let _ = writeln!(t);
            let _ = writeln!(t, "  server pid {}", s.pid);
            let growth = s.rss_after_bytes as i64 - s.rss_before_bytes as i64;
            let _ = writeln!(
                t,
                "  {:<12}{} -> {} ({}{})",
                "rss",
                fmt_bytes(s.rss_before_bytes),
                fmt_bytes(s.rss_after_bytes),
                if growth < 0 { "-" } else { "+" },
                fmt_bytes(growth.unsigned_abs())
            );
            let _ = writeln!(
                t,
                "  {:<12}{:.2} s ({:.1}% of one core)",
                "cpu", s.cpu_s, s.cpu_percent
            );
            if let Some(per) = self.memory_per_session_bytes {
                let _ = writeln!(t, "  {:<12}{} per session", "memory", fmt_bytes(per));
            }
        }
        t
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Microseconds for people: `850µs`, `1.25ms`, `2.50s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    if b < 1024 {
        format!("{b} B")
    } else if b < 1024 * 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else if b < 1024 * 1024 * 1024 {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b as f64 / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args::{BenchArgs, Plan};
    use crate::cli::{Cli, CliCommand};
    use clap::Parser;

    fn plan(args: &[&str]) -> Plan {
        let argv = ["emcee", "bench"].iter().chain(args.iter()).copied();
        match Cli::try_parse_from(argv).unwrap().command {
            CliCommand::Bench(b) => Plan::from_args(b).unwrap(),
            _ => unreachable!(),
        }
    }

    fn stats() -> Stats {
        let mut s = Stats::new();
        for us in 1..=1000u64 {
            s.ok(Duration::from_micros(us));
        }
        let mut other = Stats::new();
        other.ok(Duration::from_millis(50));
        other.fail(&Fail::Http(404));
        other.fail(&Fail::Http(404));
        other.fail(&Fail::ToolError(String::new()));
        other.fail(&Fail::Transport("read: reset".into()));
        s.merge(&other);
        s
    }

    #[test]
    fn percentiles() {
        let s = stats();
        let l = Latency::of(&s.hist);
        assert_eq!(l.min, 1);
        assert_eq!(l.p50, 501, "the 501st of 1001 values");
        assert_eq!(l.p90, 901);
        // 3 significant digits: within 0.1%.
        assert!((989..=992).contains(&l.p99), "{l:?}");
        assert!(l.p999 >= 999 && l.p999 <= 1001, "{l:?}");
        assert!((49_950..=50_050).contains(&l.max), "{l:?}");
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999);
        assert!(l.p999 <= l.max);
        assert_eq!(Latency::of(&Stats::new().hist), Latency::default());
    }

    #[test]
    fn json_shape_is_stable() {
        let p = plan(&["--url", "http://127.0.0.1:1/mcp", "--threads", "2"]);
        let before = Sample {
            rss_bytes: 10 << 20,
            cpu: Duration::from_millis(1000),
        };
        let after = Sample {
            rss_bytes: 12 << 20,
            cpu: Duration::from_millis(1500),
        };
        let server = Server::of(7, before, after, Duration::from_secs(1));
        let r = Report::new(&p, &stats(), Duration::from_secs(2), Some(server));
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "profile",
            "protocol",
            "target",
            "tool",
            "concurrency",
            "sessions",
            "threads",
            "requests",
            "ok",
            "errors",
            "errors_by_kind",
            "error_examples",
            "duration_s",
            "requests_per_s",
            "latency_us",
            "server",
            "memory_per_session_bytes",
        ];
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(v["profile"], "call");
        assert_eq!(v["protocol"], "legacy");
        assert_eq!(v["sessions"], 8);
        assert_eq!(v["requests"], 1005);
        assert_eq!(v["ok"], 1001);
        assert_eq!(v["errors"], 4);
        assert_eq!(
            v["errors_by_kind"],
            serde_json::json!({"http_404": 2, "tool_error": 1, "transport": 1})
        );
        assert_eq!(v["error_examples"]["transport"], "read: reset");
        assert_eq!(v["duration_s"], 2.0);
        assert_eq!(v["requests_per_s"], 502.5);
        for k in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][k].is_number(), "{k}");
        }
        assert_eq!(
            v["server"],
            serde_json::json!({"pid": 7, "rss_before_bytes": 10 << 20,
                "rss_after_bytes": 12 << 20, "cpu_s": 0.5, "cpu_percent": 50.0})
        );
        assert!(v["memory_per_session_bytes"].is_null());
        let p = plan(&[
            "--url",
            "http://127.0.0.1:1/mcp",
            "--profile",
            "sessions",
            "--sessions",
            "4",
        ]);
        let mut s = Stats::new();
        for _ in 0..4 {
            s.ok(Duration::from_millis(1));
        }
        let r = Report::new(&p, &s, Duration::from_secs(1), Some(server_of(1000, 5096)));
        assert_eq!(r.memory_per_session_bytes, Some(1024));
        let r = Report::new(&p, &s, Duration::from_secs(1), None);
        assert_eq!(r.memory_per_session_bytes, None);
        let _: BenchArgs = match Cli::try_parse_from(["emcee", "bench", "--cmd", "x"])
            .unwrap()
            .command
        {
            CliCommand::Bench(b) => b,
            _ => unreachable!(),
        };
    }

    fn server_of(before: u64, after: u64) -> Server {
        let s = |rss_bytes| Sample {
            rss_bytes,
            cpu: Duration::ZERO,
        };
        Server::of(1, s(before), s(after), Duration::from_secs(1))
    }

    #[test]
    fn table_formatting() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(1250), "1.25ms");
        assert_eq!(fmt_us(2_500_000), "2.50s");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
        let p = plan(&["--url", "http://127.0.0.1:1/mcp", "--threads", "2"]);
        let r = Report::new(
            &p,
            &stats(),
            Duration::from_secs(2),
            Some(server_of(1 << 20, 2 << 20)),
        );
        let t = r.table();
        for needle in [
            "call profile, legacy protocol, http://127.0.0.1:1/mcp",
            "32 workers over 8 sessions, 2 client threads",
            "requests    1005 requests",
            "throughput  502.5 requests/s",
            "p99.9",
            "501µs",
            "http_404",
            "(e.g. HTTP status 404)",
            "server pid 1",
            "1.0 MiB -> 2.0 MiB (+1.0 MiB)",
        ] {
            assert!(t.contains(needle), "{needle:?} not in\n{t}");
        }
    }
}
