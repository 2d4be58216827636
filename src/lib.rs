//! emcee: an embedded-friendly, actor-based runtime for MCP servers.
//!
//! # Layout
//! - [`protocol`]: JSON-RPC 2.0 and MCP wire types of both eras; no IO.
//! - [`config`]: the settings a server runs with ([`config::Limits`] and the others).
//! - [`telemetry`]: slog JSON logging on stderr (metrics and the refusal log are private).
//! - [`storage`]: sled trees; every acknowledged write is flushed first.
//! - [`handler`]: the handler's side of a call ([`handler::CallContext`]), apart from
//!   the actors; the one error type of tool, resource and prompt handlers.
//! - [`tools`]: the typed tool API and the registry (the binary ships its own tool sets).
//! - [`resources`], [`prompts`]: resources and templates; prompts and completion.
//! - [`health`]: the checks behind `/health`.
//! - [`notify`]: change broadcasts (resource updates, list changes) to subscribed sessions.
//! - [`server`]: [`Server`], the builder and `serve` an embedder uses; [`prelude`].
//! - `runtime` (private): the actors Root → Session → Call and the service they
//!   share; `gate` (bounded in-flight counters) and `sink` (the outbound channel from
//!   actors to a transport) are private too.
//! - `transport`, `mrtr`, `tasks` (private): stdio and Streamable HTTP; client input
//!   without sessions (2026-07-28 multi-round-trip requests); the tasks extension
//!   (a tool opts in with [`tools::TaskSupport`]).
//! - `fuzzing` (hidden): the fuzz targets' entry points (`fuzz/`), shared with the
//!   test that replays their corpus.
//!
//! The `emcee` binary (`src/bin/emcee/`: its command line, configuration file, load
//! generator and shipped tool sets) builds a [`Server`] with this library and serves
//! it; an embedder builds its own and serves it the same way. A complete server:
//!
//! ```no_run
//! use emcee::prelude::*;
//!
//! /// The arguments of `add`; its input schema is generated from this type.
//! #[derive(Deserialize, JsonSchema)]
//! struct Add {
//!     /// First addend.
//!     a: i64,
//!     /// Second addend.
//!     b: i64,
//! }
//!
//! fn main() -> Result<(), emcee::Error> {
//!     let server = Server::builder()
//!         .info("adder", "1.0.0")
//!         .tool(Tool::new("add", "Adds two integers.", |_ctx, x: Add| async move {
//!             let sum = x.a.checked_add(x.b).ok_or(ToolError::Failed("overflow".into()))?;
//!             Ok(CallToolResult::text(sum.to_string()))
//!         }))
//!         .build()?;
//!     // Or Transport::Http(HttpOptions::new("127.0.0.1:8080".parse().unwrap())).
//!     emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
//! }
//! ```
//!
//! A crate that derives `Deserialize`/`Serialize` and `JsonSchema` this way depends on
//! `serde` (with its `derive` feature) and `schemars` 1.x itself: [`prelude`]
//! re-exports the traits and their derive macros, but the code those macros expand to
//! names the `serde` and `schemars` crates, which must be the crate's own
//! dependencies:
//!
//! ```toml
//! [dependencies]
//! emcee = { version = "0.1", default-features = false }
//! serde = { version = "1", features = ["derive"] }
//! schemars = "1"
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod auth;
pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
pub mod handler;
pub mod health;
mod mrtr;
pub mod notify;
pub mod prelude;
pub mod prompts;
pub mod protocol;
pub mod resources;
mod runtime;
pub mod server;
mod sink;
pub mod storage;
mod tasks;
pub mod telemetry;
pub mod tools;
mod transport;

use std::future::Future;

pub use crate::server::{
    HttpOptions, MountOptions, Mounted, Running, Server, ServerBuilder, StorageOptions, Transport,
};

/// The actors and channels inside the runtime, for emcee's own benchmarks
/// (`benches/dispatch.rs`): not part of the API, no stability promise.
#[doc(hidden)]
pub mod internals {
    pub use crate::gate::{Gate, Permit};
    pub use crate::runtime::root::{CloseSession, OpenSession, Ping, Registry, Root, SessionEntry};
    pub use crate::runtime::service::Service;

    /// The service `server` serves, on `storage`: what a transport hands its
    /// sessions (the benchmarks drive sessions without one).
    pub fn service_on(
        server: crate::Server,
        storage: crate::storage::Storage,
    ) -> Result<std::sync::Arc<Service>, crate::Error> {
        server.assemble(storage, None, None)
    }
    pub use crate::runtime::session::{Inbound, SessionKind};
    pub use crate::sink::{FrameKind, FrameReceiver, Sink};
    pub use crate::transport::stdio::serve as serve_stdio_on;
}

pub use crate::error::Error;

/// Run `future` (a [`Server::serve`]) on a new actix `System` on this thread; then
/// write the log lines still queued. Meant for `main`: the runtime is not dropped
/// (dropping it would wait for its blocking threads, and over stdio on a terminal
/// one is parked in `read(2)` until the user types), so return from `main` soon after.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let system = actix::System::new();
    let output = system.block_on(future);
    telemetry::logging::flush(std::time::Duration::from_secs(2));
    std::mem::forget(system);
    output
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
