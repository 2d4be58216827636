//! slog + slog-json on stderr: one JSON object a line with `ts`, `level`, `msg`,
//! `service`, `version`, and whatever keys the call site adds (`session`, `method`,
//! `tool`, `duration_ms`, `success`, ...).
//!
//! The caller formats its line; a dedicated thread writes it ([`logger`]): lines go
//! through a queue bounded in bytes (`limits.log_queue_bytes`) and the thread
//! writes whatever has gathered in one `write(2)`, so that a call line costs the serving thread no
//! system call, and a stderr that blocks (a stuck journald, a full pipe) never
//! stalls serving. A line that finds the queue full is dropped and counted
//! (`mcp_log_dropped_total`, [`dropped_lines`]). [`flush`] waits until everything
//! queued is written: the binary calls it before it exits.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use slog::{o, Drain, FnValue, Logger, PushFnValue};

use crate::config::LogLevel;

fn slog_level(level: LogLevel) -> slog::Level {
    match level {
        LogLevel::Trace => slog::Level::Trace,
        LogLevel::Debug => slog::Level::Debug,
        LogLevel::Info => slog::Level::Info,
        LogLevel::Warning => slog::Level::Warning,
        LogLevel::Error => slog::Level::Error,
        LogLevel::Critical => slog::Level::Critical,
    }
}

fn level_name(level: slog::Level) -> &'static str {
    match level {
        slog::Level::Trace => "trace",
        slog::Level::Debug => "debug",
        slog::Level::Info => "info",
        slog::Level::Warning => "warning",
        slog::Level::Error => "error",
        slog::Level::Critical => "critical",
    }
}

/// Default of `limits.log_queue_bytes`: bytes of lines waiting for the writer
/// thread (about 3,000 lines).
pub const LOG_QUEUE_BYTES: usize = crate::config::LOG_QUEUE_BYTES;
/// After a write, the writer thread waits this long before it takes more lines:
/// under load lines gather meanwhile (one write for many), and a writer that is
/// not waiting on the queue costs the loggers no wake-up.
const BATCH_PAUSE: Duration = Duration::from_millis(1);
/// A line is formatted into a buffer of this capacity (kept between lines).
const LINE_CAPACITY: usize = 512;

/// The root logger: JSON lines on stderr, filtered at `level`, written by a thread
/// of its own through a queue of [`LOG_QUEUE_BYTES`].
pub fn logger(level: LogLevel) -> Logger {
    logger_queued(level, LOG_QUEUE_BYTES)
}

/// [`logger`] with a queue of `bytes` (`limits.log_queue_bytes`). The process's
/// stderr writer is started by the first call; later calls share it.
pub fn logger_queued(level: LogLevel, bytes: usize) -> Logger {
    let queue = STDERR_QUEUE.get_or_init(|| LogQueue::start(std::io::stderr(), bytes));
    build(queue.writer(), level)
}

/// Lines the stderr writer dropped because its queue was full.
pub fn dropped_lines() -> u64 {
    STDERR_QUEUE
        .get()
        .map_or(0, |q| q.0.dropped.load(Ordering::Relaxed))
}

/// Wait (at most `timeout`) until every line queued so far is written to stderr.
pub fn flush(timeout: Duration) {
    if let Some(queue) = STDERR_QUEUE.get() {
        queue.flush(timeout);
    }
}

static STDERR_QUEUE: OnceLock<LogQueue> = OnceLock::new();

/// Lines waiting for the writer thread, appended whole, and how far it got.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines appended so far, and lines written so far (for `flush`).
    queued: u64,
    written: u64,
    /// The writer thread waits on `ready`: the next line wakes it.
    writer_idle: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
    written: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

/// A bounded queue of lines (in bytes) and the thread that writes them.
#[derive(Debug, Clone)]
struct LogQueue(Arc<Shared>);

impl LogQueue {
    fn start<W: Write + Send + 'static>(out: W, capacity: usize) -> LogQueue {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            written: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        });
        let theirs = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("emcee-log".into())
            .spawn(move || write_lines(&theirs, out));
        if let Err(e) = spawned {
            // No writer: lines pile up to the bound, then are dropped and counted.
            let _ = writeln!(std::io::stderr(), "emcee: cannot start the log writer: {e}");
        }
        LogQueue(shared)
    }

    fn writer(&self) -> QueueWriter {
        QueueWriter {
            line: Vec::with_capacity(LINE_CAPACITY),
            queue: self.0.clone(),
        }
    }

    fn flush(&self, timeout: Duration) {
        let Ok(pending) = self.0.pending.lock() else {
            return;
        };
        let target = pending.queued;
        if pending.writer_idle {
            self.0.ready.notify_one();
        }
        let _ = self
            .0
            .written
            .wait_timeout_while(pending, timeout, |p| p.written < target);
    }
}

/// The `Write` the JSON drain formats into: each record, on its flush, goes to the
/// queue whole, or is dropped (and counted) when the queue is full.
struct QueueWriter {
    line: Vec<u8>,
    queue: Arc<Shared>,
}

impl Write for QueueWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        if let Ok(mut pending) = self.queue.pending.lock() {
            if pending.bytes.len() + self.line.len() > self.queue.capacity {
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                pending.bytes.extend_from_slice(&self.line);
                pending.queued += 1;
                if pending.writer_idle {
                    pending.writer_idle = false;
                    self.queue.ready.notify_one();
                }
            }
        }
        self.line.clear();
        Ok(())
    }
}

/// The writer thread: wait for lines, take all that are queued, write them at once,
/// pause, repeat.
fn write_lines<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let queued = {
            let Ok(mut pending) = shared.pending.lock() else {
                return;
            };
            while pending.bytes.is_empty() {
                pending.writer_idle = true;
                pending = match shared.ready.wait(pending) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            pending.writer_idle = false;
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.queued
        };
        // A failing stderr (closed, full disk) loses these lines; nothing to tell.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if let Ok(mut pending) = shared.pending.lock() {
            pending.written = queued;
        }
        shared.written.notify_all();
        std::thread::sleep(BATCH_PAUSE);
    }
}

/// A root logger writing JSON lines to `out` synchronously, one `write` per line
/// (tests pass a buffer).
pub fn logger_to<W: Write + Send + 'static>(out: W, level: LogLevel) -> Logger {
    build(
        WholeLines {
            line: Vec::with_capacity(LINE_CAPACITY),
            out,
        },
        level,
    )
}

/// A root logger as [`logger_queued`] builds it, whose own writer thread writes
/// to `out` instead of stderr (benches pass a sink).
pub fn logger_queued_to<W: Write + Send + 'static>(
    out: W,
    level: LogLevel,
    bytes: usize,
) -> Logger {
    build(LogQueue::start(out, bytes).writer(), level)
}

/// The `Write` the JSON drain formats into for [`logger_to`]: a record's tokens
/// gather in `line`, and its flush writes the line with one `write_all` (one
/// `write(2)` per record instead of one per JSON token, without `LineWriter`'s
/// search for a newline in every token).
struct WholeLines<W> {
    line: Vec<u8>,
    out: W,
}

impl<W: Write> Write for WholeLines<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let written = self
            .out
            .write_all(&self.line)
            .and_then(|()| self.out.flush());
        self.line.clear();
        written
    }
}

fn build<W: Write + Send + 'static>(out: W, level: LogLevel) -> Logger {
    let json = slog_json::Json::new(out)
        .set_newlines(true)
        .set_flush(true)
        .add_key_value(o!(
            "ts" => PushFnValue(|_, ser| STAMP.with(|s| ser.emit(s.borrow_mut().now()))),
            "level" => FnValue(|r| level_name(r.level())),
            "msg" => PushFnValue(|r, ser| ser.emit(r.msg())),
        ))
        .build();
    let drain = Mutex::new(json).ignore_res();
    let drain = slog::LevelFilter::new(drain, slog_level(level)).ignore_res();
    Logger::root(
        drain,
        o!("service" => "emcee", "version" => env!("CARGO_PKG_VERSION")),
    )
}

thread_local! {
    static STAMP: RefCell<Stamp> = RefCell::new(Stamp::default());
}

/// A line's `ts`: RFC 3339 in UTC with the nanoseconds that are not zero
/// (`2026-12-07T06:40:00.1234Z`), as `time`'s `Rfc3339` writes it. The date and
/// time of day are formatted once a second (per thread); a line only writes its
/// fraction.
#[derive(Debug, Default)]
struct Stamp {
    /// The whole second `text` starts with, and the length of that prefix.
    second: Option<u64>,
    prefix: usize,
    text: String,
}

impl Stamp {
    fn now(&mut self) -> &str {
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.at(since.as_secs(), since.subsec_nanos())
    }

    fn at(&mut self, second: u64, nanos: u32) -> &str {
        if self.second != Some(second) {
            self.text.clear();
            let whole = i64::try_from(second)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let formatted = whole
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            // "…:SSZ": the prefix is everything before the `Z`.
            self.text
                .push_str(formatted.strip_suffix('Z').unwrap_or(&formatted));
            self.prefix = self.text.len();
            self.second = Some(second);
        }
        self.text.truncate(self.prefix);
        if nanos != 0 {
            // Nine digits, less the trailing zeros (no formatter: every line has one).
            let mut digits = [b'.'; 10];
            let mut value = nanos;
            for digit in digits[1..].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
            let end = digits.iter().rposition(|&d| d != b'0').unwrap_or(0) + 1;
            self.text
                .push_str(std::str::from_utf8(&digits[..end]).unwrap_or_default());
        }
        self.text.push('Z');
        &self.text
    }
}

/// Route panic messages to the JSON log instead of Rust's plain-text default, so that
/// every stderr line stays a JSON object. Panics are still contained by the caller.
pub fn install_panic_hook(log: Logger) {
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        slog::error!(log, "panic"; "panic" => message, "location" => location);
    }));
}

/// What tests log into: a `Write` that keeps every byte, shared by its clones.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_thread_writes_every_line_in_order_and_flush_waits_for_them() {
        let buf = Buf::default();
        let queue = LogQueue::start(buf.clone(), 1 << 20);
        let log = build(queue.writer(), LogLevel::Info);
        for i in 0..100 {
            slog::info!(log, "line"; "i" => i);
        }
        queue.flush(Duration::from_secs(5));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let seen: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["i"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert_eq!(queue.0.dropped.load(Ordering::Relaxed), 0);
    }

    /// A stderr that blocks until told to go on.
    struct Stuck(Arc<Mutex<std::sync::mpsc::Receiver<()>>>, Buf);
    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            self.1.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_stderr_drops_and_counts_lines_instead_of_blocking_the_logger() {
        let (go, wait) = std::sync::mpsc::channel();
        let buf = Buf::default();
        // Room for about four lines.
        let queue = LogQueue::start(Stuck(Arc::new(Mutex::new(wait)), buf.clone()), 600);
        let log = build(queue.writer(), LogLevel::Info);
        let started = std::time::Instant::now();
        for i in 0..50 {
            slog::info!(log, "line"; "i" => i);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "logging never waits"
        );
        let dropped = queue.0.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 40, "{dropped}");
        for _ in 0..100 {
            let _ = go.send(());
        }
        queue.flush(Duration::from_secs(5));
        let written = String::from_utf8(buf.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .count() as u64;
        assert_eq!(written + dropped, 50);
    }

    #[test]
    fn writes_one_json_object_per_line_with_the_standard_keys() {
        let buf = Buf::default();
        let log = logger_to(buf.clone(), LogLevel::Info);
        slog::info!(log, "hello"; "session" => "s1", "duration_ms" => 3);
        slog::debug!(log, "filtered out");
        drop(log);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["msg"], "hello");
        assert_eq!(v["level"], "info");
        assert_eq!(v["service"], "emcee");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["session"], "s1");
        assert_eq!(v["duration_ms"], 3);
        assert!(v["ts"].as_str().unwrap().contains('T'));
    }

    #[test]
    fn the_cached_stamp_writes_what_time_writes_for_every_fraction() {
        let mut stamp = Stamp::default();
        let seconds = [
            0u64,
            1_765_000_000,
            1_796_256_000,
            1_796_256_001,
            4_102_444_799,
        ];
        let fractions = [
            0u32,
            1,
            10,
            100_000_000,
            120_000_000,
            123_456_789,
            999_999_999,
            500,
        ];
        // Every pair twice and out of order, so that the cached second is reused
        // and replaced.
        for _ in 0..2 {
            for &second in seconds.iter().rev() {
                for &nanos in &fractions {
                    let expected = time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(second) * 1_000_000_000 + i128::from(nanos),
                    )
                    .unwrap()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                    assert_eq!(stamp.at(second, nanos), expected, "{second}.{nanos}");
                }
            }
        }
        // And now, as a line writes it.
        let now = stamp.now().to_owned();
        let year = time::OffsetDateTime::now_utc().year().to_string();
        assert!(now.starts_with(&year) && now.ends_with('Z'), "{now}");
    }
}
