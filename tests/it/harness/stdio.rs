//! `emcee stdio` in a fresh temp dir, spoken to over its stdin and stdout.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{emcee_command, send_signal, write_config};

/// How long a test waits for any one message before failing.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(15);

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
        let mut cmd = emcee_command();
        cmd.arg("stdio")
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
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

/// Every stdout line so far is one JSON-RPC 2.0 notification or response (a server
/// never sends requests in this revision).
pub fn assert_only_jsonrpc(lines: &[String]) {
    assert!(!lines.is_empty());
    for line in lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        let notification = v["method"].is_string() && v.get("id").is_none();
        // An error whose request id could not be read omits the id.
        let response = v.get("method").is_none()
            && match (v.get("result"), v.get("error")) {
                (Some(_), None) => v.get("id").is_some(),
                (None, Some(e)) => e["code"].is_i64() && e["message"].is_string(),
                _ => false,
            };
        assert!(
            notification || response,
            "not a notification or response: {line}"
        );
    }
}
