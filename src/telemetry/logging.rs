//! slog + slog-json on stderr: one JSON object a line with `ts`, `level`, `msg`,
//! `service`, `version`, and whatever keys the call site adds (`session`, `method`,
//! `tool`, `duration_ms`, `success`, ...).

use std::io::{LineWriter, Write};
use std::sync::Mutex;

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

/// The root logger: JSON lines on stderr, filtered at `level`.
pub fn logger(level: LogLevel) -> Logger {
    logger_to(std::io::stderr(), level)
}

/// A root logger writing JSON lines to `out` (tests pass a buffer).
pub fn logger_to<W: Write + Send + 'static>(out: W, level: LogLevel) -> Logger {
    // LineWriter: one write(2) per record instead of one per JSON token.
    let json = slog_json::Json::new(LineWriter::new(out))
        .set_newlines(true)
        .add_key_value(o!(
            "ts" => FnValue(|_| {
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
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
}
