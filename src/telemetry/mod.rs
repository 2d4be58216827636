//! Telemetry: the process's own JSON log on stderr (metrics join in the operations issue).
//!
//! Architecture invariant: nothing here writes to stdout; stdout belongs to the stdio
//! transport's writer.

pub mod logging;
pub mod metrics;

pub use logging::{install_panic_hook, logger};
pub use metrics::Metrics;
