//! The cost of the per-call log line (`log_calls`, on at the default `info` level):
//! the child logger a call gets (request id, method, tool, as
//! `Session::call_log` builds it) and the "call finished" line formatted by
//! slog-json and queued for the writer thread, as the serving thread does
//! (`src/telemetry/logging.rs`; the writer thread, on another core, writes to a
//! sink); `line_filtered` is the same line below the level; `ts_formatted` is
//! what a line's timestamp cost when it was formatted by `time` for every line
//! (the line now formats the date and time of day once a second).
//!
//! Run with: `cargo bench --bench logline`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use emcee::config::LogLevel;
use emcee::telemetry::logging::{logger_queued_to, logger_to, LOG_QUEUE_BYTES};

fn lines(c: &mut Criterion) {
    let mut group = c.benchmark_group("log");
    // A queue that never fills here (a dropped line would cost less than one
    // written); the server's default is LOG_QUEUE_BYTES.
    let root = logger_queued_to(std::io::sink(), LogLevel::Info, 256 * LOG_QUEUE_BYTES);
    let session = root.new(slog::o!("session" => "0b4c4c5a"));

    group.bench_function("child", |b| {
        b.iter(|| {
            black_box(session.new(slog::o!(
                "request_id" => black_box(17u64).to_string(),
                "method" => "tools/call",
                "tool" => black_box("echo").to_owned(),
            )))
        })
    });

    let call = session.new(slog::o!(
        "request_id" => "17".to_owned(),
        "method" => "tools/call",
        "tool" => "echo".to_owned(),
    ));
    let started = Instant::now();
    group.bench_function("line", |b| {
        b.iter(|| {
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            slog::info!(call, "call finished"; "outcome" => "ok", "success" => true,
                "duration_ms" => black_box(duration_ms));
        })
    });

    let quiet = logger_to(std::io::sink(), LogLevel::Warning).new(slog::o!("session" => "x"));
    group.bench_function("line_filtered", |b| {
        b.iter(|| {
            slog::info!(quiet, "call finished"; "outcome" => "ok", "success" => true,
                "duration_ms" => black_box(0.5f64));
        })
    });
    group.bench_function("ts_formatted", |b| {
        b.iter(|| {
            black_box(
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, lines);
criterion_main!(benches);
