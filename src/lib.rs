//! emcee: an embedded-friendly, actor-based runtime for MCP servers.
//!
//! # Layout
//! - [`protocol`]: JSON-RPC 2.0 and MCP wire types of both eras; no IO.
//! - [`config`]: flags, environment and TOML file → a validated [`config::Config`].
//! - [`telemetry`]: slog JSON logging on stderr, metrics, the refusal log.
//! - [`storage`]: sled trees; every acknowledged write is flushed first.
//! - [`handler`]: the handler's side of a call ([`handler::CallContext`]), apart from
//!   the actors; the one error type of tool, resource and prompt handlers.
//! - [`tools`]: the typed tool API, the registry, built-in and fixture tools.
//! - [`resources`], [`prompts`]: resources and templates; prompts and completion.
//! - [`health`]: the checks behind `/health`.
//! - [`notify`]: change broadcasts (resource updates, list changes) to subscribed sessions.
//! - [`mrtr`], [`tasks`]: client input without sessions, and the tasks extension.
//! - [`server`]: [`Server`], the builder and `serve` an embedder uses; [`prelude`].
//! - `runtime` (private): the actors Root → Session → Call and the service they
//!   share; `gate` (bounded in-flight counters) and `sink` (the outbound channel from
//!   actors to a transport) are private too.
//! - [`transport`]: stdio and Streamable HTTP.
//!
//! The binary (`src/main.rs`) parses the configuration, starts logging and calls
//! [`run`], which serves [`binary_server`]; an embedder builds its own [`Server`]
//! and serves it the same way. A complete server:
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

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod config;
mod gate;
pub mod handler;
pub mod health;
pub mod mrtr;
pub mod notify;
pub mod prelude;
pub mod prompts;
pub mod protocol;
pub mod resources;
mod runtime;
pub mod server;
mod sink;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod tools;
pub mod transport;

use std::future::Future;

use slog::Logger;

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
    pub use crate::runtime::session::{Inbound, SessionKind};
    pub use crate::sink::{FrameKind, FrameReceiver, Sink};
}

use crate::config::{Config, Limits, Mode};
use crate::runtime::service::{ServerInfo, Service};
use crate::storage::{Storage, StorageError};
use crate::tools::{DuplicateName, ToolRegistry};

/// A failure that stops the process; `main` maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration (exit 2).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Storage could not be opened or flushed (exit 3).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Two tools, resources, templates or prompts share a name (exit 2).
    #[error(transparent)]
    DuplicateName(#[from] DuplicateName),
    /// A transport failed (exit 1).
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::DuplicateName(_) => 2,
            Error::Storage(_) => 3,
            Error::Io(_) => 1,
        }
    }
}

/// A service on `storage` with the built-in tools and the `kv://` resources: what
/// the binary serves without fixtures (tests and benches build it in process).
pub fn builtin_service(storage: Storage, limits: Limits, log: Logger) -> Result<Service, Error> {
    let mut service = Service::new(
        ServerInfo::default(),
        ToolRegistry::new(),
        storage,
        limits,
        log,
    );
    tools::builtin::register(&mut service.tools, &service.limits)?;
    tools::builtin::register_resources(&mut service.resources)?;
    Ok(service)
}

/// The server the binary serves: the built-in tools and `kv://` resources, the
/// command tools of the configuration, and the enabled fixture sets, with the
/// configuration's limits and storage.
pub fn binary_server(config: &Config, log: Logger) -> Result<Server, Error> {
    let mut builder = Server::builder()
        .limits(config.limits.clone())
        .storage(StorageOptions::Dir(
            config.data_dir.clone(),
            config.storage.clone(),
        ))
        .mrtr(config.mrtr.clone())
        .logger(log)
        .log_calls(config.log_calls);
    {
        let (tools, resources, prompts, health) = builder.registries();
        tools::builtin::register(tools, &config.limits)?;
        tools::builtin::register_resources(resources)?;
        tools::command::register(tools, &config.command_tools, config.limits.call_timeout)?;
        if config.fixtures.faults {
            tools::faults::register(tools, health)?;
        }
        if config.fixtures.conformance {
            tools::conformance::register(tools, resources, prompts)?;
        }
    }
    Ok(builder.build()?)
}

/// Run the configured mode until `shutdown` resolves (or stdin closes, on stdio):
/// [`binary_server`] served over the configured transport.
///
/// Must be called inside an actix `System`. Storage is flushed before returning.
pub async fn run(
    config: Config,
    log: Logger,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let transport = match config.mode {
        Mode::Stdio => Transport::Stdio,
        Mode::Serve => Transport::Http(HttpOptions {
            bind: config.bind,
            admin_bind: config.admin_bind,
            instance_id: config.instance_id.clone(),
            http: config.http.clone(),
            listener: None,
        }),
        Mode::Config | Mode::Healthcheck => return Ok(()),
    };
    binary_server(&config, log)?
        .serve(transport, shutdown)
        .await
}

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
