//! SSE streams of the HTTP transport: wire format, event ids, and the per-stream pump
//! that makes streams resumable.
//!
//! Every SSE stream of a session has a number; every event on it has the id
//! `{stream}-{seq}` (the priming event is seq 0). A *pump* task owns each live stream:
//! it numbers the frames a request's sink produces, appends them to the replay log
//! (sled), and forwards them to the HTTP connection currently attached, if any. A
//! dropped connection detaches; the call goes on and its events are kept. `GET` with
//! `Last-Event-ID` re-attaches: the pump replays what the client missed from the log,
//! then continues live, in order, because one task does both. A request stream ends
//! after its response; the standalone (GET) stream lives as long as the session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use slog::Logger;
use tokio::sync::mpsc;

use crate::root::SessionEntry;
use crate::sink::{Frame, FrameKind, FrameReceiver};
use crate::storage::Storage;

/// A keep-alive comment line.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// Reconnection delay advertised in the priming event (`retry:`), in milliseconds.
pub const RETRY_MS: u64 = 1000;

/// The id of event `seq` on `stream`.
pub fn event_id(stream: u64, seq: u64) -> String {
    format!("{stream}-{seq}")
}

/// Parse an event id into `(stream, seq)`.
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// One SSE `message` event. `data` is compact JSON: it has no raw newlines.
pub fn event(stream: u64, seq: u64, data: &str) -> Bytes {
    Bytes::from(format!("id: {}\ndata: {data}\n\n", event_id(stream, seq)))
}

/// The priming event: an id and empty data, so the client can resume from the start.
pub fn priming(stream: u64) -> Bytes {
    Bytes::from(format!(
        "id: {}\nretry: {RETRY_MS}\ndata: \n\n",
        event_id(stream, 0)
    ))
}

/// The receiving end an HTTP response body reads.
pub type Out = mpsc::UnboundedSender<Bytes>;

enum Control {
    /// Replay events after `after` (none when `None`), then send live events to `out`.
    Attach { after: Option<u64>, out: Out },
}

struct Live {
    control: mpsc::UnboundedSender<Control>,
}

/// The connection a stream currently writes to, if any.
#[derive(Clone, Default)]
struct Connection(Arc<Mutex<Option<Out>>>);

impl Connection {
    fn set(&self, out: Out) {
        if let Ok(mut c) = self.0.lock() {
            *c = Some(out);
        }
    }

    fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            *c = None;
        }
    }

    /// Send to the connection; a connection whose client went away is dropped.
    fn send(&self, bytes: Bytes) {
        if let Ok(mut c) = self.0.lock() {
            if c.as_ref().is_some_and(|o| o.send(bytes).is_err()) {
                *c = None;
            }
        }
    }
}

/// The live streams of `entry` (HTTP transport state kept in the session's entry).
pub fn streams_of(entry: &SessionEntry) -> Arc<StreamTable> {
    entry.transport_state::<StreamTable>().unwrap_or_default()
}

/// The live streams of one session.
pub struct StreamTable {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
    standalone: Mutex<Option<u64>>,
}

impl std::fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTable").finish_non_exhaustive()
    }
}

/// The stream is not live (it ended, or never existed).
#[derive(Debug, PartialEq, Eq)]
pub struct NotLive;

/// First stream number of this process: the start time in seconds, shifted left 20
/// bits. A session restored after a restart numbers its new streams above every
/// stream of earlier runs, so an old `Last-Event-ID` never names a new stream.
fn stream_epoch() -> u64 {
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        (secs & 0xFFFF_FFFF) << 20
    })
}

impl Default for StreamTable {
    fn default() -> Self {
        StreamTable {
            next: AtomicU64::new(stream_epoch()),
            live: Mutex::default(),
            standalone: Mutex::default(),
        }
    }
}

impl StreamTable {
    /// A new stream number (never 0).
    pub fn allocate(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The standalone stream's number, if one was opened.
    pub fn standalone(&self) -> Option<u64> {
        self.standalone.lock().ok().and_then(|s| *s)
    }

    /// Record `stream` as the standalone stream.
    pub fn set_standalone(&self, stream: u64) {
        if let Ok(mut s) = self.standalone.lock() {
            *s = Some(stream);
        }
    }

    /// Attach `out` to a live stream, replacing (and so ending) the connection it had;
    /// `after` replays missed events first.
    pub fn attach(&self, stream: u64, after: Option<u64>, out: Out) -> Result<(), NotLive> {
        let live = self.live.lock().map_err(|_| NotLive)?;
        let entry = live.get(&stream).ok_or(NotLive)?;
        entry
            .control
            .send(Control::Attach { after, out })
            .map_err(|_| NotLive)
    }

    fn insert(&self, stream: u64, live: Live) {
        if let Ok(mut m) = self.live.lock() {
            m.insert(stream, live);
        }
    }

    fn remove(&self, stream: u64) {
        if let Ok(mut m) = self.live.lock() {
            m.remove(&stream);
        }
    }

    /// Whether `stream` is live.
    pub fn is_live(&self, stream: u64) -> bool {
        self.live.lock().is_ok_and(|m| m.contains_key(&stream))
    }
}

/// Whether a stream ends after its response (a POST) or lives with the session (GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The stream of one POSTed request.
    Request,
    /// The session's standalone stream.
    Standalone,
}

/// Everything a pump needs.
pub struct Pump {
    /// The session.
    pub session: Arc<SessionEntry>,
    /// The session's live streams ([`streams_of`]).
    pub streams: Arc<StreamTable>,
    /// Where events are logged for replay.
    pub storage: Storage,
    /// This stream's number.
    pub stream: u64,
    /// Request or standalone.
    pub kind: StreamKind,
    /// Keep-alive period.
    pub keepalive: Duration,
    /// Logger.
    pub log: Logger,
}

impl Pump {
    /// Register the stream and start its task on the current arbiter. `first` is a
    /// frame already taken from `frames`; `out` the first connection, if any.
    pub fn start(self, first: Option<Frame>, frames: FrameReceiver, out: Option<Out>) {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let conn = Connection::default();
        if let Some(out) = out {
            conn.set(out);
        }
        self.streams.insert(
            self.stream,
            Live {
                control: control_tx,
            },
        );
        actix_rt::spawn(self.run(first, frames, conn, control_rx));
    }

    async fn run(
        self,
        mut first: Option<Frame>,
        mut frames: FrameReceiver,
        conn: Connection,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut seq = 0u64;
        let mut keepalive = tokio::time::interval(self.keepalive);
        keepalive.reset();
        loop {
            let frame = if let Some(f) = first.take() {
                Some(f)
            } else {
                tokio::select! {
                    f = frames.recv() => f,
                    Some(Control::Attach { after, out }) = control.recv() => {
                        if let Some(after) = after {
                            self.replay(after, &out);
                        }
                        conn.set(out);
                        continue;
                    }
                    _ = keepalive.tick() => {
                        conn.send(Bytes::from_static(KEEPALIVE));
                        continue;
                    }
                }
            };
            let Some(frame) = frame else { break };
            if frame.kind == FrameKind::CloseStream {
                // End this connection; the client reconnects with Last-Event-ID.
                conn.clear();
                continue;
            }
            seq += 1;
            if let Err(e) =
                self.storage
                    .append_event(&self.session.id, self.stream, seq, &frame.json)
            {
                slog::warn!(self.log, "event not logged for replay"; "error" => e.to_string());
            }
            conn.send(event(self.stream, seq, &frame.json));
            keepalive.reset();
            if frame.kind == FrameKind::Response && self.kind == StreamKind::Request {
                break;
            }
        }
        // No new attach after this; one that raced with the end is served from the
        // log, which now holds every event of the stream, the response included.
        self.streams.remove(self.stream);
        control.close();
        while let Some(Control::Attach { after, out }) = control.recv().await {
            self.replay(after.unwrap_or(seq), &out);
        }
    }

    fn replay(&self, after: u64, out: &Out) {
        match self
            .storage
            .events_after(&self.session.id, self.stream, after)
        {
            Ok(events) => {
                for (seq, json) in events {
                    let _ = out.send(event(self.stream, seq, &json));
                }
            }
            Err(e) => slog::warn!(self.log, "replay failed"; "error" => e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(parse_event_id(&event_id(3, 17)), Some((3, 17)));
        assert_eq!(parse_event_id("x-1"), None);
        assert_eq!(parse_event_id("12"), None);
    }

    #[test]
    fn wire_format() {
        assert_eq!(&event(1, 2, "{}")[..], b"id: 1-2\ndata: {}\n\n");
        assert!(std::str::from_utf8(&priming(4))
            .unwrap()
            .starts_with("id: 4-0\n"));
    }
}
