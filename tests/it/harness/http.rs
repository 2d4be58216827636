//! Helpers that run the real `emcee serve` on 127.0.0.1 (port 0) in a fresh temp dir
//! and speak Streamable HTTP to it with a blocking client (ureq), reading SSE bodies
//! incrementally. Every read has a timeout, so a misbehaving server fails a test
//! instead of hanging it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{emcee_command, send_signal, write_config};

/// The protocol version the tests negotiate.
pub const VERSION: &str = "2025-11-25";
/// What a Streamable HTTP client accepts on POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of every HTTP read (one SSE line, one body).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `emcee serve --bind 127.0.0.1:0`.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, from the "serving http" log line.
    pub addr: String,
    /// The port.
    pub port: u16,
    /// Every stderr line seen so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    stderr_done: Mutex<Receiver<()>>,
    agent: ureq::Agent,
    /// The temp dir (data dir and config file live under it).
    pub dir: PathBuf,
    /// Flags after `serve --bind --data-dir` (with `--config` when there is one), for
    /// [`Server::restart`].
    args: Vec<String>,
    /// Extra environment, for [`Server::restart`].
    env: Vec<(String, String)>,
    /// Owned until the last restart hands it on.
    tmp: Option<tempfile::TempDir>,
}

/// A fully read HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (names lowercased).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

/// A header value by (case-insensitive) name, in lowercased `(name, value)` pairs.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

impl Reply {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The content type without parameters, lowercased ("" when absent).
    pub fn content_type(&self) -> String {
        media_type(self.header("content-type").unwrap_or(""))
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} ({self:?})", self.body))
    }
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// One SSE event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// `id:` field.
    pub id: Option<String>,
    /// `retry:` field.
    pub retry: Option<u64>,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

impl Event {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {self:?}"))
    }

    /// `(stream, seq)` of the id `S-N`.
    pub fn id_parts(&self) -> (u64, u64) {
        let id = self
            .id
            .as_deref()
            .unwrap_or_else(|| panic!("no id: {self:?}"));
        let (s, n) = id
            .split_once('-')
            .unwrap_or_else(|| panic!("event id is not S-N: {id:?}"));
        (
            s.parse().unwrap_or_else(|_| panic!("bad stream in {id:?}")),
            n.parse().unwrap_or_else(|_| panic!("bad seq in {id:?}")),
        )
    }
}

/// An HTTP answer whose body is read as it arrives (an SSE stream, or anything else).
pub struct Streaming {
    /// Status code.
    pub status: u16,
    /// Headers (names lowercased).
    pub headers: Vec<(String, String)>,
    reader: BufReader<Box<dyn Read + Send + Sync + 'static>>,
}

impl Streaming {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The content type without parameters, lowercased.
    pub fn content_type(&self) -> String {
        media_type(self.header("content-type").unwrap_or(""))
    }

    /// The next SSE event; `None` when the stream ended. Comment lines (keep-alives)
    /// are skipped. Panics when a read times out or fails.
    pub fn next_event(&mut self) -> Option<Event> {
        let mut ev = Event::default();
        let mut fields = 0;
        let mut data: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("SSE read failed ({e}); got so far: {ev:?}"));
            if n == 0 {
                assert_eq!(fields, 0, "stream ended inside an event: {ev:?} {data:?}");
                return None;
            }
            let line = line.strip_suffix('\n').unwrap_or(&line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                if fields == 0 {
                    continue;
                }
                ev.data = data.join("\n");
                return Some(ev);
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            fields += 1;
            match name {
                "id" => ev.id = Some(value.to_owned()),
                "retry" => {
                    ev.retry = Some(
                        value
                            .parse()
                            .unwrap_or_else(|_| panic!("bad retry: {value:?}")),
                    )
                }
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
    }

    /// The next raw line of the body (comments included, line ending removed);
    /// `None` when the body ended. Panics when a read times out or fails.
    pub fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read failed ({e})"));
        if n == 0 {
            return None;
        }
        let line = line.strip_suffix('\n').unwrap_or(&line);
        Some(line.strip_suffix('\r').unwrap_or(line).to_owned())
    }

    /// Every event until the stream ends.
    pub fn rest(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(e) = self.next_event() {
            out.push(e);
            assert!(Instant::now() < deadline, "stream did not end: {out:?}");
        }
        out
    }

    /// Read events until the response with `id` (a message with that id and no
    /// method); returns it and the messages (not the priming event) before it.
    pub fn until_response(&mut self, id: &Value) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let ev = self
                .next_event()
                .unwrap_or_else(|| panic!("stream ended before response {id}: {before:?}"));
            if ev.data.is_empty() {
                continue;
            }
            let msg = ev.json();
            if msg.get("method").is_none() && msg.get("id") == Some(id) {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    /// Read the whole body as text.
    pub fn body(mut self) -> String {
        let mut s = String::new();
        self.reader.read_to_string(&mut s).expect("read body");
        s
    }

    /// Read the whole answer.
    pub fn into_reply(self) -> Reply {
        Reply {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body(),
        }
    }
}

fn headers_of(resp: &ureq::Response) -> Vec<(String, String)> {
    resp.headers_names()
        .into_iter()
        .filter_map(|n| {
            let v = resp.header(&n)?.to_owned();
            Some((n.to_ascii_lowercase(), v))
        })
        .collect()
}

/// How `Server::launch` starts one.
#[derive(Default)]
pub struct Launch<'a> {
    /// A config file with this text.
    pub config: Option<&'a str>,
    /// Flags after `serve --bind 127.0.0.1:0 --data-dir DIR`.
    pub args: &'a [&'a str],
    /// Environment variables (on top of a cleaned `EMCEE_*` environment).
    pub env: &'a [(&'a str, &'a str)],
}

impl Server {
    /// Start with a fresh data dir and `extra` flags after `serve`.
    pub fn start(extra: &[&str]) -> Server {
        Self::launch(Launch {
            args: extra,
            ..Launch::default()
        })
    }

    /// Start with a config file holding `config`.
    pub fn with_config(config: &str, extra: &[&str]) -> Server {
        Self::launch(Launch {
            config: Some(config),
            args: extra,
            ..Launch::default()
        })
    }

    /// Start with a fresh data dir as `launch` says.
    pub fn launch(launch: Launch<'_>) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut args = Vec::new();
        if let Some(text) = launch.config {
            let path = write_config(tmp.path(), text);
            args.push("--config".to_owned());
            args.push(path.to_str().expect("utf-8 temp path").to_owned());
        }
        args.extend(launch.args.iter().map(|a| (*a).to_owned()));
        let env = launch
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::spawn(tmp, args, env)
    }

    /// Start a new process on the same data dir, config, flags and environment (after
    /// killing this one with SIGKILL if it still runs). The new one listens on a new
    /// port.
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let tmp = self.tmp.take().expect("the temp dir is owned");
        Self::spawn(
            tmp,
            std::mem::take(&mut self.args),
            std::mem::take(&mut self.env),
        )
    }

    fn spawn(tmp: tempfile::TempDir, args: Vec<String>, env: Vec<(String, String)>) -> Server {
        let dir = tmp.path().to_owned();
        let mut cmd = emcee_command();
        cmd.arg("serve").arg("--bind").arg("127.0.0.1:0");
        // A test may name its own data dir (say, on a small filesystem).
        if !args.iter().any(|a| a == "--data-dir") {
            cmd.arg("--data-dir").arg(dir.join("data"));
        }
        cmd.args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn emcee serve");
        let err = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let all = stderr.clone();
        let (bind_tx, bind_rx) = mpsc::channel::<String>();
        let (done_tx, stderr_done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["msg"] == "serving http" {
                        if let Some(b) = v["bind"].as_str() {
                            let _ = bind_tx.send(b.to_owned());
                        }
                    }
                }
                all.lock().unwrap().push(line);
            }
            let _ = done_tx.send(());
        });
        let addr = match bind_rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "emcee serve did not log \"serving http\"; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        let port = addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("bad bind address {addr:?}"));
        assert_ne!(port, 0, "the log names the real port");
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(READ_TIMEOUT)
            .timeout_write(READ_TIMEOUT)
            .max_idle_connections(0)
            .redirects(0)
            .build();
        Server {
            child,
            addr,
            port,
            stderr,
            stderr_done: Mutex::new(stderr_done),
            agent,
            dir,
            args,
            env,
            tmp: Some(tmp),
        }
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stderr lines so far, joined (for failure messages).
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The first stderr line containing every one of `what`, waiting up to
    /// `within` for it (a panic naming `what` and the logs when none comes).
    pub fn log_line(&self, what: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let logs = self.logs();
            if let Some(line) = logs.lines().find(|l| what.iter().all(|w| l.contains(w))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {what:?}:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The admin listener's address (`--admin-bind`), from the "serving admin" log
    /// line (logged right after "serving http").
    pub fn admin_addr(&self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let found = self.stderr.lock().unwrap().iter().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                if v["msg"] != "serving admin" {
                    return None;
                }
                v["admin_bind"].as_str().map(str::to_owned)
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no \"serving admin\" log line; stderr:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a request to `url` and return the answer with its body still unread.
    /// 4xx/5xx are answers too; a transport error panics.
    pub fn open_url(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Streaming {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        streaming(result).unwrap_or_else(|e| {
            panic!(
                "{method} {url} failed: {e}\nserver stderr:\n{}",
                self.logs()
            )
        })
    }

    /// Send a request to `/mcp` and return the answer with its body still unread.
    /// 4xx/5xx are answers too; a transport error panics.
    pub fn open(&self, method: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Streaming {
        self.open_url(method, &self.url(), headers, body)
    }

    /// POST the 2026-07-28 request `body` (its headers derived from it, a JSON
    /// answer accepted) from the local address `source` (e.g. 127.0.0.2: another
    /// client to the server), and return the answer's JSON.
    pub fn post_from(&self, source: std::net::IpAddr, body: &Value) -> Value {
        use std::io::Write;
        let server: std::net::SocketAddr = self.addr.parse().expect("a socket address");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime");
        let stream = rt
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(std::net::SocketAddr::new(source, 0))?;
                socket.connect(server).await?.into_std()
            })
            .unwrap_or_else(|e| panic!("connect from {source}: {e}"));
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let text = body.to_string();
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            text.len()
        );
        for (k, v) in super::modern_headers(body) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = stream;
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(text.as_bytes()).expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (headers, mut rest) = raw.split_once("\r\n\r\n").expect("a head");
        let mut body = String::new();
        if headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            while let Some((size, after)) = rest.split_once("\r\n") {
                let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
                if size == 0 {
                    break;
                }
                body.push_str(&after[..size]);
                rest = &after[size + 2..];
            }
        } else {
            body.push_str(rest);
        }
        serde_json::from_str(body.trim())
            .unwrap_or_else(|e| panic!("{e}: {raw}\nserver stderr:\n{}", self.logs()))
    }

    /// Send a request to `/mcp` and read the whole answer.
    pub fn send(&self, method: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        self.open(method, headers, body).into_reply()
    }

    /// `GET http://{addr}{path}` (e.g. the admin address and `/metrics`), read whole.
    pub fn get_at(&self, addr: &str, path: &str) -> Reply {
        self.open_url("GET", &format!("http://{addr}{path}"), &[], None)
            .into_reply()
    }

    /// `GET {path}` on the MCP listener, read whole.
    pub fn get(&self, path: &str) -> Reply {
        self.get_at(&self.addr, path)
    }

    /// POST `body` with the usual headers (JSON content type, both accepts, the
    /// session id and protocol version when `session` is given) plus `extra`
    /// (which replace the usual ones of the same name).
    pub fn post_open(
        &self,
        session: Option<&str>,
        body: &str,
        extra: &[(&str, &str)],
    ) -> Streaming {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
        ];
        if let Some(id) = session {
            headers.push(("Mcp-Session-Id", id));
            headers.push(("MCP-Protocol-Version", VERSION));
        }
        for (k, v) in extra {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
            headers.push((k, v));
        }
        self.open("POST", &headers, Some(body.as_bytes()))
    }

    /// Like [`Server::post_open`], reading the whole answer.
    pub fn post(&self, session: Option<&str>, body: &str, extra: &[(&str, &str)]) -> Reply {
        self.post_open(session, body, extra).into_reply()
    }

    /// `initialize` with `capabilities`; returns the session id and the result.
    pub fn initialize_with(&self, capabilities: Value) -> (String, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": capabilities,
            "clientInfo": {"name": "t", "version": "1"}}});
        let r = self.post(None, &body.to_string(), &[]);
        assert_eq!(r.status, 200, "initialize: {r:?}\n{}", self.logs());
        assert_eq!(r.content_type(), "application/json", "{r:?}");
        let id = r
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("no Mcp-Session-Id: {r:?}"))
            .to_owned();
        let resp = r.json();
        assert_eq!(resp["id"], 1, "{resp}");
        let result = resp
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize failed: {resp}"));
        (id, result)
    }

    /// `initialize` (declaring sampling) and `notifications/initialized`; the session id.
    pub fn session(&self) -> String {
        let (id, _) = self.initialize_with(json!({"sampling": {}}));
        let r = self.notify(&id, "notifications/initialized", json!({}));
        assert_eq!(r.status, 202, "notifications/initialized: {r:?}");
        id
    }

    /// POST a notification.
    pub fn notify(&self, session: &str, method: &str, params: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.post(Some(session), &body.to_string(), &[])
    }

    /// POST a request and return its response, whether the server answered with JSON
    /// or with an SSE stream (related notifications are dropped).
    pub fn request(
        &self,
        session: &str,
        id: impl Into<Value>,
        method: &str,
        params: Value,
    ) -> Value {
        let id = id.into();
        let body = json!({"jsonrpc": "2.0", "id": id.clone(), "method": method, "params": params});
        let mut s = self.post_open(Some(session), &body.to_string(), &[]);
        assert_eq!(s.status, 200, "{method}: status {}", s.status);
        match s.content_type().as_str() {
            "application/json" => {
                let v: Value = serde_json::from_str(&s.body()).expect("JSON body");
                assert_eq!(v["id"], id, "{v}");
                v
            }
            "text/event-stream" => s.until_response(&id).0,
            other => panic!("unexpected content type {other:?}"),
        }
    }

    /// `tools/call` and return its `result`, failing on a JSON-RPC error.
    pub fn call_ok(&self, session: &str, id: impl Into<Value>, tool: &str, args: Value) -> Value {
        let resp = self.request(
            session,
            id,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        );
        resp.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("expected a result: {resp}"))
    }

    /// GET /mcp (SSE) on `session`, optionally resuming after `last_event_id`.
    pub fn get_stream(&self, session: &str, last_event_id: Option<&str>) -> Streaming {
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", VERSION),
        ];
        if let Some(last) = last_event_id {
            headers.push(("Last-Event-ID", last));
        }
        self.open("GET", &headers, None)
    }

    /// DELETE /mcp for `session`.
    pub fn delete(&self, session: &str) -> Reply {
        self.send(
            "DELETE",
            &[
                ("Mcp-Session-Id", session),
                ("MCP-Protocol-Version", VERSION),
            ],
            None,
        )
    }

    /// Send a signal to the server.
    pub fn signal(&self, sig: &str) {
        send_signal(self.child.id(), sig);
    }

    /// Wait for the process to exit (at most `timeout`); its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let _ = self
                    .stderr_done
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(2));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "emcee did not exit in {timeout:?}; stderr:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// An answer (any status) as a [`Streaming`]; `Err` describes a transport failure.
fn streaming(result: Result<ureq::Response, ureq::Error>) -> Result<Streaming, String> {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    Ok(Streaming {
        status: resp.status(),
        headers: headers_of(&resp),
        reader: BufReader::new(resp.into_reader()),
    })
}

/// `GET http://{addr}{path}` on a new connection, giving up after `timeout` (connect
/// and each read): `Err` when there is no answer (refused, reset, timed out), as a
/// probe sees it.
pub fn probe(addr: &str, path: &str, timeout: Duration) -> Result<Reply, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .max_idle_connections(0)
        .redirects(0)
        .build();
    let s = streaming(agent.get(&format!("http://{addr}{path}")).call())?;
    let status = s.status;
    let headers = s.headers.clone();
    let mut reader = s.reader;
    let mut body = String::new();
    reader
        .read_to_string(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tools/call` request body.
pub fn call_body(id: impl Into<Value>, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": "tools/call",
        "params": {"name": tool, "arguments": args}})
    .to_string()
}

/// A 503 refusal: `Retry-After` of at least a second, and no session minted.
pub fn assert_busy(r: &Reply) {
    assert_eq!(r.status, 503, "{r:?}");
    let retry = r.header("retry-after").expect("Retry-After header");
    assert!(
        retry.parse::<u64>().is_ok_and(|n| n > 0),
        "Retry-After: {retry}"
    );
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
}
