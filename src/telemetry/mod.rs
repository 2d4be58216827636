//! Telemetry: the JSON log on stderr (slog) and the Prometheus metrics (`/metrics`).
//!
//! Architecture invariant: nothing here writes to stdout; stdout belongs to the stdio
//! transport's writer.

pub mod logging;
pub mod metrics;

pub use logging::{install_panic_hook, logger};
pub use metrics::Metrics;

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the process started (a monotonic clock for idle tracking).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
