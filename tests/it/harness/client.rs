//! One behaviour over every transport and era: a [`Client`] speaks to `emcee stdio`
//! or `emcee serve` either in the session era (an `initialize` handshake first, and
//! on HTTP the session id on every request) or in 2026-07-28 (the per-request
//! `_meta`, and on HTTP the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`
//! headers derived from the body). A table-driven test loops over [`CASES`] (or
//! [`MODERN_CASES`]) and names the case in every assertion.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::{json, Value};

use super::{with_meta, Server, Stdio, Streaming, ACCEPT_BOTH, MODERN, VERSION};

/// How the bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `emcee stdio`, newline-delimited JSON-RPC.
    Stdio,
    /// `emcee serve`, Streamable HTTP on 127.0.0.1.
    Http,
}

/// Which protocol revision the client writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 after an `initialize` handshake (a session on HTTP).
    Session,
    /// 2026-07-28: no handshake, `_meta` on every request.
    Modern,
}

/// One transport in one era.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    pub transport: Transport,
    pub era: Era,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
        };
        let era = match self.era {
            Era::Session => VERSION,
            Era::Modern => MODERN,
        };
        write!(f, "{transport} {era}")
    }
}

impl Case {
    /// Whether this case writes 2026-07-28.
    pub fn modern(&self) -> bool {
        self.era == Era::Modern
    }

    /// Whether this case speaks HTTP.
    pub fn http(&self) -> bool {
        self.transport == Transport::Http
    }
}

/// Every transport in every era.
pub const CASES: [Case; 4] = [
    Case {
        transport: Transport::Stdio,
        era: Era::Session,
    },
    Case {
        transport: Transport::Stdio,
        era: Era::Modern,
    },
    Case {
        transport: Transport::Http,
        era: Era::Session,
    },
    Case {
        transport: Transport::Http,
        era: Era::Modern,
    },
];

/// Both transports in 2026-07-28.
pub const MODERN_CASES: [Case; 2] = [CASES[1], CASES[3]];

/// A response with what the transport said around it.
#[derive(Debug)]
pub struct Answer {
    /// The JSON-RPC response.
    pub body: Value,
    /// The HTTP status (`None` on stdio).
    pub status: Option<u16>,
    /// The HTTP content type without parameters (`None` on stdio).
    pub content_type: Option<String>,
    /// Whether an HTTP answer carried `Mcp-Session-Id`.
    pub session_header: bool,
}

enum Conn {
    Stdio(Stdio),
    Http {
        server: Server,
        session: Option<String>,
    },
}

/// A client for one [`Case`], on a server it owns (killed on drop).
pub struct Client {
    pub case: Case,
    conn: Conn,
    next_id: u64,
}

/// The headers a 2026-07-28 client derives from a request body: the `_meta`
/// version (else 2026-07-28), the method, and the name of what it names (a tool, a
/// prompt, a resource's URI, a task).
pub fn modern_headers(body: &Value) -> Vec<(String, String)> {
    let params = &body["params"];
    let version = params["_meta"]["io.modelcontextprotocol/protocolVersion"]
        .as_str()
        .unwrap_or(MODERN);
    let mut headers = vec![("MCP-Protocol-Version".to_owned(), version.to_owned())];
    if let Some(method) = body["method"].as_str() {
        headers.push(("Mcp-Method".to_owned(), method.to_owned()));
        let name = match method {
            "tools/call" | "prompts/get" => params["name"].as_str(),
            "resources/read" => params["uri"].as_str(),
            "tasks/get" | "tasks/cancel" | "tasks/update" => params["taskId"].as_str(),
            _ => None,
        };
        if let Some(name) = name {
            headers.push(("Mcp-Name".to_owned(), name.to_owned()));
        }
    }
    headers
}

impl Client {
    /// A fresh server for `case` with `args` (flags after `stdio`/`serve`), ready:
    /// initialized in the session era.
    pub fn start(case: Case, args: &[&str]) -> Client {
        match case.transport {
            Transport::Stdio => Client::over_stdio(case.era, Stdio::start(args)),
            Transport::Http => Client::over_http(case.era, Server::start(args)),
        }
    }

    /// Like [`Client::start`], with a config file holding `config`.
    pub fn with_config(case: Case, config: &str, args: &[&str]) -> Client {
        match case.transport {
            Transport::Stdio => Client::over_stdio(case.era, Stdio::with_config(config, args)),
            Transport::Http => Client::over_http(case.era, Server::with_config(config, args)),
        }
    }

    /// A client on a running `emcee stdio` (initialized here in the session era).
    pub fn over_stdio(era: Era, mut s: Stdio) -> Client {
        if era == Era::Session {
            s.initialize(VERSION);
        }
        Client {
            case: Case {
                transport: Transport::Stdio,
                era,
            },
            conn: Conn::Stdio(s),
            next_id: 1,
        }
    }

    /// A client on a running `emcee serve` (a new session in the session era).
    pub fn over_http(era: Era, server: Server) -> Client {
        let session = (era == Era::Session).then(|| {
            let (id, _) = server.initialize_with(json!({}));
            let r = server.notify(&id, "notifications/initialized", json!({}));
            assert_eq!(r.status, 202, "notifications/initialized: {r:?}");
            id
        });
        Client {
            case: Case {
                transport: Transport::Http,
                era,
            },
            conn: Conn::Http { server, session },
            next_id: 1,
        }
    }

    /// The server, when this is HTTP.
    pub fn server(&self) -> Option<&Server> {
        match &self.conn {
            Conn::Http { server, .. } => Some(server),
            Conn::Stdio(_) => None,
        }
    }

    /// The server, when this is HTTP, for what only a process can be asked (a
    /// signal, a restart).
    pub fn into_server(self) -> Option<Server> {
        match self.conn {
            Conn::Http { server, .. } => Some(server),
            Conn::Stdio(_) => None,
        }
    }

    /// The stdio connection, when this is stdio.
    pub fn stdio(&mut self) -> Option<&mut Stdio> {
        match &mut self.conn {
            Conn::Stdio(s) => Some(s),
            Conn::Http { .. } => None,
        }
    }

    /// The server's stderr so far, joined.
    pub fn logs(&self) -> String {
        match &self.conn {
            Conn::Stdio(s) => s.stderr.lock().unwrap().join("\n"),
            Conn::Http { server, .. } => server.logs(),
        }
    }

    /// A request with id `id` (in 2026-07-28 with the usual `_meta`, fields of a
    /// `_meta` in `params` winning); the response and what the transport said.
    pub fn exchange(&mut self, id: impl Into<Value>, method: &str, params: Value) -> Answer {
        let params = match self.case.era {
            Era::Session => params,
            Era::Modern => with_meta(params),
        };
        self.exchange_raw(id, method, Some(params))
    }

    /// A request with id `id` and exactly `params` (`None`: no `params` member),
    /// nothing added; on HTTP with the headers of the case (in 2026-07-28 derived
    /// from the body).
    pub fn exchange_raw(
        &mut self,
        id: impl Into<Value>,
        method: &str,
        params: Option<Value>,
    ) -> Answer {
        let id = id.into();
        let case = self.case;
        let mut body = json!({"jsonrpc": "2.0", "id": id.clone(), "method": method});
        if let Some(params) = params {
            body["params"] = params;
        }
        match &mut self.conn {
            Conn::Stdio(s) => {
                s.send(&body);
                Answer {
                    body: s.recv_response(&id).0,
                    status: None,
                    content_type: None,
                    session_header: false,
                }
            }
            Conn::Http { server, session } => {
                let mut headers = vec![
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("Accept".to_owned(), ACCEPT_BOTH.to_owned()),
                ];
                match session {
                    Some(sid) => {
                        headers.push(("Mcp-Session-Id".to_owned(), sid.clone()));
                        headers.push(("MCP-Protocol-Version".to_owned(), VERSION.to_owned()));
                    }
                    None => headers.extend(modern_headers(&body)),
                }
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let st = server.open("POST", &headers, Some(body.to_string().as_bytes()));
                let status = st.status;
                let content_type = st.content_type();
                let session_header = st.header("mcp-session-id").is_some();
                let body = response_of(case, st, &id, server);
                Answer {
                    body,
                    status: Some(status),
                    content_type: Some(content_type),
                    session_header,
                }
            }
        }
    }

    /// A request with id `id`; its response.
    pub fn request_id(&mut self, id: impl Into<Value>, method: &str, params: Value) -> Value {
        self.exchange(id, method, params).body
    }

    /// A request with the next id; its response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.request_id(id, method, params)
    }

    /// `tools/call`; its response.
    pub fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// `tools/call` that must have a result; its result (in 2026-07-28 a complete one).
    pub fn call_ok(&mut self, tool: &str, args: Value) -> Value {
        let case = self.case;
        let resp = self.call(tool, args);
        let result = resp
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{case}: {tool}: expected a result: {resp}"));
        if case.modern() {
            assert_eq!(result["resultType"], "complete", "{case}: {tool}: {resp}");
        }
        result
    }

    /// Stop the server the way its transport ends (stdio: EOF; HTTP: SIGTERM) and
    /// wait for it; its exit status and all of its stderr.
    pub fn finish(self) -> (ExitStatus, String) {
        match self.conn {
            Conn::Stdio(s) => {
                let (status, _, stderr) = s.finish();
                (status, stderr.join("\n"))
            }
            Conn::Http { mut server, .. } => {
                server.signal("TERM");
                let status = server.wait_exit(Duration::from_secs(15));
                (status, server.logs())
            }
        }
    }
}

/// The JSON-RPC response with `id` of an HTTP answer of any status, JSON or SSE.
fn response_of(case: Case, mut st: Streaming, id: &Value, server: &Server) -> Value {
    match st.content_type().as_str() {
        "application/json" => {
            let v: Value = serde_json::from_str(&st.body())
                .unwrap_or_else(|e| panic!("{case}: the body is not JSON ({e})"));
            assert_eq!(&v["id"], id, "{case}: {v}");
            v
        }
        "text/event-stream" => st.until_response(id).0,
        other => panic!(
            "{case}: status {} with content type {other:?}\n{}",
            st.status,
            server.logs()
        ),
    }
}
