//! Helpers that run the real `emcee` binary in a fresh temp dir and speak to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a test waits for any one message before failing.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(15);

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_emcee")
}

/// A running `emcee stdio`.
pub struct Stdio {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line seen so far (also those consumed by `recv`).
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Every stderr line seen so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    stderr_done: Receiver<()>,
    /// The data dir; kept alive for the server's lifetime.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Write a config file into `dir` and return its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("emcee.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

impl Stdio {
    /// Start with a fresh data dir and `extra` flags after `stdio`.
    pub fn start(extra: &[&str]) -> Stdio {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        Self::spawn(dir, Some(tmp), extra, &[])
    }

    /// Start with a config file holding `config`.
    pub fn with_config(config: &str, extra: &[&str]) -> Stdio {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        let path = write_config(&dir, config);
        let mut args = vec!["--config", path.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        Self::spawn(dir, Some(tmp), &args, &[])
    }

    /// Start on an existing data dir.
    pub fn start_in(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Stdio {
        Self::spawn(dir.to_owned(), None, extra, env)
    }

    fn spawn(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Stdio {
        let data = dir.join("data");
        let mut cmd = Command::new(bin());
        cmd.arg("stdio")
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .env_remove("EMCEE_LOG")
            .env_remove("EMCEE_LOG_CALLS")
            .env_remove("EMCEE_ALLOWED_HOSTS")
            .env_remove("EMCEE_CONFIG")
            .env_remove("EMCEE_DATA_DIR")
            .env_remove("EMCEE_FIXTURES")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn emcee");
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let all = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let all = stderr.clone();
        let (done_tx, stderr_done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push(line);
            }
            let _ = done_tx.send(());
        });
        Stdio {
            child,
            stdin,
            lines,
            stdout,
            stderr,
            stderr_done,
            dir,
            _tmp: tmp,
        }
    }

    /// Send one raw line (a newline is appended).
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    /// Send a JSON value as one line.
    pub fn send(&mut self, v: &Value) {
        self.send_raw(&v.to_string());
    }

    /// Send a request.
    pub fn send_request(&mut self, id: impl Into<Value>, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params}));
    }

    /// Send a notification.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next stdout message, parsed.
    pub fn recv(&mut self) -> Value {
        self.try_recv(RECV_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no message from emcee within {RECV_TIMEOUT:?}; stderr:\n{}",
                self.stderr.lock().unwrap().join("\n")
            )
        })
    }

    /// The next stdout message within `timeout`, if any.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}")),
            ),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Read messages until the response with `id`; returns it and the messages before it.
    pub fn recv_response(&mut self, id: &Value) -> (Value, Vec<Value>) {
        let mut others = Vec::new();
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no response to {id}; got {others:?}"
            );
            let msg = self.recv();
            if msg.get("method").is_none() && msg.get("id") == Some(id) {
                return (msg, others);
            }
            others.push(msg);
        }
    }

    /// Send a request and return its response (notifications before it are dropped).
    pub fn request(&mut self, id: impl Into<Value>, method: &str, params: Value) -> Value {
        let id = id.into();
        self.send_request(id.clone(), method, params);
        self.recv_response(&id).0
    }

    /// Send a `tools/call` without waiting for its answer.
    pub fn send_call(&mut self, id: impl Into<Value>, tool: &str, args: Value) {
        self.send_request(id, "tools/call", json!({"name": tool, "arguments": args}));
    }

    /// `tools/call` and return the response.
    pub fn call(&mut self, id: impl Into<Value>, tool: &str, args: Value) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": args}))
    }

    /// `tools/call` and return `result`, failing on a JSON-RPC error.
    pub fn call_ok(&mut self, id: impl Into<Value>, tool: &str, args: Value) -> Value {
        let resp = self.call(id, tool, args);
        resp.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("expected a result: {resp}"))
    }

    /// The initialize handshake with `version`; returns the initialize result.
    pub fn initialize(&mut self, version: &str) -> Value {
        let resp = self.request(
            0,
            "initialize",
            json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "emcee-tests", "version": "0"}}),
        );
        self.notify("notifications/initialized", json!({}));
        resp.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize failed: {resp}"))
    }

    /// Start, and initialize with the newest session-era version.
    pub fn ready(extra: &[&str]) -> Stdio {
        let mut s = Stdio::start(extra);
        s.initialize("2025-11-25");
        s
    }

    /// Keep `dir` (a temp dir the server uses) alive as long as the server.
    pub fn keep(&mut self, dir: tempfile::TempDir) {
        self._tmp = Some(dir);
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal to the server.
    pub fn signal(&self, sig: &str) {
        send_signal(self.child.id(), sig);
    }

    /// Close stdin and wait for exit; returns the status and the remaining stdout messages.
    pub fn finish(mut self) -> (ExitStatus, Vec<Value>, Vec<String>) {
        drop(self.stdin.take());
        self.wait()
    }

    /// Wait for exit without closing stdin.
    pub fn wait(mut self) -> (ExitStatus, Vec<Value>, Vec<String>) {
        let deadline = Instant::now() + RECV_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("emcee did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut rest = Vec::new();
        while let Some(v) = self.try_recv(Duration::from_millis(200)) {
            rest.push(v);
        }
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
        let stderr = self.stderr.lock().unwrap().clone();
        (status, rest, stderr)
    }
}

impl Drop for Stdio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON-RPC error code of a response (panics if it is not an error).
pub fn error_code(resp: &Value) -> i64 {
    resp["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error: {resp}"))
}

/// The first text content of a tool result.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {result}"))
}

/// `kill -SIG pid`, failing the test if it fails.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Run the binary with `args` and `env` to completion; returns (status, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("EMCEE_LOG")
        .env_remove("EMCEE_LOG_CALLS")
        .env_remove("EMCEE_ALLOWED_HOSTS")
        .env_remove("EMCEE_CONFIG")
        .env_remove("EMCEE_DATA_DIR")
        .env_remove("EMCEE_BIND")
        .env_remove("EMCEE_FIXTURES")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run emcee");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A finished child's status and both outputs, for a failure message.
pub fn describe(output: &std::process::Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Drain a child pipe on a thread so a chatty child cannot block on a full pipe.
pub fn drain<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just truncates what we can show; the exit status decides.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// The 2026-07-28 revision.
pub const MODERN: &str = "2026-07-28";
/// Every version emcee serves, newest first.
pub const SUPPORTED: [&str; 5] = [
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];
/// `_meta` key of the server's identity on 2026-07-28 results.
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key of a listen stream's notifications.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The required per-request 2026-07-28 `_meta`, declaring no capabilities.
pub fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    })
}

/// `params` with the usual 2026-07-28 `_meta` (fields of a `_meta` already there win).
pub fn with_meta(params: Value) -> Value {
    let mut params = params;
    let map = params.as_object_mut().expect("params is an object");
    let mut m = meta();
    if let Some(Value::Object(given)) = map.remove("_meta") {
        for (k, v) in given {
            m[k] = v;
        }
    }
    map.insert("_meta".into(), m);
    params
}
