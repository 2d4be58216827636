//! SSE streams of the HTTP transport: wire format, event ids, and the per-stream pump
//! that makes streams resumable.
//!
//! Every SSE stream of a session has a number; every event on it has the id
//! `{stream}-{seq}` (the priming event is seq 0). A *pump* task owns each live stream:
//! it numbers the frames a request's sink produces, appends them to the replay log
//! (sled), and forwards them to the HTTP connection currently attached, if any. A
//! dropped connection detaches; the call goes on and its events are kept. `GET` with
//! `Last-Event-ID` re-attaches: the pump answers with the last seq it logged and sends
//! only later events to the new connection, whose body first reads the missed events
//! from the log, lazily, up to that seq: in order, and nothing is held in memory for a
//! client that does not read. A request stream ends after its response; the
//! standalone (GET) stream lives as long as the session.
//!
//! A connection holds at most `limits.sse_buffer_bytes` its client has not read (plus
//! one event, however big); past that the pump drops it, and the client resumes from
//! the log with `Last-Event-ID`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use slog::Logger;
use tokio::sync::mpsc;

use crate::runtime::root::SessionEntry;
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

/// The sending half of one SSE connection. Bytes its client has not read yet are
/// counted; a send that would pass the connection's limit fails instead (one event
/// is always taken by an empty connection, however big).
#[derive(Clone)]
pub struct Out {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// The receiving half of one SSE connection: what its response body reads.
pub struct OutRx {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// Why a send to a connection failed.
#[derive(Debug, PartialEq, Eq)]
enum SendError {
    /// The client has not read `max` bytes.
    Behind,
    /// The connection is gone.
    Closed,
}

/// A connection that holds at most `max` unread bytes (plus one event).
pub fn connection(max: usize) -> (Out, OutRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Out {
            tx,
            queued: queued.clone(),
            max,
        },
        OutRx { rx, queued },
    )
}

impl Out {
    fn send(&self, bytes: Bytes) -> Result<(), SendError> {
        let queued = self.queued.load(Ordering::Acquire);
        if queued > 0 && queued + bytes.len() > self.max {
            return Err(SendError::Behind);
        }
        self.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        self.tx.send(bytes).map_err(|_| SendError::Closed)
    }
}

impl OutRx {
    /// The next bytes to write; `None` once the pump let the connection go.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let bytes = self.rx.recv().await?;
        self.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
        Some(bytes)
    }
}

enum Control {
    /// Send live events to `out` from now on; answer with the last seq logged (the
    /// new connection reads what it missed up to there from the log).
    Attach {
        out: Out,
        logged: tokio::sync::oneshot::Sender<u64>,
    },
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

    /// Send to the connection; a connection whose client went away, or is too far
    /// behind, is dropped (`Err(Behind)` then: the caller reports it).
    fn send(&self, bytes: Bytes) -> Result<(), SendError> {
        let Ok(mut c) = self.0.lock() else {
            return Err(SendError::Closed);
        };
        let Some(out) = c.as_ref() else {
            return Ok(());
        };
        let sent = out.send(bytes);
        if sent.is_err() {
            *c = None;
        }
        sent
    }
}

/// The SSE streams of every session this transport serves: the transport's own
/// table (Root knows nothing of it). A session's table lives as long as its
/// registry entry: it is tied to that entry, so a session ended and restored under
/// the same id starts with a fresh table, and the tables of ended sessions are
/// swept ([`SessionStreams::sweep`], every second with the replay log's trim).
/// Only the SSE paths look here; a JSON answer never does.
#[derive(Debug, Default)]
pub struct SessionStreams {
    tables: Mutex<HashMap<Arc<str>, Owned>>,
}

/// A session's stream table and the registry entry it belongs to.
type Owned = (Weak<SessionEntry>, Arc<StreamTable>);

impl SessionStreams {
    /// The live streams of `entry`, created on first use.
    pub fn of(&self, entry: &Arc<SessionEntry>) -> Arc<StreamTable> {
        let Ok(mut tables) = self.tables.lock() else {
            // Poisoned: a panic elsewhere held the lock. Serve with a table of
            // this request's own rather than fail it.
            return Arc::default();
        };
        if let Some((owner, table)) = tables.get(&entry.id) {
            if std::ptr::eq(owner.as_ptr(), Arc::as_ptr(entry)) {
                return table.clone();
            }
        }
        let table = Arc::new(StreamTable::default());
        tables.insert(entry.id.clone(), (Arc::downgrade(entry), table.clone()));
        table
    }

    /// Forget the tables of sessions whose entry is gone.
    pub fn sweep(&self) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.retain(|_, (owner, _)| owner.strong_count() > 0);
        }
    }

    /// How many sessions have a table.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tables.lock().map_or(0, |t| t.len())
    }

    /// True when no session has a table.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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

    /// Attach `out` to a live stream, replacing (and so ending) the connection it had.
    /// Returns the last seq logged: `out` gets the events after it, the log has the
    /// rest. A stream that ended meanwhile answers too (its log is then complete and
    /// `out` gets nothing).
    pub async fn attach(&self, stream: u64, out: Out) -> Result<u64, NotLive> {
        let (logged, answer) = tokio::sync::oneshot::channel();
        {
            let live = self.live.lock().map_err(|_| NotLive)?;
            let entry = live.get(&stream).ok_or(NotLive)?;
            entry
                .control
                .send(Control::Attach { out, logged })
                .map_err(|_| NotLive)?;
        }
        answer.await.map_err(|_| NotLive)
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
    /// The session's id.
    pub session: Arc<str>,
    /// The session's live streams ([`SessionStreams::of`]).
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
    /// Counts and logs connections dropped for being too far behind.
    pub refusals: Arc<crate::telemetry::Refusals>,
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
                    Some(Control::Attach { out, logged }) = control.recv() => {
                        conn.set(out);
                        let _ = logged.send(seq);
                        continue;
                    }
                    _ = keepalive.tick() => {
                        self.sent(conn.send(Bytes::from_static(KEEPALIVE)));
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
            if let Err(e) = self
                .storage
                .append_event(&self.session, self.stream, seq, &frame.json)
            {
                slog::warn!(self.log, "event not logged for replay"; "error" => e.to_string());
            }
            self.sent(conn.send(event(self.stream, seq, &frame.json)));
            keepalive.reset();
            if frame.kind == FrameKind::Response && self.kind == StreamKind::Request {
                break;
            }
        }
        // No new attach after this; one that raced with the end is served from the
        // log, which now holds every event of the stream, the response included.
        self.streams.remove(self.stream);
        control.close();
        while let Some(Control::Attach { logged, .. }) = control.recv().await {
            let _ = logged.send(seq);
        }
    }

    /// Report a connection dropped for being too far behind.
    fn sent(&self, sent: Result<(), SendError>) {
        if sent == Err(SendError::Behind) {
            let why = format!(
                "SSE connection of session {} dropped: the client does not read (limits.sse_buffer_bytes); it resumes with Last-Event-ID",
                crate::telemetry::session_tag(&self.session)
            );
            self.refusals.refuse(crate::telemetry::Refused::new(
                crate::telemetry::metrics::reason::SSE_SLOW,
                &why,
            ));
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
    fn a_connection_holds_at_most_its_limit_plus_one_event() {
        let (out, mut rx) = connection(100);
        assert_eq!(
            out.send(Bytes::from(vec![b'x'; 500])),
            Ok(()),
            "one event always fits"
        );
        assert_eq!(out.send(Bytes::from_static(b"y")), Err(SendError::Behind));
        futures::executor::block_on(async {
            assert_eq!(rx.recv().await.map(|b| b.len()), Some(500));
        });
        assert_eq!(out.send(Bytes::from(vec![b'x'; 60])), Ok(()));
        assert_eq!(
            out.send(Bytes::from(vec![b'x'; 40])),
            Ok(()),
            "up to the limit"
        );
        assert_eq!(out.send(Bytes::from_static(b"y")), Err(SendError::Behind));
        drop(rx);
        futures::executor::block_on(async {
            let (out, rx) = connection(100);
            drop(rx);
            assert_eq!(out.send(Bytes::from_static(b"y")), Err(SendError::Closed));
        });
    }

    /// A client that stops reading loses its connection, not events: a resume gets
    /// the missed ones from the log (up to the seq the pump answers) and the rest live.
    #[test]
    fn a_slow_connection_is_dropped_and_resumes_from_the_log_then_live() {
        actix_rt::System::new().block_on(async {
            let storage = Storage::temporary().unwrap();
            let metrics = crate::telemetry::metrics::Metrics::new();
            let log = Logger::root(slog::Discard, slog::o!());
            let limits = crate::config::Limits::default();
            let refusals = Arc::new(crate::telemetry::Refusals::new(&metrics, &limits, log));
            let streams = Arc::new(StreamTable::default());
            let stream = streams.allocate();
            let (sink, frames) = crate::sink::Sink::channel();
            let (out, mut rx) = connection(300);
            Pump {
                session: Arc::from("s1"),
                streams: streams.clone(),
                storage: storage.clone(),
                stream,
                kind: StreamKind::Standalone,
                keepalive: Duration::from_secs(60),
                log: Logger::root(slog::Discard, slog::o!()),
                refusals,
            }
            .start(None, frames, Some(out));
            let note = |n: u32| {
                format!(
                    r#"{{"jsonrpc":"2.0","method":"n","params":{{"n":{n},"pad":"{}"}}}}"#,
                    "p".repeat(60)
                )
            };
            for n in 1..=10 {
                assert!(sink.notification(note(n)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            // What fitted, then the end of the connection.
            let mut got = 0;
            let second = Duration::from_secs(1);
            while let Ok(Some(bytes)) = tokio::time::timeout(second, rx.recv()).await {
                assert!(bytes.starts_with(format!("id: {stream}-").as_bytes()));
                got += 1;
            }
            assert!((1..10).contains(&got), "{got} events before the drop");
            assert!(metrics
                .render()
                .contains(r#"mcp_rejected_total{reason="sse_slow"} 1"#));
            // Resume: the pump says what it logged; the log has all of it.
            let (out, mut rx) = connection(300);
            assert_eq!(streams.attach(stream, out).await, Ok(10));
            let logged = storage.events_after("s1", stream, 0).unwrap();
            assert_eq!(logged.len(), 10);
            assert_eq!(logged[9].1, note(10));
            assert!(sink.notification(note(11)));
            let live = rx.recv().await.unwrap();
            assert!(
                live.starts_with(format!("id: {stream}-11\n").as_bytes()),
                "{live:?}"
            );
        });
    }

    #[test]
    fn wire_format() {
        assert_eq!(&event(1, 2, "{}")[..], b"id: 1-2\ndata: {}\n\n");
        assert!(std::str::from_utf8(&priming(4))
            .unwrap()
            .starts_with("id: 4-0\n"));
    }

    /// The transport's table of streams follows the registry entry, not the id: a
    /// session restored under the same id starts afresh, and an ended one is swept.
    #[actix_rt::test]
    async fn stream_tables_live_as_long_as_their_session_entry() {
        use crate::runtime::session::{Session, SessionKind};
        use actix::Actor;
        let service = crate::runtime::service::for_tests();
        let id: Arc<str> = Arc::from("s1");
        let start = || Session::new(id.clone(), service.clone(), SessionKind::Http, None).start();
        let streams = SessionStreams::default();
        let first = Arc::new(SessionEntry::new(id.clone(), start()));
        let table = streams.of(&first);
        assert!(
            Arc::ptr_eq(&table, &streams.of(&first)),
            "one table per entry"
        );
        let restored = Arc::new(SessionEntry::new(id.clone(), start()));
        assert!(
            !Arc::ptr_eq(&table, &streams.of(&restored)),
            "a new entry under the same id gets a fresh table"
        );
        drop(first);
        streams.sweep();
        assert_eq!(streams.len(), 1, "the live entry's table stays");
        drop(restored);
        streams.sweep();
        assert!(streams.is_empty(), "an ended session's table is swept");
    }
}
