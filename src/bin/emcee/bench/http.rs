//! A minimal HTTP/1.1 client for the generator: one keep-alive connection per worker,
//! a request written in one `write`, the answer's head parsed with `httparse`, the
//! body framed by `Content-Length`, chunked encoding, or the connection's end.
//!
//! Hand-rolled rather than a general client because the generator sends one fixed
//! request shape over and over: no pool, no per-request allocation of header maps,
//! no `!Send` runtime ties, and SSE bodies are read incrementally until the
//! JSON-RPC response (see [`super::sse`]).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::args::{HttpTarget, Protocol};
use super::rpc::{self, Fail, Messages};
use super::sse::ResponseReader;

/// Largest body the generator reads (a bigger one is a `protocol` error).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest response head.
const MAX_HEAD: usize = 64 * 1024;

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// No body (1xx, 204, 304, HEAD).
    Empty,
    /// `Content-Length`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes.
    Close,
}

/// An answer, its body read.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `Mcp-Session-Id`, when sent.
    pub session_id: Option<String>,
    /// The JSON-RPC message: the whole body of a non-SSE answer, or the response event
    /// of an SSE one (`None` if the stream ended without one).
    pub message: Option<Vec<u8>>,
    /// When the message was complete (an SSE stream may go on after it).
    pub at: Instant,
}

/// One keep-alive connection to the target.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
    /// Whether the current stream has carried an exchange (a failure before any
    /// answer byte on a reused connection is retried once: the server may have closed
    /// it while idle).
    reused: bool,
}

impl Conn {
    /// A connection to `addr`, opened on first use.
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: BytesMut::with_capacity(16 * 1024),
            reused: false,
        }
    }

    /// Connect now (if not connected).
    pub async fn connect(&mut self) -> io::Result<()> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
            self.reused = false;
        }
        Ok(())
    }

    /// Drop the connection (after a timeout or an error); the next exchange reconnects.
    pub fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
        self.reused = false;
    }

    /// Send `request` (a complete HTTP/1.1 request) and read the answer. For an SSE
    /// answer, events are read until the JSON-RPC response, then the rest of the
    /// stream is drained so the connection can be reused. Cancel-safe only in the
    /// sense that a dropped future leaves the connection to be [`Conn::reset`].
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Answer, Fail> {
        let mut retried = false;
        loop {
            let reused = self.reused && self.stream.is_some();
            self.connect()
                .await
                .map_err(|e| Fail::Transport(format!("connect to {}: {e}", self.addr)))?;
            match self.exchange_once(request).await {
                Ok(a) => return Ok(a),
                Err(Attempt::Stale(_)) if reused && !retried => {
                    retried = true;
                    self.reset();
                }
                Err(Attempt::Stale(f) | Attempt::Failed(f)) => {
                    self.reset();
                    return Err(f);
                }
            }
        }
    }

    async fn exchange_once(&mut self, request: &[u8]) -> Result<Answer, Attempt> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Attempt::Failed(Fail::Transport("not connected".into())));
        };
        if let Err(e) = stream.write_all(request).await {
            return Err(Attempt::Stale(Fail::Transport(format!("write: {e}"))));
        }
        // Head.
        let head = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let head = Head::of(&resp).map_err(Attempt::Failed)?;
                    self.buf.advance(n);
                    if head.status / 100 == 1 {
                        continue; // 100 Continue and the like: the real answer follows
                    }
                    break head;
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(Attempt::Failed(Fail::Protocol(
                            "response head too large".into(),
                        )));
                    }
                }
                Err(e) => {
                    return Err(Attempt::Failed(Fail::Protocol(format!(
                        "bad response head: {e}"
                    ))))
                }
            }
            let first = self.buf.is_empty();
            match self.fill().await {
                Ok(()) => {}
                Err(f) if first => return Err(Attempt::Stale(f)),
                Err(f) => return Err(Attempt::Failed(f)),
            }
        };
        self.reused = true;
        let mut body = Body::new(head.framing);
        let message = if head.sse {
            let mut reader = ResponseReader::new();
            let mut found = None;
            while let Some(piece) = self.body_piece(&mut body).await.map_err(Attempt::Failed)? {
                if found.is_none() {
                    if let Some(msg) = reader.feed(&piece).map_err(Attempt::Failed)? {
                        found = Some((msg, Instant::now()));
                    }
                }
            }
            found
        } else {
            let mut all = Vec::new();
            while let Some(piece) = self.body_piece(&mut body).await.map_err(Attempt::Failed)? {
                if all.len() + piece.len() > MAX_BODY {
                    return Err(Attempt::Failed(Fail::Protocol("body too large".into())));
                }
                all.extend_from_slice(&piece);
            }
            Some((all, Instant::now()))
        };
        if head.close || matches!(head.framing, Framing::Close) {
            self.reset();
        }
        let (message, at) = match message {
            Some((m, at)) => (Some(m), at),
            None => (None, Instant::now()),
        };
        Ok(Answer {
            status: head.status,
            session_id: head.session_id,
            message,
            at,
        })
    }

    /// Read more bytes into the buffer; 0 when the peer closed.
    async fn read_more(&mut self) -> Result<usize, Fail> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Fail::Transport("not connected".into()))?;
        stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Fail::Transport(format!("read: {e}")))
    }

    /// Read more bytes into the buffer; the peer closing is an error.
    async fn fill(&mut self) -> Result<(), Fail> {
        match self.read_more().await? {
            0 => Err(Fail::Transport("connection closed by the server".into())),
            _ => Ok(()),
        }
    }

    /// The next piece of the body, `None` at its end.
    async fn body_piece(&mut self, body: &mut Body) -> Result<Option<BytesMut>, Fail> {
        loop {
            match body {
                Body::Done => return Ok(None),
                Body::Length(0) => {
                    *body = Body::Done;
                    return Ok(None);
                }
                Body::Length(rest) => {
                    if self.buf.is_empty() {
                        self.fill().await?;
                    }
                    let n = (*rest).min(self.buf.len());
                    *rest -= n;
                    return Ok(Some(self.buf.split_to(n)));
                }
                Body::Close => {
                    if self.buf.is_empty() && self.read_more().await? == 0 {
                        *body = Body::Done;
                        return Ok(None);
                    }
                    let n = self.buf.len();
                    return Ok(Some(self.buf.split_to(n)));
                }
                Body::Chunk { left, crlf } => {
                    if *crlf {
                        while self.buf.len() < 2 {
                            self.fill().await?;
                        }
                        if &self.buf[..2] != b"\r\n" {
                            return Err(Fail::Protocol("bad chunk terminator".into()));
                        }
                        self.buf.advance(2);
                        *crlf = false;
                    }
                    if *left > 0 {
                        if self.buf.is_empty() {
                            self.fill().await?;
                        }
                        let n = (*left).min(self.buf.len());
                        *left -= n;
                        if *left == 0 {
                            *crlf = true;
                        }
                        return Ok(Some(self.buf.split_to(n)));
                    }
                    // A chunk-size line.
                    let line_end = loop {
                        if let Some(i) = find_crlf(&self.buf) {
                            break i;
                        }
                        if self.buf.len() > MAX_HEAD {
                            return Err(Fail::Protocol("chunk size line too long".into()));
                        }
                        self.fill().await?;
                    };
                    let line = &self.buf[..line_end];
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                        .ok_or_else(|| Fail::Protocol("bad chunk size".into()))?;
                    self.buf.advance(line_end + 2);
                    if size == 0 {
                        // Trailers, then an empty line.
                        loop {
                            let i = loop {
                                if let Some(i) = find_crlf(&self.buf) {
                                    break i;
                                }
                                self.fill().await?;
                            };
                            self.buf.advance(i + 2);
                            if i == 0 {
                                break;
                            }
                        }
                        *body = Body::Done;
                        return Ok(None);
                    }
                    *left = size;
                }
            }
        }
    }
}

enum Attempt {
    /// Failed before any answer byte: on a reused connection, worth one retry.
    Stale(Fail),
    /// Failed after the server started answering.
    Failed(Fail),
}

enum Body {
    Length(usize),
    Chunk { left: usize, crlf: bool },
    Close,
    Done,
}

impl Body {
    fn new(f: Framing) -> Body {
        match f {
            Framing::Empty => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunk {
                left: 0,
                crlf: false,
            },
            Framing::Close => Body::Close,
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

struct Head {
    status: u16,
    framing: Framing,
    sse: bool,
    close: bool,
    session_id: Option<String>,
}

impl Head {
    fn of(resp: &httparse::Response<'_, '_>) -> Result<Head, Fail> {
        let status = resp.code.unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        let mut sse = false;
        let mut close = resp.version == Some(0);
        let mut session_id = None;
        for h in resp.headers.iter() {
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.parse::<usize>()
                        .map_err(|_| Fail::Protocol(format!("bad Content-Length `{v}`")))?,
                );
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if h.name.eq_ignore_ascii_case("content-type") {
                sse = v.to_ascii_lowercase().starts_with("text/event-stream");
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = v.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            } else if h.name.eq_ignore_ascii_case("mcp-session-id") {
                session_id = Some(v.to_owned());
            }
        }
        let framing = if status / 100 == 1 || status == 204 || status == 304 {
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(Fail::Protocol("body too large".into()));
            }
            Framing::Length(n)
        } else {
            Framing::Close
        };
        Ok(Head {
            status,
            framing,
            sse,
            close,
            session_id,
        })
    }
}

/// Builds the requests a worker sends (the fixed part once, the body per request).
#[derive(Debug, Clone)]
pub struct Requests {
    /// Everything up to the `Content-Length` header of a tools/call POST.
    call_head: Vec<u8>,
    /// Same, for a POST without a session (initialize).
    init_head: Vec<u8>,
    /// Same, for a POST on the session that is not a call (notifications).
    note_head: Vec<u8>,
    /// The complete DELETE of the session, if there is one.
    delete: Option<Vec<u8>>,
}

impl Requests {
    /// Requests to `target` in `protocol`, on `session` when there is one.
    pub fn new(target: &HttpTarget, msgs: &Messages, session: Option<&str>) -> Requests {
        let auth = target
            .bearer
            .as_deref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let base = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n",
            target.path, target.authority
        );
        let mut on_session = base.clone();
        if let Some(id) = session {
            on_session.push_str(&format!(
                "Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: {}\r\n",
                rpc::LEGACY_VERSION
            ));
        }
        let mut call = on_session.clone();
        if msgs.protocol == Protocol::Modern {
            call.push_str(&format!(
                "MCP-Protocol-Version: {}\r\nMcp-Method: tools/call\r\nMcp-Name: {}\r\n",
                rpc::MODERN_VERSION,
                msgs.tool
            ));
        }
        let delete = session.map(|id| {
            format!(
                "DELETE {} HTTP/1.1\r\nHost: {}\r\n{auth}Mcp-Session-Id: {id}\r\n\
                 MCP-Protocol-Version: {}\r\nContent-Length: 0\r\n\r\n",
                target.path,
                target.authority,
                rpc::LEGACY_VERSION
            )
            .into_bytes()
        });
        Requests {
            call_head: call.into_bytes(),
            init_head: base.into_bytes(),
            note_head: on_session.into_bytes(),
            delete,
        }
    }

    /// A tools/call POST with `id` into `out` (cleared first).
    pub fn call(&self, msgs: &Messages, id: u64, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        scratch.clear();
        msgs.call(id, scratch);
        finish(&self.call_head, scratch, out);
    }

    /// The initialize POST (no session).
    pub fn initialize(&self, id: u64) -> Vec<u8> {
        let mut out = Vec::new();
        finish(&self.init_head, &Messages::initialize(id), &mut out);
        out
    }

    /// The notifications/initialized POST on the session.
    pub fn initialized(&self) -> Vec<u8> {
        let mut out = Vec::new();
        finish(&self.note_head, rpc::INITIALIZED, &mut out);
        out
    }

    /// The DELETE of the session.
    pub fn delete(&self) -> Option<&[u8]> {
        self.delete.as_deref()
    }
}

fn finish(head: &[u8], body: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.clear();
    out.extend_from_slice(head);
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serve `answers` (raw bytes, one per request read) on a local listener.
    async fn server(answers: Vec<Vec<u8>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            for a in answers {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(&a).await.unwrap();
            }
            let _ = s.read(&mut buf).await;
        });
        addr
    }

    /// A chunked SSE answer whose chunks are `pieces`.
    fn chunked_sse(pieces: &[&str]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
            transfer-encoding: chunked\r\n\r\n"
            .to_vec();
        for p in pieces {
            out.extend_from_slice(format!("{:x};ext=1\r\n{p}\r\n", p.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[tokio::test]
    async fn json_and_chunked_sse_answers_on_one_connection() {
        let addr = server(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: abc\r\n\
              content-length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"
                .to_vec(),
            chunked_sse(&[
                "id: 1-0\ndata: \n\n",
                "id: 1-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n",
                "id: 1-2\ndata: {\"id\":2,\"r",
                "esult\":{}}\n\n",
            ]),
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = Conn::new(addr);
        let a = c.exchange(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.session_id.as_deref(), Some("abc"));
        assert_eq!(rpc::check_response(&a.message.unwrap(), 1, false), Ok(()));
        let a = c.exchange(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let msg = a.message.expect("the SSE response");
        assert_eq!(rpc::check_response(&msg, 2, true), Ok(()));
        let a = c.exchange(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(a.status, 202);
        assert_eq!(a.message.as_deref(), Some(&b""[..]));
    }

    #[tokio::test]
    async fn refused_connections_are_transport_errors() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let mut c = Conn::new(addr);
        let e = c.exchange(b"GET / HTTP/1.1\r\n\r\n").await.unwrap_err();
        assert_eq!(e.kind(), "transport");
    }

    #[test]
    fn requests_carry_the_protocol_headers() {
        let t = super::super::args::parse_url("http://127.0.0.1:9/mcp").unwrap();
        let msgs = Messages::new(Protocol::Modern, "echo", &serde_json::json!({}));
        let r = Requests::new(&t, &msgs, None);
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        r.call(&msgs, 5, &mut out, &mut scratch);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
            "{text}"
        );
        for h in [
            "MCP-Protocol-Version: 2026-07-28\r\n",
            "Mcp-Method: tools/call\r\n",
            "Mcp-Name: echo\r\n",
        ] {
            assert!(text.contains(h), "{h:?} missing: {text}");
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
        assert!(!text.contains("Mcp-Session-Id"));
        let msgs = Messages::new(Protocol::Legacy, "echo", &serde_json::json!({}));
        let r = Requests::new(&t, &msgs, Some("s1"));
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        r.call(&msgs, 5, &mut out, &mut scratch);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Mcp-Session-Id: s1\r\nMCP-Protocol-Version: 2025-11-25\r\n"));
        assert!(String::from_utf8_lossy(r.delete().unwrap()).starts_with("DELETE /mcp"));
        assert!(!text.contains("Authorization"));
    }

    #[test]
    fn a_bearer_token_goes_on_every_request() {
        let mut t = super::super::args::parse_url("http://127.0.0.1:9/mcp").unwrap();
        t.bearer = Some("tok-1".into());
        let msgs = Messages::new(Protocol::Legacy, "echo", &serde_json::json!({}));
        let r = Requests::new(&t, &msgs, Some("s1"));
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        r.call(&msgs, 5, &mut out, &mut scratch);
        let sent = [
            out,
            r.initialize(1),
            r.initialized(),
            r.delete().unwrap().to_vec(),
        ];
        for request in sent {
            let text = String::from_utf8(request).unwrap();
            let (head, _) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains("\r\nAuthorization: Bearer tok-1\r\n"),
                "{head}"
            );
        }
    }
}
