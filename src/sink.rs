//! Outbound frames: the one-way channel from sessions and calls to a transport.
//!
//! Every request arrives with a [`Sink`] saying where messages related to it go
//! (stdout on stdio; the request's SSE stream or JSON body on HTTP). A transport owns
//! the receiving end and writes frames in order. Frames are already-encoded JSON text:
//! each message is serialized once, by its producer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::protocol::Encoded;

/// What a frame carries, so a transport can end a request's stream after its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A response (result or error) to a client request.
    Response,
    /// A notification (progress, log message, list changed).
    Notification,
    /// A server → client request.
    Request,
    /// Not a message: asks an HTTP transport to close the current SSE connection of
    /// this request (the client reconnects with `Last-Event-ID`; SEP-1699 polling).
    /// Ignored by transports without such streams.
    CloseStream,
}

/// One encoded JSON-RPC message.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its kind.
    pub kind: FrameKind,
    /// The JSON text, without a trailing newline.
    pub json: String,
    /// For an error response, its JSON-RPC code (set by whoever encoded it: a
    /// transport never reads it back from `json`).
    pub error: Option<i32>,
    /// For an error response, its message (the refusal log's `error`, without
    /// reading `json` back).
    pub error_message: Option<String>,
    /// An error response given because the server cannot serve now (draining):
    /// HTTP answers 503 + `Retry-After` (`protocol::Encoded::unavailable`).
    pub unavailable: bool,
}

/// Sending half; cheap to clone. Sending to a closed transport is a no-op that
/// reports `false` (the client is gone; there is no one to tell).
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Frame>,
    /// Bytes sent and not yet written, when the transport bounds them.
    backlog: Option<Arc<Backlog>>,
}

/// Bytes sent through a sink that its transport has not written yet. A transport
/// that owns one (stdio) reads no new request while it is over its limit, so a
/// client that does not read its answers cannot make the server queue without
/// bound.
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: AtomicUsize,
    drained: Notify,
}

impl Backlog {
    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// The transport wrote `n` bytes of frames.
    pub fn written(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
        self.drained.notify_waiters();
    }

    /// Resolves once at most `limit` bytes wait.
    pub async fn at_most(&self, limit: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.bytes() <= limit {
                return;
            }
            drained.await;
        }
    }
}

/// Receiving half, owned by a transport.
pub type FrameReceiver = mpsc::UnboundedReceiver<Frame>;

impl Sink {
    /// A new channel.
    ///
    /// Unbounded by design: what bounds it is the producers, each of which is
    /// bounded (`max_in_flight_per_session` calls per session, one response each).
    pub fn channel() -> (Sink, FrameReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Sink { tx, backlog: None }, rx)
    }

    /// A new channel whose unwritten bytes are counted in `backlog` (the receiver
    /// reports what it wrote with [`Backlog::written`]).
    pub fn channel_with_backlog(backlog: Arc<Backlog>) -> (Sink, FrameReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Sink {
            tx,
            backlog: Some(backlog),
        };
        (sink, rx)
    }

    /// Send a frame; false when the receiver is gone.
    pub fn send(&self, kind: FrameKind, json: String) -> bool {
        self.send_frame(Frame {
            kind,
            json,
            error: None,
            error_message: None,
            unavailable: false,
        })
    }

    fn send_frame(&self, frame: Frame) -> bool {
        let n = frame.json.len();
        if let Some(b) = &self.backlog {
            b.bytes.fetch_add(n, Ordering::AcqRel);
        }
        let sent = self.tx.send(frame).is_ok();
        if !sent {
            if let Some(b) = &self.backlog {
                b.written(n);
            }
        }
        sent
    }

    /// Send a response (a result, or an error with its code).
    pub fn response(&self, response: Encoded) -> bool {
        self.send_frame(Frame {
            kind: FrameKind::Response,
            json: response.json,
            error: response.error,
            error_message: response.error_message,
            unavailable: response.unavailable,
        })
    }

    /// Send a notification.
    pub fn notification(&self, json: String) -> bool {
        self.send(FrameKind::Notification, json)
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the receiver is gone (the client closed the stream).
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// A sink that gathers the next `expected` responses into one JSON array (a batch
    /// reply) sent to `self`; other frames pass through at once. If every sender is
    /// dropped first (say, a cancelled call never answers), the responses gathered so
    /// far are sent. Must be called inside an actix/tokio runtime.
    pub fn batch(&self, expected: usize) -> Sink {
        let (tx, mut rx) = Sink::channel();
        let parent = self.clone();
        actix_rt::spawn(async move {
            let mut replies: Vec<String> = Vec::with_capacity(expected);
            while replies.len() < expected {
                let Some(frame) = rx.recv().await else { break };
                match frame.kind {
                    FrameKind::Response => replies.push(frame.json),
                    kind => {
                        parent.send(kind, frame.json);
                    }
                }
            }
            if !replies.is_empty() {
                // A batch answer is one array, an error or not per item: written
                // once, each reply freed as it is copied in.
                let len = replies.iter().map(|r| r.len() + 1).sum::<usize>() + 1;
                let mut array = String::with_capacity(len);
                array.push('[');
                for (i, reply) in replies.into_iter().enumerate() {
                    if i > 0 {
                        array.push(',');
                    }
                    array.push_str(&reply);
                }
                array.push(']');
                parent.response(Encoded::result(array));
            }
            // Late notifications of the batch still reach the client.
            while let Some(frame) = rx.recv().await {
                if frame.kind != FrameKind::Response {
                    parent.send(frame.kind, frame.json);
                }
            }
        });
        tx
    }
}
