//! Telemetry: the JSON log on stderr (slog) and the Prometheus metrics (`/metrics`).
//!
//! Architecture invariant: nothing here writes to stdout; stdout belongs to the stdio
//! transport's writer.

pub mod logging;
pub mod metrics;

pub use logging::{install_panic_hook, logger};
pub use metrics::Metrics;
