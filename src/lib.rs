//! emcee: an embedded-friendly, actor-based runtime for MCP servers.
//!
//! # Layout
//! - [`protocol`]: JSON-RPC 2.0 and MCP wire types of both eras; no IO.
//! - [`config`]: flags, environment and TOML file → a validated [`config::Config`].
//! - [`telemetry`]: slog JSON logging on stderr, metrics, the refusal log.
//! - [`storage`]: sled trees; every acknowledged write is flushed first.
//! - [`tools`]: the typed tool API, the registry, built-in and fixture tools.
//! - [`resources`], [`prompts`]: resources and templates; prompts and completion.
//! - [`health`]: the checks behind `/health`.
//! - [`notify`]: change broadcasts (resource updates, list changes) to subscribed sessions.
//! - [`service`]: a server definition (tools, storage, limits), shared by all sessions.
//! - [`root`], [`session`], [`call`]: the actors: Root → Session → Call.
//! - [`gate`]: bounded in-flight counters (per session, per tool, total).
//! - [`sink`]: the outbound channel from actors to a transport.
//! - [`transport`]: stdio (and, next, Streamable HTTP).
//! - [`bench`]: `emcee bench`, a load generator for MCP servers (HTTP and stdio).
//!
//! The binary (`src/main.rs`) parses the configuration, starts logging and calls
//! [`run`]; tests and embedders call the same functions.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod bench;
pub mod call;
pub mod config;
pub mod gate;
pub mod health;
pub mod mrtr;
pub mod notify;
pub mod prompts;
pub mod protocol;
pub mod resources;
pub mod root;
pub mod service;
pub mod session;
pub mod sink;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod tools;
pub mod transport;

use std::future::Future;
use std::sync::Arc;

use slog::Logger;

use crate::config::{Config, Limits, Mode};
use crate::service::{ServerInfo, Service};
use crate::storage::{Recovery, Storage, StorageError};
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
    service.storage.set_kv_quota(
        tools::builtin::KV_NAMESPACE,
        service.limits.kv_max_bytes,
        "limits.kv_max_bytes",
    );
    Ok(service)
}

/// Open storage and assemble the service the binary serves: the built-in tools plus
/// the enabled fixture sets.
///
/// Over stdio a data directory held by another process is not fatal: the tools that
/// need no storage work, the others answer `isError` with the explanation, and the
/// directory is opened once it is free (an MCP client would otherwise only see
/// "connection closed"). `serve` exits 3 with the same explanation.
pub fn build_service(config: &Config, log: Logger) -> Result<Arc<Service>, Error> {
    let (dir, cache) = (&config.data_dir, config.storage.cache_capacity_bytes);
    let storage = match config.mode {
        Mode::Stdio => Storage::open_or_wait(dir, cache)?,
        _ => Storage::open(dir, cache)?,
    };
    let mut service = builtin_service(storage, config.limits.clone(), log)?;
    service.storage.observe(
        config.storage.flush_timeout,
        service.log.clone(),
        service.metrics.storage_errors.clone(),
    );
    service.instance = config.instance_id.clone();
    service.log_calls = config.log_calls;
    let (sealer, shared) = config.mrtr.sealer()?;
    if !shared {
        slog::warn!(service.log, "2026-07-28 requestState is sealed with a random key of this process: a retry that reaches another instance or a restart is refused; set mrtr.key_file to a file of 32+ random bytes shared by the instances";
            "key" => "mrtr.key_file", "env" => "EMCEE_MRTR_KEY_FILE");
    }
    service.mrtr = Arc::new(sealer);
    tools::command::register(
        &mut service.tools,
        &config.command_tools,
        config.limits.call_timeout,
    )?;
    if config.fixtures.faults {
        tools::faults::register(&mut service.tools, &mut service.health)?;
    }
    if config.fixtures.conformance {
        tools::conformance::register(
            &mut service.tools,
            &mut service.resources,
            &mut service.prompts,
        )?;
    }
    Ok(Arc::new(service))
}

/// Run the configured mode until `shutdown` resolves (or stdin closes, on stdio).
///
/// Must be called inside an actix `System`. Storage is flushed before returning.
pub async fn run(
    config: Config,
    log: Logger,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // The uptime clock (`telemetry::now_ms`) starts now.
    telemetry::now_ms();
    // Poll `shutdown` once before serving, so that the signal handlers it installs on
    // its first poll are in place before any request is answered: a SIGTERM then is
    // a graceful shutdown, never the default action (death).
    let mut shutdown = Box::pin(shutdown);
    let shutdown = if futures::poll!(shutdown.as_mut()).is_ready() {
        futures::future::Either::Left(std::future::ready(()))
    } else {
        futures::future::Either::Right(shutdown)
    };
    if matches!(config.mode, Mode::Config | Mode::Healthcheck) {
        return Ok(());
    }
    let service = build_service(&config, log.clone())?;
    // Tasks an earlier process left running are failed; nothing runs them now.
    if service.storage.is_open() {
        match service.tasks.recover().await {
            Ok(0) => {}
            Ok(n) => {
                slog::warn!(log, "tasks left running by an earlier process marked failed"; "count" => n)
            }
            Err(e) => slog::error!(log, "tasks not recovered"; "error" => e.message),
        }
    }
    // Summaries of suppressed refusal lines are written once their window is over;
    // tasks past their TTL are forgotten.
    let refusals = {
        let service = service.clone();
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                service.refusals.flush(false);
                ticks += 1;
                if ticks.is_multiple_of(30) {
                    service.tasks.expire();
                }
            }
        })
    };
    // Storage that fails is retried; one that only a new process can reopen stops
    // `serve` like a SIGTERM, with exit code 3: the supervisor (systemd
    // `Restart=on-failure`, compose `restart: unless-stopped`) starts a new one.
    // `stdio` keeps serving (its storage errors say to restart it).
    let (restart, restart_needed) = tokio::sync::oneshot::channel();
    let watch = {
        let service = service.clone();
        let retry = config.storage.retry;
        tokio::spawn(async move {
            watch_storage(service, retry).await;
            let _ = restart.send(());
        })
    };
    let restarting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let result = if config.mode == Mode::Stdio {
        slog::info!(log, "serving stdio"; "data_dir" => config.data_dir.display().to_string(),
            "tools" => service.tools.len());
        transport::stdio::serve_stdio(service.clone(), shutdown).await
    } else {
        let stop = {
            let restarting = restarting.clone();
            let log = log.clone();
            async move {
                tokio::pin!(shutdown);
                tokio::select! {
                    _ = &mut shutdown => {}
                    Ok(()) = restart_needed => {
                        restarting.store(true, std::sync::atomic::Ordering::SeqCst);
                        slog::warn!(log, "stopping so that a new process reopens storage (exit code 3)");
                    }
                }
            }
        };
        transport::http::serve(&config, service.clone(), stop).await
    };
    watch.abort();
    refusals.abort();
    service.refusals.flush(true);
    if restarting.load(std::sync::atomic::Ordering::SeqCst) {
        let why = service.storage.failure().unwrap_or_default();
        return Err(Error::Storage(StorageError::Unavailable(why)));
    }
    // Never opened (held by another process): nothing was written to flush.
    if service.storage.is_open() {
        service.storage.flush().await?;
        service.storage.record_clean_stop();
    }
    slog::info!(log, "stopped");
    Ok(result?)
}

/// While storage is failing, test every `every` whether it works again
/// ([`Storage::try_recover`]; success is logged there). Returns when the disk takes
/// writes again but only a new process can reopen the database (logged here).
/// Failed attempts are logged at debug only: the failure itself was logged once, and
/// `/health` shows it.
async fn watch_storage(service: Arc<Service>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match service.storage.try_recover().await {
            Recovery::Healthy | Recovery::Recovered => {}
            Recovery::Failing(why) => {
                slog::debug!(service.log, "storage still failing"; "error" => why)
            }
            Recovery::RestartNeeded => {
                slog::warn!(service.log, "storage: the disk takes writes again, but the database can only be reopened by a new process";
                    "data_dir" => service.storage.dir().map(|d| d.display().to_string()));
                return;
            }
        }
    }
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
