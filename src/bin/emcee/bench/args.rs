//! `emcee bench` flags ([`BenchArgs`], parsed by clap) and their validation into a
//! [`Plan`]: the profile and target resolved, defaults filled in, every value checked.
//! A bad value is one line naming it (exit 2).

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;

/// The text after `emcee bench --help`'s flag list: profiles, checks, report fields.
pub const BENCH_HELP: &str = "\
Profiles:
  call      S sessions (--sessions, default 8) opened with initialize, C workers
            (--concurrency) spread over them, each with its own keep-alive connection,
            sending tools/call back to back: --warmup calls first (not measured), then
            --requests calls or calls for --duration. The sessions are deleted at the end.
  sessions  open K sessions (--sessions K, default 1000; initialize + initialized) with
            C workers and hold them (for --duration if given), call the tool once on
            every one of them (a held session that is not served counts as an error),
            then delete them. Latencies are those of the opening. With --pid, reports
            the server's RSS growth over the opening divided by the sessions opened
            (memory per session).
  churn     per iteration: initialize -> initialized -> tools/call -> DELETE, on one
            connection per worker; --requests iterations (or --duration). Needs legacy.
  stdio     the call profile over --cmd: spawn the command, newline-delimited JSON-RPC
            on its stdin/stdout, C requests in flight at once; the child's RSS and CPU
            are reported (or --pid's). Picked by default when --cmd is given.

Protocols:
  legacy    2025-11-25 session era: initialize per session, Mcp-Session-Id and
            MCP-Protocol-Version on later requests, notifications/initialized.
  modern    2026-07-28 sessionless: no initialize; every request carries
            params._meta[\"io.modelcontextprotocol/protocolVersion\"] and the headers
            MCP-Protocol-Version, Mcp-Method and Mcp-Name.

Every response is checked: a JSON-RPC result with the request's id and, for
tools/call, no isError: true. application/json and text/event-stream answers are both
read (SSE: priming events and notifications are skipped until the response). Errors
are counted by kind: http_<status>, jsonrpc_<code>, tool_error, timeout, transport
(connect/IO), protocol (bad JSON, mismatched id). Latency is measured per successful
request (per iteration for churn, per session opened for sessions), in microseconds.

Report: a table on stdout, or with --json one JSON object with these fields:
  profile, protocol, target, tool, concurrency, sessions (null for churn, stdio and
  modern), threads; requests (measured, ok + errors), ok, errors, errors_by_kind {kind: count},
  error_examples {kind: first message}, duration_s, requests_per_s,
  latency_us {min, mean, p50, p90, p99, p999, max} (successful requests),
  server (null without --pid; stdio samples its child) {pid, rss_before_bytes,
  rss_after_bytes, cpu_s, cpu_percent} sampled at the start and end of the measured
  phase (cpu_percent: of one core),
  memory_per_session_bytes (sessions profile with a pid, else null).
A progress bar is drawn on stderr when it is a terminal.

Exit codes: 0 the run completed (errors are counted, not fatal), 1 the target is
unreachable at start (connect, spawn or opening a session failed), 2 bad arguments.

Examples:
  emcee bench --url http://127.0.0.1:8080/mcp --requests 200000 --pid $(pidof emcee)
  emcee bench --url http://127.0.0.1:8080/mcp --profile sessions --sessions 1000 --pid 1234
  emcee bench --cmd \"emcee stdio --data-dir /tmp/d\" --duration 10s --json";

/// Load profile (see `emcee bench --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// tools/call back to back over HTTP sessions.
    Call,
    /// Open and hold sessions; memory per session.
    Sessions,
    /// initialize → tools/call → DELETE per iteration.
    Churn,
    /// The call profile over a spawned stdio server.
    Stdio,
}

/// Protocol era the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// 2025-11-25: initialize, sessions.
    Legacy,
    /// 2026-07-28: sessionless, per-request `_meta` and headers.
    Modern,
}

/// Flags of `emcee bench`: a load generator for MCP servers.
#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp (plain http only).
    #[arg(long, value_name = "URL", conflicts_with = "cmd")]
    pub url: Option<String>,
    /// stdio server command line, e.g. "emcee stdio --data-dir /tmp/d" (split on
    /// whitespace; quotes group words).
    #[arg(long, value_name = "COMMAND")]
    pub cmd: Option<String>,
    /// Load profile: call (default with --url), sessions, churn, stdio (default with --cmd).
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Protocol era: legacy (2025-11-25, sessions) or modern (2026-07-28, sessionless).
    #[arg(long, value_enum, default_value_t = Protocol::Legacy)]
    pub protocol: Protocol,
    /// Sessions: call profile 8, sessions profile 1000 (ignored by churn and stdio).
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub sessions: Option<usize>,
    /// Concurrent workers (requests in flight).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = positive_usize)]
    pub concurrency: usize,
    /// Measured requests (iterations for churn) [default: 100000].
    #[arg(long, value_name = "N", value_parser = positive_u64, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Run the measured phase for this long instead (e.g. 10s, 500ms, 2m); for the
    /// sessions profile: how long to hold the sessions.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests before the measured phase (call and stdio profiles).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub warmup: u64,
    /// Tool to call.
    #[arg(long, value_name = "NAME", default_value = "echo")]
    pub tool: String,
    /// The tool's arguments (a JSON object).
    #[arg(long = "args", value_name = "JSON", default_value = r#"{"text":"hello"}"#,
          value_parser = parse_json_object)]
    pub tool_args: Value,
    /// Per-request timeout (counted as a `timeout` error).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Server process to sample: RSS (VmRSS) and CPU time (utime + stime) from /proc.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Client threads [default: number of CPUs].
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// A file whose first line is a bearer token, sent as `Authorization: Bearer`
    /// on every HTTP request (a server with `[auth]`); read from a file so that the
    /// token is not on the command line.
    #[arg(long, value_name = "PATH", requires = "url")]
    pub bearer_file: Option<std::path::PathBuf>,
}

/// What the run stops on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many measured requests.
    Requests(u64),
    /// After this long.
    Duration(Duration),
}

/// A Streamable HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The URL as given.
    pub url: String,
    /// `host[:port]` as written (the `Host` header).
    pub authority: String,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query (`/` when absent).
    pub path: String,
    /// The bearer token every request carries (`--bearer-file`).
    pub bearer: Option<String>,
}

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Streamable HTTP.
    Http(HttpTarget),
    /// A command to spawn (program and arguments).
    Stdio(Vec<String>),
}

impl Target {
    /// The target as the report names it.
    pub fn describe(&self) -> String {
        match self {
            Target::Http(t) => t.url.clone(),
            Target::Stdio(argv) => argv.join(" "),
        }
    }
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Load profile.
    pub profile: Profile,
    /// Protocol era.
    pub protocol: Protocol,
    /// Where the load goes.
    pub target: Target,
    /// Sessions (call: spread over; sessions: to open); 1 for churn and stdio.
    pub sessions: usize,
    /// Concurrent workers.
    pub concurrency: usize,
    /// When the measured phase ends.
    pub stop: Stop,
    /// How long the sessions profile holds its sessions.
    pub hold: Duration,
    /// Unmeasured requests first.
    pub warmup: u64,
    /// Tool name.
    pub tool: String,
    /// Tool arguments (an object).
    pub tool_args: Value,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Process to sample.
    pub pid: Option<u32>,
    /// JSON output.
    pub json: bool,
    /// Client threads.
    pub threads: usize,
}

/// Default measured requests.
pub const DEFAULT_REQUESTS: u64 = 100_000;
/// Default sessions of the call profile.
pub const DEFAULT_CALL_SESSIONS: usize = 8;
/// Default sessions of the sessions profile.
pub const DEFAULT_HELD_SESSIONS: usize = 1000;

impl Plan {
    /// Check the flags and fill in the defaults; `Err` is one line naming the problem.
    pub fn from_args(a: BenchArgs) -> Result<Plan, String> {
        let profile = match (a.profile, &a.url, &a.cmd) {
            (_, None, None) => return Err("one of --url or --cmd is required".into()),
            (None, Some(_), _) => Profile::Call,
            (None, None, Some(_)) => Profile::Stdio,
            (Some(Profile::Stdio), Some(_), _) => {
                return Err("--profile stdio needs --cmd, not --url".into())
            }
            (Some(p), None, Some(_)) if p != Profile::Stdio => {
                return Err(format!(
                    "--profile {} needs --url (--cmd goes with --profile stdio)",
                    profile_name(p)
                ))
            }
            (Some(p), _, _) => p,
        };
        if a.protocol == Protocol::Modern && matches!(profile, Profile::Sessions | Profile::Churn) {
            return Err(format!(
                "--profile {} needs --protocol legacy (the modern protocol has no sessions)",
                profile_name(profile)
            ));
        }
        let target = match (a.url, a.cmd) {
            (Some(url), _) => Target::Http(HttpTarget {
                bearer: a.bearer_file.as_deref().map(read_bearer).transpose()?,
                ..parse_url(&url)?
            }),
            (None, Some(cmd)) => Target::Stdio(split_command(&cmd)?),
            (None, None) => unreachable!("checked above"),
        };
        let sessions = match profile {
            Profile::Call => a.sessions.unwrap_or(DEFAULT_CALL_SESSIONS),
            Profile::Sessions => a.sessions.unwrap_or(DEFAULT_HELD_SESSIONS),
            Profile::Churn | Profile::Stdio => 1,
        };
        let (stop, hold) = match (profile, a.duration) {
            (Profile::Sessions, d) => {
                (Stop::Requests(sessions as u64), d.unwrap_or(Duration::ZERO))
            }
            (_, Some(d)) => (Stop::Duration(d), Duration::ZERO),
            (_, None) => (
                Stop::Requests(a.requests.unwrap_or(DEFAULT_REQUESTS)),
                Duration::ZERO,
            ),
        };
        if a.tool.is_empty() {
            return Err("invalid value for --tool: must not be empty".into());
        }
        let threads = a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Ok(Plan {
            profile,
            protocol: a.protocol,
            target,
            sessions,
            concurrency: a.concurrency,
            stop,
            hold,
            warmup: a.warmup,
            tool: a.tool,
            tool_args: a.tool_args,
            timeout: a.timeout,
            pid: a.pid,
            json: a.json,
            threads,
        })
    }
}

/// The flag value of a profile.
pub fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Call => "call",
        Profile::Sessions => "sessions",
        Profile::Churn => "churn",
        Profile::Stdio => "stdio",
    }
}

/// The flag value of a protocol.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Legacy => "legacy",
        Protocol::Modern => "modern",
    }
}

/// `10s`, `500ms`, `1.5s`, `2m`, `1h`, `250us`; a bare number is seconds. Must be > 0.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (use us, ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("`{s}`: must be greater than 0"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

fn positive_u64(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

fn parse_json_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object, e.g. {\"text\":\"hello\"}".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Parse `http://host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<HttpTarget, String> {
    let bad = |why: &str| format!("invalid value for --url: `{url}`: {why}");
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "scheme `{scheme}` is not supported (plain http:// only)"
            )))
        }
        None => return Err(bad("expected http://HOST:PORT/PATH")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("expected a host (no user info)"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("bad port"))?),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("bad port `{p}`")))?,
    };
    if host.is_empty() {
        return Err(bad("expected a host"));
    }
    Ok(HttpTarget {
        url: url.to_owned(),
        authority: authority.to_owned(),
        host,
        port,
        path,
        bearer: None,
    })
}

/// The token of a `--bearer-file`: its first line, which must be a non-empty
/// RFC 6750 token (so it cannot break the request head). Errors never show it.
fn read_bearer(path: &std::path::Path) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "invalid value for --bearer-file: `{}`: {why}",
            path.display()
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(allowed) {
        return Err(bad("the first line is not a bearer token"));
    }
    Ok(token.to_owned())
}

/// Split a command line on whitespace; `'…'` and `"…"` group words, `\` escapes the
/// next character (outside single quotes).
pub fn split_command(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                word.push(
                    chars
                        .next()
                        .ok_or("invalid value for --cmd: trailing `\\`")?,
                );
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("invalid value for --cmd: unclosed quote".into());
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("invalid value for --cmd: empty command".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, CliCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<BenchArgs, String> {
        let argv = ["emcee", "bench"].iter().chain(args.iter()).copied();
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: CliCommand::Bench(b),
                ..
            }) => Ok(b),
            Ok(other) => panic!("not bench: {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        Plan::from_args(parse(args)?)
    }

    #[test]
    fn defaults() {
        let p = plan(&["--url", "http://127.0.0.1:8080/mcp"]).unwrap();
        assert_eq!(p.profile, Profile::Call);
        assert_eq!(p.protocol, Protocol::Legacy);
        assert_eq!(p.sessions, 8);
        assert_eq!(p.concurrency, 32);
        assert_eq!(p.stop, Stop::Requests(100_000));
        assert_eq!(p.warmup, 1000);
        assert_eq!(p.tool, "echo");
        assert_eq!(p.tool_args, serde_json::json!({"text": "hello"}));
        assert_eq!(p.timeout, Duration::from_secs(10));
        assert!(p.threads >= 1);
        assert!(!p.json);
        assert_eq!(p.pid, None);
        match p.target {
            Target::Http(t) => {
                assert_eq!(t.host, "127.0.0.1");
                assert_eq!(t.port, 8080);
                assert_eq!(t.path, "/mcp");
                assert_eq!(t.authority, "127.0.0.1:8080");
            }
            other => panic!("{other:?}"),
        }
        let p = plan(&["--cmd", "emcee stdio --data-dir '/tmp/a b'"]).unwrap();
        assert_eq!(p.profile, Profile::Stdio);
        assert_eq!(
            p.target,
            Target::Stdio(vec![
                "emcee".into(),
                "stdio".into(),
                "--data-dir".into(),
                "/tmp/a b".into()
            ])
        );
        let p = plan(&["--url", "http://h/mcp", "--profile", "sessions"]).unwrap();
        assert_eq!(p.sessions, 1000);
        assert_eq!(p.stop, Stop::Requests(1000));
        let p = plan(&[
            "--url",
            "http://h/mcp",
            "--profile",
            "sessions",
            "--sessions",
            "50",
            "--duration",
            "2s",
        ])
        .unwrap();
        assert_eq!((p.sessions, p.stop), (50, Stop::Requests(50)));
        assert_eq!(p.hold, Duration::from_secs(2));
    }

    #[test]
    fn explicit_values() {
        let p = plan(&[
            "--url",
            "http://[::1]:9/x?y=1",
            "--protocol",
            "modern",
            "--duration",
            "1.5s",
            "--concurrency",
            "4",
            "--threads",
            "3",
            "--tool",
            "kv_get",
            "--args",
            r#"{"key":"k"}"#,
            "--json",
            "--pid",
            "42",
            "--timeout",
            "250ms",
        ])
        .unwrap();
        assert_eq!(p.protocol, Protocol::Modern);
        assert_eq!(p.stop, Stop::Duration(Duration::from_millis(1500)));
        assert_eq!((p.concurrency, p.threads, p.pid), (4, 3, Some(42)));
        assert_eq!(p.timeout, Duration::from_millis(250));
        assert!(p.json);
        match p.target {
            Target::Http(t) => assert_eq!(
                (t.host.as_str(), t.port, t.path.as_str()),
                ("::1", 9, "/x?y=1")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("750us"), Ok(Duration::from_micros(750)));
        for bad in ["", "s", "0", "0s", "-1s", "10x", "ten", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bad_values_are_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--url or --cmd"),
            (&["--url", "https://h/mcp"], "plain http"),
            (&["--url", "h:1/mcp"], "http://"),
            (&["--url", "http://h:99999/mcp"], "port"),
            (&["--url", "http:///mcp"], "host"),
            (&["--url", "http://h/", "--cmd", "x"], "--cmd"),
            (
                &["--url", "http://h/", "--concurrency", "0"],
                "greater than 0",
            ),
            (
                &["--url", "http://h/", "--concurrency", "x"],
                "--concurrency",
            ),
            (&["--url", "http://h/", "--requests", "0"], "greater than 0"),
            (&["--url", "http://h/", "--duration", "10x"], "10x"),
            (
                &["--url", "http://h/", "--duration", "1s", "--requests", "5"],
                "--requests",
            ),
            (&["--url", "http://h/", "--args", "[1]"], "JSON object"),
            (&["--url", "http://h/", "--args", "{"], "not JSON"),
            (&["--url", "http://h/", "--profile", "bogus"], "bogus"),
            (&["--url", "http://h/", "--protocol", "future"], "future"),
            (&["--url", "http://h/", "--profile", "stdio"], "--cmd"),
            (&["--cmd", "x", "--profile", "churn"], "--url"),
            (&["--cmd", "'x"], "quote"),
            (&["--cmd", "  "], "empty"),
            (
                &[
                    "--url",
                    "http://h/",
                    "--profile",
                    "churn",
                    "--protocol",
                    "modern",
                ],
                "legacy",
            ),
            (&["--url", "http://h/", "--tool", ""], "--tool"),
        ];
        for (args, needle) in cases {
            let e = plan(args).expect_err(&format!("{args:?} accepted"));
            let first = e.lines().next().unwrap_or("");
            assert!(
                first.contains(needle),
                "{args:?}: {needle:?} not in first line {first:?}"
            );
        }
    }

    #[test]
    fn command_splitting() {
        assert_eq!(
            split_command(r#"  a "b c" 'd "e"' f\ g "" "#).unwrap(),
            vec!["a", "b c", "d \"e\"", "f g", ""]
        );
    }
}
