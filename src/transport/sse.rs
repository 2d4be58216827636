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
//! the log with `Last-Event-ID`. Every event also holds its bytes from the answers'
//! process-wide budget (`limits.max_pending_answer_bytes`, `transport::answers`)
//! until it is written; an event that does not fit drops the connection the same
//! way. An event is framed without copying its JSON (head, JSON, tail).

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
use crate::transport::answers::{AnswerBudget, Held};

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

/// One SSE `message` event in three parts, `data` not copied: its head, `data`
/// (compact JSON: it has no raw newlines), its end.
pub fn event_parts(stream: u64, seq: u64, data: String) -> Vec<Bytes> {
    vec![
        Bytes::from(format!("id: {}\ndata: ", event_id(stream, seq))),
        Bytes::from(data),
        Bytes::from_static(b"\n\n"),
    ]
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
/// is always taken by an empty connection, however big), and so does one that does
/// not fit in the answers' budget.
#[derive(Clone)]
pub struct Out {
    tx: mpsc::UnboundedSender<Held>,
    queued: Arc<AtomicUsize>,
    max: usize,
    budget: AnswerBudget,
}

/// The receiving half of one SSE connection: what its response body reads.
pub struct OutRx {
    rx: mpsc::UnboundedReceiver<Held>,
    queued: Arc<AtomicUsize>,
}

/// Why a send to a connection failed.
#[derive(Debug, PartialEq, Eq)]
enum SendError {
    /// The client has not read `max` bytes.
    Behind,
    /// The connection is gone.
    Closed,
    /// Answers waiting on connections hold `limits.max_pending_answer_bytes`.
    Budget,
}

/// A connection that holds at most `max` unread bytes (plus one event), each event
/// within `budget` until it is written.
pub fn connection(max: usize, budget: AnswerBudget) -> (Out, OutRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Out {
            tx,
            queued: queued.clone(),
            max,
            budget,
        },
        OutRx { rx, queued },
    )
}

impl Out {
    /// Queue one event, given as its parts in order.
    fn send(&self, parts: Vec<Bytes>) -> Result<(), SendError> {
        let len: usize = parts.iter().map(Bytes::len).sum();
        let queued = self.queued.load(Ordering::Acquire);
        if queued > 0 && queued + len > self.max {
            return Err(SendError::Behind);
        }
        if self.tx.is_closed() {
            return Err(SendError::Closed);
        }
        let held = self.budget.hold(parts).map_err(|_| SendError::Budget)?;
        self.queued.fetch_add(len, Ordering::AcqRel);
        self.tx.send(held).map_err(|_| SendError::Closed)
    }
}

impl OutRx {
    /// The next event to write (it holds its bytes from the answers' budget until
    /// its last piece is taken); `None` once the pump let the connection go.
    pub async fn recv(&mut self) -> Option<Held> {
        let held = self.rx.recv().await?;
        self.queued.fetch_sub(held.len(), Ordering::AcqRel);
        Some(held)
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

    /// Send an event (its parts) to the connection; a connection whose client went
    /// away, is too far behind or finds the budget full is dropped (`Err(Behind)` or
    /// `Err(Budget)` then: the caller reports it).
    fn send(&self, bytes: Vec<Bytes>) -> Result<(), SendError> {
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
    /// Where this process numbers streams from when the fleet decided it
    /// (`Storage::stream_base`); else [`stream_epoch`].
    base: Option<u64>,
}

/// A session's stream table and the registry entry it belongs to.
type Owned = (Weak<SessionEntry>, Arc<StreamTable>);

impl SessionStreams {
    /// Tables whose streams are numbered from `base` (a number the fleet gave this
    /// process, unique among its instances), or from the start time (`None`).
    pub fn starting_at(base: Option<u64>) -> SessionStreams {
        SessionStreams {
            tables: Mutex::default(),
            base,
        }
    }

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
        let table = Arc::new(match self.base {
            Some(base) => StreamTable::starting_at(base),
            None => StreamTable::default(),
        });
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
        StreamTable::starting_at(stream_epoch())
    }
}

impl StreamTable {
    /// A table whose streams are numbered after `base`.
    fn starting_at(base: u64) -> StreamTable {
        StreamTable {
            next: AtomicU64::new(base),
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
                        self.sent(conn.send(vec![Bytes::from_static(KEEPALIVE)]));
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
                .append_event_async(&self.session, self.stream, seq, &frame.json)
                .await
            {
                slog::warn!(self.log, "event not logged for replay"; "error" => e.to_string());
            }
            let end = frame.kind == FrameKind::Response && self.kind == StreamKind::Request;
            self.sent(conn.send(event_parts(self.stream, seq, frame.json)));
            keepalive.reset();
            if end {
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

    /// Report a connection dropped for being too far behind, or because answers
    /// waiting on connections hold the whole budget.
    fn sent(&self, sent: Result<(), SendError>) {
        use crate::telemetry::metrics::reason;
        let (reason, limit) = match sent {
            Err(SendError::Behind) => (reason::SSE_SLOW, "limits.sse_buffer_bytes"),
            Err(SendError::Budget) => (reason::ANSWER_BUDGET, "limits.max_pending_answer_bytes"),
            Ok(()) | Err(SendError::Closed) => return,
        };
        let why = match sent {
            Err(SendError::Behind) => "the client does not read",
            _ => "answers waiting on connections hold all of the budget",
        };
        let why = format!(
            "SSE connection of session {} dropped: {why} ({limit}); it resumes with Last-Event-ID",
            crate::telemetry::session_tag(&self.session)
        );
        self.refusals
            .refuse(crate::telemetry::Refused::new(reason, &why));
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

    fn unbounded() -> AnswerBudget {
        AnswerBudget::new(usize::MAX)
    }

    fn x(n: usize) -> Vec<Bytes> {
        vec![Bytes::from(vec![b'x'; n])]
    }

    /// All the bytes of an event, as its body writes them.
    fn text(mut held: Held) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(piece) = held.next_piece() {
            all.extend_from_slice(&piece);
        }
        all
    }

    #[test]
    fn a_connection_holds_at_most_its_limit_plus_one_event() {
        let (out, mut rx) = connection(100, unbounded());
        assert_eq!(out.send(x(500)), Ok(()), "one event always fits");
        assert_eq!(out.send(x(1)), Err(SendError::Behind));
        futures::executor::block_on(async {
            assert_eq!(rx.recv().await.map(|b| b.len()), Some(500));
        });
        assert_eq!(out.send(x(60)), Ok(()));
        assert_eq!(out.send(x(40)), Ok(()), "up to the limit");
        assert_eq!(out.send(x(1)), Err(SendError::Behind));
        drop(rx);
        futures::executor::block_on(async {
            let (out, rx) = connection(100, unbounded());
            drop(rx);
            assert_eq!(out.send(x(1)), Err(SendError::Closed));
        });
    }

    /// Issue 18 item 1: an event holds its bytes from the answers' budget until its
    /// body has taken it; one that does not fit is refused (the pump then drops the
    /// connection and counts it as `answer_budget`).
    #[test]
    fn events_wait_within_the_answers_budget() {
        let budget = AnswerBudget::new(1000);
        let (a, mut a_rx) = connection(1 << 20, budget.clone());
        let (b, _b_rx) = connection(1 << 20, budget.clone());
        assert_eq!(a.send(x(600)), Ok(()));
        assert_eq!(b.send(x(400)), Ok(()), "up to the budget");
        assert_eq!(budget.available(), 0);
        assert_eq!(a.send(x(1)), Err(SendError::Budget));
        let taken = futures::executor::block_on(a_rx.recv()).expect("an event");
        assert_eq!(budget.available(), 0, "held while the body writes it");
        assert_eq!(text(taken).len(), 600);
        assert_eq!(budget.available(), 600, "given back once written");
        assert_eq!(a.send(x(600)), Ok(()));
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
            let (out, mut rx) = connection(300, unbounded());
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
            while let Ok(Some(held)) = tokio::time::timeout(second, rx.recv()).await {
                assert!(text(held).starts_with(format!("id: {stream}-").as_bytes()));
                got += 1;
            }
            assert!((1..10).contains(&got), "{got} events before the drop");
            assert!(metrics
                .render()
                .contains(r#"mcp_rejected_total{reason="sse_slow"} 1"#));
            // Resume: the pump says what it logged; the log has all of it.
            let (out, mut rx) = connection(300, unbounded());
            assert_eq!(streams.attach(stream, out).await, Ok(10));
            let logged = storage.events_after("s1", stream, 0).unwrap();
            assert_eq!(logged.len(), 10);
            assert_eq!(logged[9].1, note(10));
            assert!(sink.notification(note(11)));
            let live = text(rx.recv().await.unwrap());
            assert!(
                live.starts_with(format!("id: {stream}-11\n").as_bytes()),
                "{live:?}"
            );
        });
    }

    #[test]
    fn wire_format() {
        assert_eq!(
            event_parts(1, 2, "{}".into()).concat(),
            b"id: 1-2\ndata: {}\n\n"
        );
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
