//! Telemetry: the JSON log on stderr (slog, written by a thread of its own), the
//! Prometheus metrics (`/metrics`) and the refusal log (counted and logged in one
//! place, floods summed up).
//!
//! Architecture invariant: nothing here writes to stdout; stdout belongs to the stdio
//! transport's writer.

pub mod logging;
pub(crate) mod metrics;
pub(crate) mod refusals;

pub use logging::{install_panic_hook, logger};
pub(crate) use metrics::Metrics;
pub(crate) use refusals::{Refusals, Refused};

/// Longest client-chosen text a log line carries (client names, request ids);
/// longer text is cut, so that a client cannot make log lines big.
pub const LOG_TEXT_MAX: usize = 64;

/// Longest error text a log line carries (an `isError` result's text, a JSON-RPC
/// error message, a refusal's reason): errors often quote what the client sent.
pub const LOG_ERROR_MAX: usize = 256;

/// A duration in milliseconds rounded to the microsecond (`duration_ms` of log lines
/// and of `/health` checks: 12.345, never 12.345000000000001).
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A log value shown with its `Display` when a line is written, not before: what
/// a logger keeps (`slog::o!` takes owned values) costs no string. A request id
/// (`Shown(req.id.clone())`) shows as a string, cut as `RequestId`'s `Display` cuts
/// it (to [`LOG_TEXT_MAX`] characters); a [`SessionTag`] as its tag.
#[derive(Debug, Clone)]
pub struct Shown<T>(pub T);

/// A value a [`Shown`] writes: the text its `Display` gives, made without a
/// formatter in the common case (every call line has a request id and most a
/// session tag).
pub trait LogText: std::fmt::Display {
    /// Hand `emit` the text `Display` would write.
    fn with_text(&self, emit: &mut dyn FnMut(&str) -> slog::Result) -> slog::Result;
}

impl LogText for crate::protocol::RequestId {
    fn with_text(&self, emit: &mut dyn FnMut(&str) -> slog::Result) -> slog::Result {
        use crate::protocol::RequestId;
        match self {
            RequestId::Number(n) => emit(itoa::Buffer::new().format(*n)),
            // Display cuts a long id; one of no more bytes than Display keeps
            // characters is shown as it is.
            RequestId::String(s) if s.len() <= crate::protocol::jsonrpc::ID_DISPLAY_MAX => emit(s),
            RequestId::String(_) => emit(&self.to_string()),
        }
    }
}

impl LogText for SessionTag {
    fn with_text(&self, emit: &mut dyn FnMut(&str) -> slog::Result) -> slog::Result {
        if self.id.contains('-') {
            // An instance's session (`[fleet]`): the prefix goes first.
            return emit(&self.to_string());
        }
        let mut hex = [0u8; 8];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[(self.hash >> (28 - 4 * i) & 0xf) as usize];
        }
        emit(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl<T: LogText> slog::Value for Shown<T> {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        self.0.with_text(&mut |text| serializer.emit_str(key, text))
    }
}

/// `text` cut to [`LOG_TEXT_MAX`] characters, marked with `…` when cut.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    clip_to(text, LOG_TEXT_MAX)
}

/// `text` cut to `max` characters, marked with `…` when cut.
pub fn clip_to(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..at])),
    }
}

/// A log field left out of the line when its value is `None` (slog writes `None`
/// as `null`): `slog::info!(log, "msg"; Maybe("error", error))`.
pub struct Maybe<V>(pub &'static str, pub Option<V>);

impl<V: slog::Value> slog::KV for Maybe<V> {
    fn serialize(
        &self,
        record: &slog::Record<'_>,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        match &self.1 {
            Some(value) => value.serialize(record, self.0, serializer),
            None => Ok(()),
        }
    }
}

/// How a session appears in logs: a session id is a bearer credential (whoever
/// holds it speaks in that session), so logs carry a short tag that cannot be turned
/// back into it: the instance prefix, if any, and 8 hex digits of a hash. The same id
/// always gives the same tag (also across restarts), so a session's lines stay
/// correlated.
pub fn session_tag(id: &str) -> String {
    SessionTag::of(id.into()).to_string()
}

/// [`session_tag`] that keeps the id (shared) and its hash, not a string of its
/// own: what a session keeps to tag its lines (as [`Shown`]).
#[derive(Clone)]
pub struct SessionTag {
    id: std::sync::Arc<str>,
    hash: u32,
}

impl SessionTag {
    /// The tag of session `id`.
    pub fn of(id: std::sync::Arc<str>) -> SessionTag {
        use std::hash::{Hash, Hasher};
        // Fixed keys: the tag must be the same in every process.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        SessionTag {
            hash: h.finish() as u32,
            id,
        }
    }
}

impl std::fmt::Display for SessionTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id.rsplit_once('-') {
            Some((instance, _)) => write!(f, "{}-{:08x}", clip(instance), self.hash),
            None => write!(f, "{:08x}", self.hash),
        }
    }
}

use std::sync::OnceLock;

use std::time::Instant;

/// Milliseconds since the process started (a monotonic clock for idle tracking).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_are_rounded_to_the_microsecond() {
        use std::time::Duration;
        assert_eq!(millis(Duration::from_nanos(12_345_678)), 12.346);
        assert_eq!(millis(Duration::from_nanos(1_234_499)), 1.234);
        assert_eq!(millis(Duration::from_secs(2)), 2000.0);
        assert_eq!(
            serde_json::to_string(&millis(Duration::from_nanos(1_000_100))).unwrap(),
            "1.0"
        );
    }

    #[test]
    fn session_tags_are_short_stable_and_keep_the_instance() {
        let id = "b2-0123456789abcdef0123456789abcdef";
        let tag = session_tag(id);
        assert_eq!(tag, session_tag(id));
        assert!(tag.starts_with("b2-") && tag.len() == 11, "{tag}");
        assert!(!tag.contains("0123456789abcdef"));
        assert_ne!(tag, session_tag("b2-0123456789abcdef0123456789abcdee"));
        assert_eq!(session_tag("abc").len(), 8);
        // The same tags as every earlier emcee wrote (lines stay correlated
        // across an upgrade), from the log value a session's logger holds too.
        assert_eq!(
            session_tag("a1-0123456789abcdef0123456789abcdef"),
            "a1-3eab6622"
        );
        let tag = SessionTag::of("0123456789abcdef0123456789abcdef".into());
        assert_eq!(tag.to_string(), "afcbcea0");
        // A log line shows what Display writes.
        for id in ["0123456789abcdef0123456789abcdef", "a1-x", "b", "Zk_.9"] {
            let tag = SessionTag::of(id.into());
            assert_eq!(logged(Shown(tag.clone())), tag.to_string(), "{id}");
        }
        assert_eq!(logged(Shown(tag)), "afcbcea0");
    }

    /// The `v` field of a line logged with `Shown` value `value`.
    fn logged<T: LogText + Clone + Send + Sync + 'static>(value: Shown<T>) -> String {
        use logging::Buf;
        let buf = Buf::default();
        let log = logging::logger_to(buf.clone(), crate::config::LogLevel::Info);
        slog::info!(log, "x"; "v" => value);
        let line = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        v["v"].as_str().unwrap().to_owned()
    }

    #[test]
    fn long_client_text_is_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(100);
        let c = clip(&long);
        assert_eq!(c.chars().count(), LOG_TEXT_MAX + 1);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn a_request_id_is_logged_as_the_clipped_text_of_its_display() {
        use crate::protocol::RequestId;
        use logging::Buf;
        let ids = [
            RequestId::Number(17),
            RequestId::Number(-3),
            RequestId::String("req \"1\"".into()),
            RequestId::String("é".repeat(100)),
            RequestId::Number(i64::MIN),
            RequestId::String("x".repeat(64)),
            RequestId::String("x".repeat(65)),
            RequestId::String("é".repeat(40)),
        ];
        for id in ids {
            let buf = Buf::default();
            let log = logging::logger_to(buf.clone(), crate::config::LogLevel::Info);
            slog::info!(log.new(slog::o!("request_id" => Shown(id.clone()))), "x");
            let line = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
            assert_eq!(v["request_id"], clip(&id.to_string()).as_ref(), "{line}");
        }
    }
}
