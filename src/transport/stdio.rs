//! stdio transport: newline-delimited JSON-RPC on stdin/stdout.
//!
//! Architecture invariant: the writer in this file is the only code in emcee that
//! writes to stdout; it writes whole JSON-RPC messages, one per line. [`serve_stdio`]
//! serves the process's stdin/stdout (polled without helper threads when they are
//! pipes or sockets); [`serve`] the same over any async byte streams.
//!
//! Requests are handed to the session as they arrive and served concurrently; the
//! reader waits only for the session's mailbox (backpressure), never for a call.
//! While the reader still holds whole lines it has not handed over (one read
//! brings many), the writer holds the answers it has ([`Reading`]): they leave
//! together in one write when the reader runs out of lines, instead of one
//! write (and one wake-up of the client) per answer.
//!
//! Shutdown order (EOF on stdin, or the `shutdown` future firing):
//! 1. stop reading;
//! 2. drain the session: in-flight calls get `limits.shutdown_grace` to finish, the
//!    rest are answered as cancelled;
//! 3. stop the session;
//! 4. the writer writes every queued frame, flushes stdout and ends;
//! 5. storage is flushed by the caller.

use crate::protocol::Encoded;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::unix::pipe;
use tokio_util::codec::{Decoder, FramedRead};

use crate::protocol::jsonrpc::{self, encode_error};
use crate::protocol::RpcError;
use crate::runtime::root::{OpenSession, Registry, Root};
use crate::runtime::service::Service;
use crate::runtime::session::{Close, Drain, Inbound, SessionKind, SetStandalone};
use crate::sink::{Backlog, Frame, FrameKind, FrameReceiver, Sink};

/// Most bytes the writer gathers before one write to stdout.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// One line read from stdin.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line, without its `\n` (or `\r\n`).
    Message(Bytes),
    /// A line longer than the limit; its bytes were discarded.
    TooLong,
}

/// Splits input on `\n`, bounding memory: a line of more than `max` bytes (not
/// counting its `\n`) is discarded
/// as it streams in and reported once as [`Line::TooLong`]. It never fails on content,
/// so one bad line does not end the stream.
#[derive(Debug)]
pub struct LineDecoder {
    max: usize,
    discarding: bool,
    scanned: usize,
}

impl LineDecoder {
    /// A decoder accepting lines of up to `max` bytes (excluding the newline).
    pub fn new(max: usize) -> LineDecoder {
        LineDecoder {
            max,
            discarding: false,
            scanned: 0,
        }
    }
}

fn trim_newline(mut line: BytesMut) -> Bytes {
    if line.last() == Some(&b'\n') {
        line.truncate(line.len() - 1);
    }
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line.freeze()
}

impl Decoder for LineDecoder {
    type Item = Line;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        if self.discarding {
            return Ok(match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let _ = buf.split_to(i + 1);
                    self.discarding = false;
                    Some(Line::TooLong)
                }
                None => {
                    buf.clear();
                    None
                }
            });
        }
        // A line of exactly `max` bytes has its newline at index `max`.
        let limit = buf.len().min(self.max.saturating_add(1));
        match buf[self.scanned..limit].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i + 1;
                self.scanned = 0;
                Ok(Some(Line::Message(trim_newline(buf.split_to(end)))))
            }
            None if buf.len() > self.max => {
                // Too long: drop up to the next newline, which may already be buffered.
                self.scanned = 0;
                self.discarding = true;
                self.decode(buf)
            }
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.scanned = 0;
        if self.discarding {
            self.discarding = false;
            buf.clear();
            return Ok(Some(Line::TooLong));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        // A last line without a trailing newline.
        Ok(Some(Line::Message(trim_newline(buf.split()))))
    }
}

/// Serve one session on the process's stdin/stdout until EOF or `shutdown`.
///
/// When stdin and stdout are pipes or sockets (how MCP clients start servers), they
/// are put in non-blocking mode and polled by the runtime itself, on its own thread:
/// a read takes every line the client has written so far, a write sends every
/// queued frame, and nothing wakes another thread. Otherwise (a terminal, a regular
/// file) tokio's stdin/stdout are used, which run each read and write on the
/// blocking pool. Non-blocking mode is undone when the session ends. With the
/// fallback a pool thread may stay parked in `read(2)` on stdin until the client
/// closes it, so the process should exit once this returns rather than wait for it.
pub async fn serve_stdio<S>(service: Arc<Service>, shutdown: S) -> io::Result<()>
where
    S: Future<Output = ()>,
{
    let polled = |fd, direction| match Polled::new(fd, direction) {
        Ok(polled) => polled,
        Err(e) => {
            slog::warn!(service.log, "stdio is served through the blocking pool";
                "error" => e.to_string());
            None
        }
    };
    let stdin = io::stdin();
    let input: Box<dyn AsyncRead + Unpin> = match polled(stdin.as_fd(), Direction::In) {
        Some(p) => Box::new(p),
        None => Box::new(tokio::io::stdin()),
    };
    let stdout = io::stdout();
    let output: Box<dyn AsyncWrite + Unpin> = match polled(stdout.as_fd(), Direction::Out) {
        Some(p) => Box::new(p),
        None => Box::new(tokio::io::stdout()),
    };
    serve(service, input, output, shutdown).await
}

/// Serve one session on `input`/`output` (any async byte streams: the process's
/// stdio, a socket, an in-memory duplex in tests) until EOF or `shutdown`.
pub async fn serve<R, W, S>(
    service: Arc<Service>,
    input: R,
    output: W,
    shutdown: S,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
    S: Future<Output = ()>,
{
    let log = service.log.new(slog::o!("transport" => "stdio"));
    let _connection = crate::transport::connections::ConnectionGuard::new(
        service.metrics.active_connections.clone(),
    );
    let limits = service.limits.clone();
    // Answers the client has not read yet are bounded: while more than
    // `limits.max_output_bytes` wait, no new request is read.
    let backlog = Arc::new(Backlog::default());
    let (sink, frames) = Sink::channel_with_backlog(backlog.clone());
    let (finish_tx, finish_rx) = futures::channel::oneshot::channel::<()>();
    let reading = Reading::default();
    let writer = actix_rt::spawn(write_frames(
        frames,
        output,
        finish_rx,
        backlog.clone(),
        reading.clone(),
    ));

    let root = Root::new(service, Registry::default()).start();
    let entry = root
        .send(OpenSession {
            arbiter: None,
            kind: SessionKind::Connection,
            owner: None,
        })
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .map_err(|e| io::Error::other(e.to_string()))?;
    // The stdio connection is one long stream: the session is never idle while it lasts.
    entry.stream_opened();
    let session = entry.addr.clone();
    // Messages not tied to a request (resource updates) also go to stdout.
    let _ = session.send(SetStandalone(sink.clone())).await;

    let mut lines = FramedRead::with_capacity(
        input,
        LineDecoder::new(limits.max_message_bytes),
        READ_BUFFER_BYTES,
    );
    tokio::pin!(shutdown);
    let mut waited_for_reader = false;
    loop {
        // Whole lines still buffered: their answers are near, the writer waits
        // for them. Otherwise the next step waits (for the client or for input).
        reading.set(lines.read_buffer().contains(&b'\n'));
        if backlog.bytes() > limits.max_output_bytes {
            reading.set(false);
            if !waited_for_reader {
                waited_for_reader = true;
                slog::warn!(log, "the client is not reading its answers: reading paused";
                    "queued_bytes" => backlog.bytes(), "limit" => limits.max_output_bytes);
            }
            tokio::select! {
                () = backlog.at_most(limits.max_output_bytes) => {}
                () = &mut shutdown => {
                    slog::info!(log, "shutdown requested");
                    break;
                }
            }
        }
        let line = tokio::select! {
            line = lines.next() => line,
            () = &mut shutdown => {
                slog::info!(log, "shutdown requested");
                break;
            }
        };
        match line {
            None => {
                slog::info!(log, "stdin closed");
                break;
            }
            Some(Err(e)) => {
                slog::error!(log, "stdin read failed"; "error" => e.to_string());
                break;
            }
            Some(Ok(Line::TooLong)) => {
                let e = RpcError::invalid_request(format!(
                    "message larger than {} bytes (limits.max_message_bytes)",
                    limits.max_message_bytes
                ));
                sink.response(Encoded::error(encode_error(None, &e), &e));
            }
            Some(Ok(Line::Message(bytes))) => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let payload = jsonrpc::parse(&bytes);
                let inbound = Inbound::new(payload, sink.clone());
                if session.send(inbound).await.is_err() {
                    slog::error!(log, "session stopped unexpectedly");
                    break;
                }
            }
        }
    }

    reading.set(false);

    // Shutdown order: see the module doc.
    let _ = session
        .send(Drain {
            grace: limits.shutdown_grace,
        })
        .await;
    let _ = session.send(Close).await;
    drop(sink);
    let _ = finish_tx.send(());
    match writer.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// Bytes the line reader asks for at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Which way a [`Polled`] end carries bytes.
#[derive(Clone, Copy)]
enum Direction {
    In,
    Out,
}

/// stdin or stdout when it is a pipe or a socket: a duplicate of the descriptor in
/// non-blocking mode, registered with the runtime's poller. Dropping it puts the
/// file description (shared with whoever else holds it) back in blocking mode.
struct Polled(Option<End>);

enum End {
    PipeIn(pipe::Receiver),
    PipeOut(pipe::Sender),
    Socket(tokio::net::UnixStream),
}

impl Polled {
    /// `fd` as a polled stream, or `None` when it is neither a pipe nor a socket
    /// (a terminal, a regular file, `/dev/null`).
    fn new(fd: BorrowedFd<'_>, direction: Direction) -> io::Result<Option<Polled>> {
        let file = std::fs::File::from(fd.try_clone_to_owned()?);
        let kind = file.metadata()?.file_type();
        let owned = OwnedFd::from(file);
        let end = if kind.is_fifo() {
            match direction {
                Direction::In => End::PipeIn(pipe::Receiver::from_owned_fd(owned)?),
                Direction::Out => End::PipeOut(pipe::Sender::from_owned_fd(owned)?),
            }
        } else if kind.is_socket() {
            let socket = std::os::unix::net::UnixStream::from(owned);
            socket.set_nonblocking(true)?;
            End::Socket(tokio::net::UnixStream::from_std(socket)?)
        } else {
            return Ok(None);
        };
        Ok(Some(Polled(Some(end))))
    }
}

fn wrong_direction() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "wrong direction for this stdio end",
    )
}

impl Drop for Polled {
    fn drop(&mut self) {
        // Best effort: the session is over either way.
        match self.0.take() {
            Some(End::PipeIn(pipe)) => drop(pipe.into_blocking_fd()),
            Some(End::PipeOut(pipe)) => drop(pipe.into_blocking_fd()),
            Some(End::Socket(socket)) => {
                if let Ok(socket) = socket.into_std() {
                    let _ = socket.set_nonblocking(false);
                }
            }
            None => {}
        }
    }
}

impl AsyncRead for Polled {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Some(End::PipeIn(pipe)) => Pin::new(pipe).poll_read(cx, buf),
            Some(End::Socket(socket)) => Pin::new(socket).poll_read(cx, buf),
            _ => Poll::Ready(Err(wrong_direction())),
        }
    }
}

impl AsyncWrite for Polled {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Some(End::PipeOut(pipe)) => Pin::new(pipe).poll_write(cx, buf),
            Some(End::Socket(socket)) => Pin::new(socket).poll_write(cx, buf),
            _ => Poll::Ready(Err(wrong_direction())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Some(End::PipeOut(pipe)) => Pin::new(pipe).poll_flush(cx),
            Some(End::Socket(socket)) => Pin::new(socket).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Some(End::PipeOut(pipe)) => Pin::new(pipe).poll_shutdown(cx),
            // No socket shutdown: stdin may be the same socket, still being read.
            _ => Poll::Ready(Ok(())),
        }
    }
}

fn push_line(buf: &mut Vec<u8>, frame: Frame) {
    // stdio has no per-request streams: a close-stream request means nothing here.
    if frame.kind != FrameKind::CloseStream {
        buf.extend_from_slice(frame.json.as_bytes());
        buf.push(b'\n');
    }
}

/// Whether the stdin reader still holds whole lines it has not handed to the
/// session (shared by the reader and the writer, on one thread).
#[derive(Clone, Default)]
struct Reading(std::rc::Rc<ReadingState>);

#[derive(Default)]
struct ReadingState {
    busy: std::cell::Cell<bool>,
    idle: tokio::sync::Notify,
}

impl Reading {
    fn set(&self, busy: bool) {
        if self.0.busy.replace(busy) && !busy {
            self.0.idle.notify_waiters();
        }
    }

    fn busy(&self) -> bool {
        self.0.busy.get()
    }

    /// Resolves at the next `set(false)` after it is enabled.
    fn idle(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.idle.notified()
    }
}

/// The writer: one JSON message per line, batched into few writes, flushed
/// whenever the queue runs dry. Ends when told to finish (after writing what is
/// queued) or when every sender is gone.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut frames: FrameReceiver,
    mut out: W,
    mut finish: futures::channel::oneshot::Receiver<()>,
    backlog: Arc<Backlog>,
    reading: Reading,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut finishing = false;
    loop {
        let first = if finishing {
            frames.try_recv().ok()
        } else {
            tokio::select! {
                biased;
                f = frames.recv() => f,
                _ = &mut finish => {
                    finishing = true;
                    frames.try_recv().ok()
                }
            }
        };
        let Some(first) = first else { break };
        let mut taken = first.json.len();
        push_line(&mut buf, first);
        // The reader is handing over more requests: gather their answers too.
        while !finishing && buf.len() < WRITE_BATCH_BYTES {
            let idle = reading.idle();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if !reading.busy() {
                break;
            }
            tokio::select! {
                biased;
                f = frames.recv() => match f {
                    Some(f) => {
                        taken += f.json.len();
                        push_line(&mut buf, f);
                    }
                    None => break,
                },
                () = idle => break,
            }
        }
        while buf.len() < WRITE_BATCH_BYTES {
            match frames.try_recv() {
                Ok(f) => {
                    taken += f.json.len();
                    push_line(&mut buf, f);
                }
                Err(_) => break,
            }
        }
        if buf.is_empty() {
            backlog.written(taken);
            continue;
        }
        let written = async {
            out.write_all(&buf).await?;
            out.flush().await
        }
        .await;
        backlog.written(taken);
        written?;
        buf.clear();
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stdout that counts the writes it is given and keeps the bytes.
    #[derive(Clone, Default)]
    struct Counted(std::rc::Rc<std::cell::RefCell<(usize, Vec<u8>)>>);

    impl AsyncWrite for Counted {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut state = self.0.borrow_mut();
            state.0 += 1;
            state.1.extend_from_slice(b);
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The lines of one read are served together: their answers leave in a few
    /// writes, not one write per answer (the writer waits while the reader still
    /// holds whole lines).
    #[test]
    fn the_answers_to_one_read_leave_in_a_few_writes() {
        const CALLS: usize = 64;
        let mut input = String::from(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        );
        input.push_str("\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
        for id in 1..=CALLS {
            input.push_str(&format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"x\"}}}}}}\n"
            ));
        }
        let out = Counted::default();
        actix_rt::System::new().block_on(async {
            let service = crate::runtime::service::for_tests();
            serve(
                service,
                input.as_bytes(),
                out.clone(),
                std::future::pending::<()>(),
            )
            .await
            .expect("served");
        });
        let (writes, bytes) = out.0.take();
        let text = String::from_utf8(bytes).expect("UTF-8");
        let answered = text.lines().filter(|l| l.contains("\"result\"")).count();
        assert_eq!(answered, CALLS + 1, "{text}");
        assert!(writes <= 8, "{writes} writes for {} answers", CALLS + 1);
    }

    fn decode_all(input: &[u8], max: usize) -> Vec<Line> {
        let mut d = LineDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed one byte at a time: the worst case for a streaming decoder.
        for &b in input {
            buf.extend_from_slice(&[b]);
            while let Some(line) = d.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        while let Some(line) = d.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        out
    }

    fn msg(s: &str) -> Line {
        Line::Message(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        assert_eq!(
            decode_all(b"ab\r\ncd\nef", 10),
            vec![msg("ab"), msg("cd"), msg("ef")]
        );
    }

    #[test]
    fn limit_edge_is_exact() {
        assert_eq!(decode_all(b"abcd\n", 4), vec![msg("abcd")]);
        // The limit counts every byte before the `\n`, a `\r` included.
        assert_eq!(decode_all(b"abc\r\n", 4), vec![msg("abc")]);
        assert_eq!(
            decode_all(b"abcd\r\nok\n", 4),
            vec![Line::TooLong, msg("ok")]
        );
        assert_eq!(
            decode_all(b"abcde\nok\n", 4),
            vec![Line::TooLong, msg("ok")]
        );
        assert_eq!(
            decode_all(b"abcdefghijkl\nok\n", 4),
            vec![Line::TooLong, msg("ok")]
        );
        assert_eq!(decode_all(b"abcdefghijkl", 4), vec![Line::TooLong]);
    }

    #[test]
    fn whole_buffers_decode_the_same() {
        let mut d = LineDecoder::new(4);
        let mut buf = BytesMut::from(&b"abcd\nabcde\nxy\n"[..]);
        let mut out = Vec::new();
        while let Some(line) = d.decode(&mut buf).unwrap() {
            out.push(line);
        }
        assert_eq!(out, vec![msg("abcd"), Line::TooLong, msg("xy")]);
    }
}
