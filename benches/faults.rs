//! Fault isolation benchmark (issue: production operation): while one session hammers
//! `fault_panic` (×1000) and `fault_hang` (under a 50 ms timeout), another session's
//! echo latency should stay near its unloaded value and the server's RSS flat.
//!
//! Run with: `cargo bench --bench faults` (release build of the real binary, HTTP on
//! 127.0.0.1). Prints a table; asserts nothing (numbers go in the issue notes).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CALLS: usize = 2000;
/// One `fault_hang` per this many panics (`EMCEE_BENCH_HANG_EVERY`, 0 = none; default 5).
fn hang_every() -> usize {
    std::env::var("EMCEE_BENCH_HANG_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// `fault_panic` calls (default 1000; `EMCEE_BENCH_PANICS` to change).
fn panics() -> usize {
    std::env::var("EMCEE_BENCH_PANICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("emcee.toml");
    std::fs::write(&config, "[limits]\ncall_timeout_ms = 50\n").expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_emcee"))
        .args(["serve", "--bind", "127.0.0.1:0", "--fixtures", "faults"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("EMCEE_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn emcee");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let bind = loop {
        let line = lines.next().expect("emcee exited").expect("stderr line");
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["msg"] == "serving http" {
            break v["bind"].as_str().expect("bind").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: format!("http://{bind}/mcp"),
        _dir: dir,
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Client {
    agent: ureq::Agent,
    url: String,
    session: String,
}

impl Client {
    fn new(url: &str) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let resp = agent
            .post(url)
            .set("content-type", "application/json")
            .set("accept", "application/json, text/event-stream")
            .send_string(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"}}})
                .to_string(),
            )
            .expect("initialize");
        let session = resp
            .header("mcp-session-id")
            .expect("session id")
            .to_owned();
        let _ = resp.into_string();
        Client {
            agent,
            url: url.to_owned(),
            session,
        }
    }

    fn call(&self, id: usize, tool: &str, args: Value) -> String {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        self.agent
            .post(&self.url)
            .set("content-type", "application/json")
            .set("accept", "application/json, text/event-stream")
            .set("mcp-session-id", &self.session)
            .send_string(&body.to_string())
            .expect("tools/call")
            .into_string()
            .expect("body")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn echo_latencies(client: &Client) -> Vec<Duration> {
    let mut out: Vec<Duration> = (0..CALLS)
        .map(|i| {
            let t = Instant::now();
            let body = client.call(i, "echo", json!({"text": "x"}));
            assert!(body.contains("\"x\""), "{body}");
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn main() {
    let server = start();
    let pid = server.child.id();
    let victim = Client::new(&server.url);
    echo_latencies(&victim); // warm-up
    let rss_start = rss_kb(pid);
    let calm = echo_latencies(&victim);

    let url = server.url.clone();
    let noisy = std::thread::spawn(move || {
        let attacker = Client::new(&url);
        let mut hangs = 0;
        let mut rss = Vec::new();
        let total = panics();
        for i in 0..total {
            let body = attacker.call(i, "fault_panic", json!({}));
            assert!(body.contains("\"isError\":true"), "{body}");
            if hang_every() > 0 && i % hang_every() == 0 {
                let body = attacker.call(total + i, "fault_hang", json!({}));
                assert!(body.contains("timed out"), "{body}");
                hangs += 1;
            }
            if (i + 1) % (total / 4).max(1) == 0 {
                rss.push((i + 1, rss_kb(pid)));
            }
        }
        (hangs, rss)
    });
    // Session A keeps measuring for as long as session B is faulting.
    let mut loaded = Vec::new();
    while !noisy.is_finished() {
        loaded.extend(echo_latencies(&victim));
    }
    loaded.sort();
    let (hangs, rss_steps) = noisy.join().expect("attacker");
    let rss_end = rss_kb(pid);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fault isolation: session A echo calls; session B: {} fault_panic + {hangs} fault_hang (50 ms timeout)",
        panics()
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10}",
        "session A echo", "p50 ms", "p99 ms", "max ms"
    );
    for (name, l) in [("unloaded", &calm), ("B faulting", &loaded)] {
        println!(
            "{name:<22} {:>10.3} {:>10.3} {:>10.3}",
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.99)),
            ms(*l.last().expect("samples"))
        );
    }
    println!(
        "p99 ratio (faulting / unloaded): {:.2}",
        ms(percentile(&loaded, 0.99)) / ms(percentile(&calm, 0.99))
    );
    println!(
        "server RSS: {rss_start} kB before, {rss_end} kB after ({:+} kB)",
        rss_end as i64 - rss_start as i64
    );
    for (panics, kb) in rss_steps {
        println!("  after {panics:>5} panics: {kb} kB");
    }
    println!(
        "(session A made {} calls while B was faulting)",
        loaded.len()
    );
}
