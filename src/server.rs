//! [`Server`]: build an MCP server from tools, resources and prompts, then serve it
//! over stdio or Streamable HTTP with the same runtime as the `emcee` binary
//! (actors, logs, metrics, health, drain, flush).
//!
//! The doors an embedder has, all inside an actix `System`:
//! - [`Server::serve`]`(transport, shutdown)`: serve until `shutdown` resolves.
//! - [`Server::start`]`(transport)` → [`Running`]: the bound address (port 0
//!   resolved), [`Running::shutdown`] from anywhere, [`Running::stopped`] to await.
//!   [`HttpOptions::from_listener`] serves on a listener the caller bound.
//! - [`Server::mount`]`(options)` → [`Mounted`]: the MCP routes for the caller's own
//!   actix-web `App` ([`Mounted::configure`]), their connection hook, their drain.
//! - [`Server::notifier`]: tell clients about changes from outside any call.
//! - Completion: [`Prompt::complete_argument`], [`Template::complete_variable`].
//!
//! ```no_run
//! use emcee::prelude::*;
//!
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
//!             Ok(CallToolResult::text((x.a + x.b).to_string()))
//!         }))
//!         .build()?;
//!     emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
//! }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use slog::Logger;
use tokio_util::sync::CancellationToken;

use crate::config::{Limits, LogLevel, MrtrConfig, StorageConfig};
use crate::error::Error;
use crate::health::HealthChecks;
use crate::notify::Notifier;
use crate::prompts::{Prompt, PromptRegistry};
use crate::resources::{Resource, ResourceRegistry, Template};
use crate::runtime::service::{ServerInfo, Service};
use crate::storage::{Recovery, Storage, StorageError};
use crate::tools::{Tool, ToolRegistry};

/// Where a server keeps its state.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum StorageOptions {
    /// In memory, gone when the process ends (tests, examples, stateless tools).
    #[default]
    Temporary,
    /// A sled database in this directory, with these settings.
    Dir(PathBuf, StorageConfig),
}

pub use crate::transport::http::{HttpOptions, MountOptions};

/// Which transport [`Server::serve`] serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Transport {
    /// Newline-delimited JSON-RPC on stdin/stdout, until stdin closes.
    Stdio,
    /// Streamable HTTP.
    Http(HttpOptions),
}

/// What a server is made of, as the builder collects it and the server keeps it.
struct Definition {
    info: ServerInfo,
    tools: ToolRegistry,
    resources: ResourceRegistry,
    prompts: PromptRegistry,
    health: HealthChecks,
    limits: Limits,
    storage: StorageOptions,
    mrtr: MrtrConfig,
    log_calls: bool,
    /// kv namespaces bounded by `limits.kv_max_bytes`.
    kv_bounded: Vec<String>,
    /// Made with the definition, so that a handle taken before serving is the one
    /// the sessions listen to.
    notifier: Notifier,
}

/// What [`ServerBuilder::registries`] lends: the registries a server is built from.
#[non_exhaustive]
pub struct Registries<'a> {
    /// Tools.
    pub tools: &'a mut ToolRegistry,
    /// Resources and templates.
    pub resources: &'a mut ResourceRegistry,
    /// Prompts and their completers.
    pub prompts: &'a mut PromptRegistry,
    /// Dependency checks behind `/health`.
    pub health: &'a mut HealthChecks,
}

/// Builds a [`Server`]; see the [module docs](self).
pub struct ServerBuilder {
    def: Definition,
    log: Option<Logger>,
    errors: Vec<String>,
}

/// A server ready to serve: its definition, checked. Gates and pools are sized
/// from its limits when it is served.
pub struct Server {
    def: Definition,
    log: Logger,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.def.info.name)
            .field("tools", &self.def.tools.len())
            .finish_non_exhaustive()
    }
}

/// Definitions that cannot be served together (two tools, resources or prompts
/// with one name).
#[derive(Debug, thiserror::Error)]
#[error("invalid server definition: {}", .0.join("; "))]
pub struct BuildError(pub Vec<String>);

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Error {
        Error::Config(crate::config::ConfigError::Value {
            name: "server definition",
            message: e.0.join("; "),
        })
    }
}

impl Server {
    /// An empty definition: no tools, in-memory storage, default limits, logs at
    /// `info` on stderr.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            def: Definition {
                info: ServerInfo::default(),
                tools: ToolRegistry::new(),
                resources: ResourceRegistry::default(),
                prompts: PromptRegistry::default(),
                health: HealthChecks::default(),
                limits: Limits::default(),
                storage: StorageOptions::Temporary,
                mrtr: MrtrConfig::default(),
                log_calls: true,
                kv_bounded: Vec::new(),
                notifier: Notifier::default(),
            },
            log: None,
            errors: Vec::new(),
        }
    }
}

impl ServerBuilder {
    /// The name and version clients see (`serverInfo`).
    pub fn info(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.def.info.name = name.into();
        self.def.info.version = version.into();
        self
    }

    /// Usage hints for the model (`instructions`).
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.def.info.instructions = Some(text.into());
        self
    }

    /// Add a tool.
    pub fn tool(mut self, tool: Tool) -> Self {
        if let Err(e) = self.def.tools.add(tool) {
            self.errors.push(e.to_string());
        }
        self
    }

    /// Add a resource (a fixed URI).
    pub fn resource(mut self, resource: Resource) -> Self {
        if let Err(e) = self.def.resources.add(resource) {
            self.errors.push(e.to_string());
        }
        self
    }

    /// Add a resource template (`kv://{key}`, with the completers attached by
    /// [`Template::complete_variable`]).
    pub fn template(mut self, template: Template) -> Self {
        if let Err(e) = self.def.resources.add_template(template) {
            self.errors.push(e.to_string());
        }
        self
    }

    /// Add a prompt (with the completers attached by [`Prompt::complete_argument`]).
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        if let Err(e) = self.def.prompts.add(prompt) {
            self.errors.push(e.to_string());
        }
        self
    }

    /// A check `/health` runs (`Ok(())`: the dependency is usable; `Err(why)`: it
    /// is not, and `/health` answers 503 naming it).
    pub fn health_check<F, Fut>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + 'static,
    {
        self.def.health.add(name, check);
        self
    }

    /// The runtime limits (bounds on memory and time; see [`Limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.def.limits = limits;
        self
    }

    /// Where state is kept (default: in memory).
    pub fn storage(mut self, storage: StorageOptions) -> Self {
        self.def.storage = storage;
        self
    }

    /// How 2026-07-28 `requestState` is sealed (default: a random key per process).
    pub fn mrtr(mut self, mrtr: MrtrConfig) -> Self {
        self.def.mrtr = mrtr;
        self
    }

    /// The logger (default: JSON lines at `info` on stderr).
    pub fn logger(mut self, log: Logger) -> Self {
        self.log = Some(log);
        self
    }

    /// One `info` line per finished call (default on).
    pub fn log_calls(mut self, on: bool) -> Self {
        self.def.log_calls = on;
        self
    }

    /// The server's change notifier (see [`Server::notifier`]), for handlers that
    /// capture it while the server is being defined.
    pub fn notifier(&self) -> Notifier {
        self.def.notifier.clone()
    }

    /// Bound the bytes of the kv `namespace` (keys and values, exact under
    /// concurrency) by `limits.kv_max_bytes`: a write past it fails naming the limit.
    pub fn kv_bounded(mut self, namespace: impl Into<String>) -> Self {
        self.def.kv_bounded.push(namespace.into());
        self
    }

    /// The registries this builder fills, for code that registers a whole set at
    /// once (a `register(tools, resources, prompts, health)` function); each refuses
    /// a duplicate name as the builder's own methods do.
    pub fn registries(&mut self) -> Registries<'_> {
        Registries {
            tools: &mut self.def.tools,
            resources: &mut self.def.resources,
            prompts: &mut self.def.prompts,
            health: &mut self.def.health,
        }
    }

    /// The checked definition; two tools, resources, templates or prompts with one
    /// name are an error, and so are two completers for one argument of a prompt or
    /// one variable of a template.
    pub fn build(mut self) -> Result<Server, BuildError> {
        // Template completers join the prompt registry's table, which serves
        // `completion/complete`; one per reference and variable.
        let templates: Vec<_> = self.def.resources.templates().to_vec();
        for template in templates {
            for (variable, complete) in template.completers() {
                if let Err(e) = self.def.prompts.insert_completer(
                    template.reference(),
                    variable.clone(),
                    complete.clone(),
                ) {
                    self.errors.push(e.to_string());
                }
            }
        }
        self.errors
            .extend(self.def.prompts.refused().iter().map(ToString::to_string));
        if !self.errors.is_empty() {
            return Err(BuildError(self.errors));
        }
        let limits = &self.def.limits;
        let log = self.log.unwrap_or_else(|| {
            crate::telemetry::logging::logger_queued(LogLevel::Info, limits.log_queue_bytes)
        });
        Ok(Server { def: self.def, log })
    }
}

impl Server {
    /// The logger this server logs to.
    pub fn logger(&self) -> &Logger {
        &self.log
    }

    /// A handle (cheap to clone, usable from any thread) that tells this server's
    /// clients about changes that happen outside any call, exactly as
    /// [`crate::handler::CallContext::resource_updated`] and
    /// [`crate::handler::CallContext::list_changed`] do inside one: a file
    /// watcher, a database trigger, a timer. It reaches the sessions subscribed
    /// to the resource (session-era `resources/subscribe`) and the 2026-07-28
    /// `subscriptions/listen` streams that asked for the change. Taken before
    /// serving, it is the one the served sessions listen to; a change with
    /// nobody listening is dropped.
    ///
    /// ```no_run
    /// use emcee::prelude::*;
    ///
    /// fn main() -> Result<(), emcee::Error> {
    ///     let server = Server::builder().info("clock", "1.0.0").build()?;
    ///     let notifier = server.notifier();
    ///     std::thread::spawn(move || loop {
    ///         std::thread::sleep(std::time::Duration::from_secs(60));
    ///         notifier.resource_updated("clock://now");
    ///     });
    ///     emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
    /// }
    /// ```
    pub fn notifier(&self) -> Notifier {
        self.def.notifier.clone()
    }

    /// Open storage and assemble the shared service.
    fn service(self, stdio: bool, instance: Option<String>) -> Result<Arc<Service>, Error> {
        let (storage, retry) = match &self.def.storage {
            StorageOptions::Temporary => (Storage::temporary()?, None),
            // Over stdio a data directory held by another process is not fatal: the
            // tools that need no storage work, the others explain (an MCP client
            // would otherwise only see "connection closed"); HTTP exits 3.
            StorageOptions::Dir(dir, settings) => {
                let cache = settings.cache_capacity_bytes;
                let storage = if stdio {
                    Storage::open_or_wait(dir, cache)?
                } else {
                    Storage::open(dir, cache)?
                };
                (storage, Some(settings.clone()))
            }
        };
        self.assemble(storage, retry, instance)
    }

    /// The shared service on opened `storage` (`retry`: how a failing one is
    /// retried; `None` for a temporary one).
    pub(crate) fn assemble(
        self,
        storage: Storage,
        retry: Option<StorageConfig>,
        instance: Option<String>,
    ) -> Result<Arc<Service>, Error> {
        let def = self.def;
        for namespace in &def.kv_bounded {
            storage.set_kv_quota(namespace, def.limits.kv_max_bytes, "limits.kv_max_bytes");
        }
        let mut service = Service::new(def.info, def.tools, storage, def.limits, self.log);
        service.resources = def.resources;
        service.prompts = def.prompts;
        service.health = def.health;
        service.instance = instance;
        service.log_calls = def.log_calls;
        service.notifier = def.notifier;
        if let Some(settings) = &retry {
            service.storage.observe(
                settings.flush_timeout,
                service.log.clone(),
                service.metrics.storage_errors.clone(),
            );
        }
        service.storage_retry = retry.map(|s| s.retry);
        let (sealer, shared) = crate::mrtr::Mrtr::from_config(&def.mrtr)?;
        if !shared {
            slog::warn!(service.log, "2026-07-28 requestState is sealed with a random key of this process: a retry that reaches another instance or a restart is refused; set mrtr.key_file to a file of 32+ random bytes shared by the instances";
                "key" => "mrtr.key_file", "env" => "EMCEE_MRTR_KEY_FILE");
        }
        service.mrtr = Arc::new(sealer);
        Ok(Arc::new(service))
    }

    /// Serve until `shutdown` resolves (or, on stdio, stdin closes); then drain the
    /// calls, flush storage and return. Must run inside an actix `System` (see
    /// [`crate::block_on`]). The same as [`Server::start`], then
    /// [`Running::shutdown`] when `shutdown` resolves, then [`Running::stopped`].
    ///
    /// Storage that fails is retried; one that only a new process can reopen stops
    /// HTTP serving like a `shutdown`, with [`Error::Storage`] (exit code 3 in the
    /// binary, which the shipped unit restarts); stdio keeps serving.
    pub async fn serve(
        self,
        transport: Transport,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        // Poll `shutdown` once before serving, so that the signal handlers it
        // installs on its first poll are in place before any request is answered: a
        // SIGTERM then is a graceful shutdown, never the default action (death).
        let mut shutdown = Box::pin(shutdown);
        let requested = futures::poll!(shutdown.as_mut()).is_ready();
        let running = self.start(transport).await?;
        if requested {
            running.shutdown();
            return running.stopped().await;
        }
        let stop = running.shutdown_handle();
        let stopped = running.stopped();
        tokio::pin!(stopped);
        tokio::select! {
            result = &mut stopped => return result,
            _ = shutdown => stop.shutdown(),
        }
        stopped.await
    }

    /// Start serving `transport` and return at once with a handle: the bound
    /// address, a way to shut down, and the end to await. What [`Server::serve`]
    /// does, for a caller that needs the port it bound (`127.0.0.1:0`) or stops the
    /// server from elsewhere. Must run inside an actix `System`.
    ///
    /// Errors are those of opening storage and binding (before any request is
    /// served); the server's own end is reported by [`Running::stopped`]. Dropping
    /// the handle does not stop the server: it runs until its `System` stops.
    ///
    /// ```no_run
    /// use emcee::prelude::*;
    ///
    /// fn main() -> Result<(), emcee::Error> {
    ///     let server = Server::builder().info("demo", "1.0.0").build()?;
    ///     let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    ///     emcee::block_on(async move {
    ///         let running = server
    ///             .start(Transport::Http(HttpOptions::from_listener(listener)?))
    ///             .await?;
    ///         if let Some(addr) = running.local_addr() {
    ///             eprintln!("listening on http://{addr}/mcp");
    ///         }
    ///         emcee::shutdown_signal().await;
    ///         running.shutdown();
    ///         running.stopped().await
    ///     })
    /// }
    /// ```
    pub async fn start(self, transport: Transport) -> Result<Running, Error> {
        let stdio = matches!(transport, Transport::Stdio);
        let instance = match &transport {
            Transport::Http(h) => h.instance_id.clone(),
            Transport::Stdio => None,
        };
        let mut live = self.go_live(stdio, instance).await?;
        let stop = CancellationToken::new();
        let service = live.service.clone();
        let log = service.log.clone();
        match transport {
            Transport::Stdio => {
                slog::info!(log, "serving stdio"; "tools" => service.tools.len(),
                    "data_dir" => service.storage.dir().map(|d| d.display().to_string()));
                let stopping = stop.clone().cancelled_owned();
                let task = actix_rt::spawn(async move {
                    let result = crate::transport::stdio::serve_stdio(service, stopping).await;
                    live.finish(false, result).await
                });
                Ok(Running {
                    local_addr: None,
                    admin_addr: None,
                    stop,
                    task,
                })
            }
            Transport::Http(options) => {
                let started = match crate::transport::http::start(&options, service) {
                    Ok(started) => started,
                    Err(e) => {
                        let flushed = live.finish(false, Ok(())).await;
                        return Err(flushed.err().unwrap_or(Error::Io(e)));
                    }
                };
                let (local_addr, admin_addr) = (started.local_addr(), started.admin_addr());
                let restart_needed = live.restart_needed.take();
                let stopping = stop.clone();
                let task = actix_rt::spawn(async move {
                    let restarting = Arc::new(AtomicBool::new(false));
                    let until = {
                        let restarting = restarting.clone();
                        async move {
                            tokio::select! {
                                _ = stopping.cancelled() => {}
                                Some(()) = restart(restart_needed) => {
                                    restarting.store(true, Ordering::SeqCst);
                                    slog::warn!(log, "stopping so that a new process reopens storage (exit code 3)");
                                }
                            }
                        }
                    };
                    let result = started.run_until(until).await;
                    live.finish(restarting.load(Ordering::SeqCst), result).await
                });
                Ok(Running {
                    local_addr: Some(local_addr),
                    admin_addr,
                    stop,
                    task,
                })
            }
        }
    }

    /// Mount the MCP endpoint (and, unless `options` say otherwise, `/health*` and
    /// `/metrics`) into the application's own actix-web `App`, served by the
    /// application's `HttpServer`. Must run inside an actix `System` (the
    /// application's: `#[actix_web::main]` or [`crate::block_on`]).
    ///
    /// What the application owns, and emcee then does not do: binding and the
    /// `HttpServer` (its workers, `max_connections`, TLS); `TCP_NODELAY` and the
    /// per-address connection limit (pass [`Mounted::on_connect`] to
    /// `HttpServer::on_connect` to have both); signals (call
    /// [`Mounted::shutdown`] on the way out, *before* stopping the `HttpServer`, so
    /// that calls in flight are answered); systemd notifications.
    ///
    /// ```no_run
    /// use actix_web::{web, App, HttpServer};
    /// use emcee::prelude::*;
    ///
    /// fn main() -> Result<(), emcee::Error> {
    ///     let server = Server::builder().info("demo", "1.0.0").build()?;
    ///     emcee::block_on(async move {
    ///         let mcp = server.mount(MountOptions::default()).await?;
    ///         let routes = mcp.configure();
    ///         let http = HttpServer::new(move || {
    ///             App::new()
    ///                 .configure(routes.clone())
    ///                 .route("/hello", web::get().to(|| async { "hello" }))
    ///         })
    ///         .on_connect(mcp.on_connect())
    ///         .disable_signals()
    ///         .bind("127.0.0.1:8080")?
    ///         .run();
    ///         let handle = http.handle();
    ///         actix_web::rt::spawn(http);
    ///         emcee::shutdown_signal().await;
    ///         let drained = mcp.shutdown().await;
    ///         handle.stop(true).await;
    ///         drained
    ///     })
    /// }
    /// ```
    pub async fn mount(self, options: MountOptions) -> Result<Mounted, Error> {
        let mut live = self.go_live(false, options.instance_id.clone()).await?;
        let routes = crate::transport::http::mount(&options, live.service.clone());
        // Storage that only a new process can reopen: not ready from then on, and
        // `shutdown` says so; the application decides when to restart.
        let restarting = Arc::new(AtomicBool::new(false));
        let restart_needed = live.restart_needed.take();
        let watch_restart = {
            let restarting = restarting.clone();
            let state_ready = routes.not_ready_handle();
            let log = live.service.log.clone();
            actix_rt::spawn(async move {
                if restart(restart_needed).await.is_some() {
                    restarting.store(true, Ordering::SeqCst);
                    state_ready();
                    slog::warn!(
                        log,
                        "storage can only be reopened by a new process: /health/ready answers 503"
                    );
                }
            })
        };
        Ok(Mounted {
            routes,
            live,
            restarting,
            watch_restart,
        })
    }

    /// Open storage, recover tasks, start housekeeping and the storage watcher:
    /// what runs beside any transport.
    async fn go_live(self, stdio: bool, instance: Option<String>) -> Result<Live, Error> {
        // The uptime clock (`telemetry::now_ms`) starts now.
        crate::telemetry::now_ms();
        let log = self.log.clone();
        let service = self.service(stdio, instance)?;
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
        // Summaries of suppressed refusal lines are written once their window is
        // over; tasks past their TTL are forgotten.
        let housekeeping = {
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
        let (restart, restart_needed) = tokio::sync::oneshot::channel();
        let watch = service.storage_retry.map(|retry| {
            let service = service.clone();
            tokio::spawn(async move {
                watch_storage(service, retry).await;
                let _ = restart.send(());
            })
        });
        Ok(Live {
            service,
            housekeeping,
            watch,
            restart_needed: Some(restart_needed),
        })
    }
}

/// Resolves with `Some(())` when the storage watcher found that only a new process
/// can reopen storage; never when there is no watcher (or it was stopped).
async fn restart(needed: Option<tokio::sync::oneshot::Receiver<()>>) -> Option<()> {
    match needed {
        Some(needed) => needed.await.ok(),
        None => None,
    }
}

/// What runs beside a transport while a server is served: the shared service, the
/// housekeeping tick and the storage watcher.
struct Live {
    service: Arc<Service>,
    housekeeping: actix_rt::task::JoinHandle<()>,
    watch: Option<tokio::task::JoinHandle<()>>,
    /// Resolves when the watcher found that only a new process can reopen storage.
    restart_needed: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Live {
    /// After the transport stopped (with `result`): stop the housekeeping and the
    /// watcher, write the last refusal summaries, flush storage (not when
    /// `restarting`: it failed, and that is the error) and log "stopped".
    async fn finish(self, restarting: bool, result: std::io::Result<()>) -> Result<(), Error> {
        let service = self.service;
        if let Some(watch) = self.watch {
            watch.abort();
        }
        self.housekeeping.abort();
        service.refusals.flush(true);
        if restarting {
            let why = service.storage.failure().unwrap_or_default();
            return Err(Error::Storage(StorageError::Unavailable(why)));
        }
        // Never opened (held by another process): nothing was written to flush.
        if service.storage.is_open() {
            service.storage.flush().await?;
            service.storage.record_clean_stop();
        }
        slog::info!(service.log, "stopped");
        Ok(result?)
    }
}

/// A server started by [`Server::start`]: where it listens, how to stop it, and its
/// end to await.
#[derive(Debug)]
pub struct Running {
    local_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    stop: CancellationToken,
    task: actix_rt::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    /// The address the MCP endpoint listens on, with the real port when port 0 was
    /// asked for; `None` over stdio.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The address `/health` and `/metrics` answer on: `admin_bind`'s (port 0
    /// resolved) when set, else [`Running::local_addr`]; `None` over stdio.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Begin the graceful stop a [`Server::serve`] `shutdown` begins: not ready,
    /// sessions drained within `limits.shutdown_grace`, the listener closed,
    /// storage flushed. Returns at once; await [`Running::stopped`] for the end.
    /// A second call does nothing.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// A handle that can call [`Running::shutdown`] from elsewhere (another task, a
    /// signal handler) while [`Running::stopped`] is awaited.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// Resolves when the server has stopped: after [`Running::shutdown`] (or, over
    /// stdio, when stdin closes), the drain and the storage flush; with
    /// [`Error::Storage`] when storage failed for good, [`Error::Io`] when the
    /// transport did.
    pub async fn stopped(self) -> Result<(), Error> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Io(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Stops a [`Running`] server from anywhere (cheap to clone).
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// The same as [`Running::shutdown`].
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// MCP mounted into an application's actix-web `App` ([`Server::mount`]): the
/// routes to add on every worker, the connection hook, and the shutdown.
pub struct Mounted {
    routes: crate::transport::http::MountedRoutes,
    live: Live,
    restarting: Arc<AtomicBool>,
    watch_restart: actix_rt::task::JoinHandle<()>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").finish_non_exhaustive()
    }
}

impl Mounted {
    /// The routes, for `App::configure` inside the `HttpServer::new` factory
    /// (clone it into the factory; each worker that calls it gets its own
    /// stateless session, so 2026-07-28 requests are served on the worker's
    /// thread): the MCP endpoint at `MountOptions::path`, and `/health`,
    /// `/health/live`, `/health/ready`, `/metrics` unless
    /// `MountOptions::ops_routes` is off.
    pub fn configure(
        &self,
    ) -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static {
        self.routes.configure()
    }

    /// A hook for `HttpServer::on_connect`: `TCP_NODELAY` on every connection
    /// (without it, SSE answers written in several parts wait on delayed ACKs),
    /// `http.max_connections_per_ip` (a connection past it has its `/mcp` requests
    /// refused with 429 and is closed), and the `mcp_active_connections` gauge.
    /// Without it none of the three is done.
    pub fn on_connect(
        &self,
    ) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
        self.routes.on_connect()
    }

    /// Stop serving MCP: not ready (`/health/ready` 503); new sessions refused
    /// (503 with `Retry-After`); every session drained (calls in flight get
    /// `limits.shutdown_grace`, new calls -32000); housekeeping stopped; storage
    /// flushed. The routes stay in the application's `App` and keep refusing; stop
    /// the `HttpServer` after this returns. [`Error::Storage`] when storage failed
    /// so that only a new process can reopen it.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.routes.drain().await;
        self.watch_restart.abort();
        let restarting = self.restarting.load(Ordering::SeqCst);
        self.live.finish(restarting, Ok(())).await
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Change;
    use crate::protocol::CallToolResult;

    fn echo(name: &str) -> Tool {
        Tool::raw(
            name,
            "d",
            serde_json::json!({"type": "object"}),
            |_ctx, _a| async { Ok(CallToolResult::text("x")) },
        )
    }

    #[test]
    fn duplicate_names_of_any_kind_are_refused_at_build() {
        let quiet = Logger::root(slog::Discard, slog::o!());
        let ok = Server::builder()
            .logger(quiet.clone())
            .tool(echo("a"))
            .tool(echo("b"))
            .build();
        assert!(ok.is_ok());
        let err = Server::builder()
            .logger(quiet.clone())
            .tool(echo("a"))
            .tool(echo("a"))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("`a`"), "{err}");
        let prompt = || {
            Prompt::new("p", "d", |_ctx, _args| async {
                Ok(crate::protocol::prompt::GetPromptResult {
                    description: None,
                    messages: Vec::new(),
                })
            })
        };
        let err = Server::builder()
            .logger(quiet)
            .prompt(prompt())
            .prompt(prompt())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("prompt named `p`"), "{err}");
    }

    fn quiet() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn empty_prompt(name: &str) -> Prompt {
        Prompt::new(name, "d", |_ctx, _args| async {
            Ok(crate::protocol::prompt::GetPromptResult {
                description: None,
                messages: Vec::new(),
            })
        })
    }

    fn empty_template(uri_template: &str) -> Template {
        Template::new(uri_template, "t", |_ctx, _uri, _vars| async { Ok(vec![]) })
    }

    fn one(value: &'static str) -> impl Fn(&str, &HashMap<String, String>) -> Vec<String> {
        move |_, _| vec![value.to_owned()]
    }

    /// A small server: a tool, a resource, and a prompt whose argument completes.
    fn server() -> Server {
        Server::builder()
            .info("doors", "1.0.0")
            .logger(quiet())
            .tool(echo("echo"))
            .resource(Resource::new("test://r", "r", |_ctx, uri| async move {
                Ok(vec![crate::protocol::resource::ResourceContents::text(
                    uri, None, "x",
                )])
            }))
            .prompt(empty_prompt("p").complete_argument("a", one("apple")))
            .build()
            .expect("a valid server")
    }

    use std::collections::HashMap;
    use std::io::BufRead;
    use std::time::Duration;

    use serde_json::{json, Value};

    const MODERN: &str = "2026-07-28";

    /// Run blocking client code off the System's thread (which runs the actors).
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f)
            .await
            .expect("client code ran")
    }

    fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(5))
            .timeout_write(Duration::from_secs(5))
            .max_idle_connections(0)
            .build()
    }

    /// An answer: status, `Mcp-Session-Id`, the response with its body unread.
    fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Option<String>, ureq::Response) {
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("no answer: {e}"),
        };
        (r.status(), r.header("mcp-session-id").map(str::to_owned), r)
    }

    /// `POST url` with a session-era body (and session).
    fn post_session(
        url: &str,
        session: Option<&str>,
        body: &Value,
    ) -> (u16, Option<String>, ureq::Response) {
        let mut req = agent()
            .post(url)
            .set("Content-Type", "application/json")
            .set("Accept", "application/json, text/event-stream");
        if let Some(id) = session {
            req = req
                .set("Mcp-Session-Id", id)
                .set("MCP-Protocol-Version", "2025-11-25");
        }
        answer(req.send_string(&body.to_string()))
    }

    /// `POST url` with a 2026-07-28 request (its `_meta` and headers added).
    fn post_modern(url: &str, id: u64, method: &str, params: Value) -> (u16, ureq::Response) {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        });
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, _, r) = answer(
            agent()
                .post(url)
                .set("Content-Type", "application/json")
                .set("Accept", "application/json, text/event-stream")
                .set("MCP-Protocol-Version", MODERN)
                .set("Mcp-Method", method)
                .send_string(&body.to_string()),
        );
        (status, r)
    }

    fn json_of(r: ureq::Response) -> Value {
        let text = r.into_string().expect("a body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn initialize_body() -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}})
    }

    /// The next SSE message with data on `lines`, parsed; `None` at the end or when
    /// none came within 10 s (keep-alive comments do not count).
    fn next_message(lines: &mut impl BufRead) -> Option<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut data = String::new();
        loop {
            if std::time::Instant::now() > deadline {
                return None;
            }
            let mut line = String::new();
            if lines.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            } else if line.is_empty() && !data.is_empty() {
                return serde_json::from_str(&data).ok();
            }
        }
    }

    async fn stopped_within(running: Running) -> Result<(), Error> {
        tokio::time::timeout(Duration::from_secs(15), running.stopped())
            .await
            .expect("stopped within 15 s")
    }

    #[test]
    fn serves_on_a_listener_it_was_handed_and_stops_through_its_handle() {
        actix_rt::System::new().block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let options = HttpOptions::from_listener(listener).unwrap();
            assert_eq!(options.bind, addr);
            let running = server().start(Transport::Http(options)).await.unwrap();
            assert_eq!(running.local_addr(), Some(addr));
            assert_eq!(
                running.admin_addr(),
                Some(addr),
                "/health on the MCP listener"
            );
            let url = format!("http://{addr}/mcp");
            let (status, session, init) = {
                let url = url.clone();
                blocking(move || post_session(&url, None, &initialize_body())).await
            };
            assert_eq!(status, 200);
            assert!(session.is_some(), "a session era session");
            let init = blocking(move || json_of(init)).await;
            assert_eq!(init["result"]["serverInfo"]["name"], "doors", "{init}");
            let discover = {
                let url = url.clone();
                blocking(move || {
                    let (status, r) = post_modern(&url, 2, "server/discover", json!({}));
                    (status, json_of(r))
                })
                .await
            };
            assert_eq!(discover.0, 200, "{}", discover.1);
            assert_eq!(discover.1["result"]["resultType"], "complete");
            // Stopped from elsewhere: a clone of the handle.
            let stop = running.shutdown_handle();
            actix_rt::spawn(async move { stop.shutdown() });
            stopped_within(running).await.expect("a clean stop");
            // Nothing listens there any more.
            assert!(
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
                "the listener is closed"
            );
        });
    }

    #[test]
    fn start_reports_the_ports_it_bound_for_port_zero() {
        actix_rt::System::new().block_on(async {
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let mut options = HttpOptions::new(any);
            options.admin_bind = Some(any);
            let running = server().start(Transport::Http(options)).await.unwrap();
            let (mcp, admin) = (running.local_addr().unwrap(), running.admin_addr().unwrap());
            assert!(
                mcp.port() != 0 && admin.port() != 0 && mcp != admin,
                "{mcp} {admin}"
            );
            let health = blocking(move || {
                answer(agent().get(&format!("http://{admin}/health/ready")).call()).0
            })
            .await;
            assert_eq!(health, 200);
            running.shutdown();
            running.shutdown();
            stopped_within(running).await.expect("a clean stop");
            // Binding an address in use fails at start, not later.
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let err = server()
                .start(Transport::Http(HttpOptions::new(
                    taken.local_addr().unwrap(),
                )))
                .await
                .expect_err("in use");
            assert!(matches!(err, Error::Io(_)), "{err}");
        });
    }

    #[test]
    fn mounts_into_an_application_app_beside_its_own_routes() {
        use actix_web::{web, App, HttpServer};
        actix_rt::System::new().block_on(async {
            let mcp = server()
                .mount(MountOptions::default().path("/api/mcp"))
                .await
                .unwrap();
            let routes = mcp.configure();
            let http = HttpServer::new(move || {
                App::new()
                    .configure(routes.clone())
                    .route("/hello", web::get().to(|| async { "hello" }))
            })
            .workers(2)
            .on_connect(mcp.on_connect())
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
            let addr = http.addrs()[0];
            let http = http.run();
            let handle = http.handle();
            actix_rt::spawn(http);
            let get = move |path: &str| {
                let (status, _, r) = answer(agent().get(&format!("http://{addr}{path}")).call());
                (status, r.into_string().unwrap_or_default())
            };
            let url = format!("http://{addr}/api/mcp");
            let before = {
                let url = url.clone();
                blocking(move || {
                    let hello = get("/hello");
                    let ready = get("/health/ready").0;
                    let elsewhere = get("/mcp").0;
                    // Enough 2026-07-28 requests that both workers' stateless
                    // sessions serve some.
                    let discovered: Vec<Value> = (0..4)
                        .map(|id| json_of(post_modern(&url, id, "server/discover", json!({})).1))
                        .collect();
                    let (status, session, _) = post_session(&url, None, &initialize_body());
                    (hello, ready, elsewhere, discovered, status, session)
                })
                .await
            };
            let (hello, ready, elsewhere, discovered, status, session) = before;
            assert_eq!(hello, (200, "hello".to_owned()));
            assert_eq!(ready, 200);
            assert_eq!(elsewhere, 404, "MCP is at the path it was mounted at");
            for d in discovered {
                let info = &d["result"]["_meta"]["io.modelcontextprotocol/serverInfo"];
                assert_eq!(info["name"], "doors", "{d}");
            }
            assert_eq!(status, 200);
            let session = session.expect("a session");
            // A session-era call on the session.
            let call = {
                let url = url.clone();
                blocking(move || {
                    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {}}});
                    let (status, _, r) = post_session(&url, Some(&session), &body);
                    (status, r.into_string().unwrap_or_default())
                })
                .await
            };
            assert_eq!(call.0, 200, "{}", call.1);
            assert!(call.1.contains("\"text\":\"x\""), "{}", call.1);

            tokio::time::timeout(Duration::from_secs(15), mcp.shutdown())
                .await
                .expect("drained within 15 s")
                .expect("a clean shutdown");
            // Drained: not ready and no new sessions; the application still serves.
            let after = blocking(move || {
                let (status, _, _) = post_session(&url, None, &initialize_body());
                (get("/hello"), get("/health/ready").0, status)
            })
            .await;
            assert_eq!(after, ((200, "hello".to_owned()), 503, 503));
            handle.stop(true).await;
        });
    }

    #[test]
    fn a_notifier_taken_before_serving_reaches_listeners() {
        actix_rt::System::new().block_on(async {
            let server = server();
            let notifier = server.notifier();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let options = HttpOptions::from_listener(listener).unwrap();
            let running = server.start(Transport::Http(options)).await.unwrap();
            let url = format!("http://{}/mcp", running.local_addr().unwrap());
            let told = blocking(move || {
                let filter =
                    json!({"resourceSubscriptions": ["test://r"], "toolsListChanged": true});
                let (status, r) = post_modern(
                    &url,
                    7,
                    "subscriptions/listen",
                    json!({"notifications": filter}),
                );
                assert_eq!(status, 200);
                let mut lines = std::io::BufReader::new(r.into_reader());
                let ack = next_message(&mut lines).expect("the acknowledgement");
                // From outside any call, once the listen is acknowledged.
                notifier.resource_updated("test://not-listened-to");
                notifier.resource_updated("test://r");
                notifier.list_changed(Change::ToolsList);
                let first = next_message(&mut lines).expect("an update");
                let second = next_message(&mut lines).expect("a list change");
                (ack, first, second)
            })
            .await;
            assert_eq!(
                told.0["method"], "notifications/subscriptions/acknowledged",
                "{}",
                told.0
            );
            assert_eq!(
                told.1["method"], "notifications/resources/updated",
                "{}",
                told.1
            );
            assert_eq!(told.1["params"]["uri"], "test://r", "{}", told.1);
            assert_eq!(
                told.2["method"], "notifications/tools/list_changed",
                "{}",
                told.2
            );
            running.shutdown();
            stopped_within(running).await.expect("a clean stop");
        });
    }

    #[test]
    fn completions_are_advertised_only_with_a_completer() {
        use crate::protocol::era::Era;
        let completions = |server: Server| {
            let service = server.service(false, None).expect("a service");
            (
                service
                    .capabilities(Era::Legacy(crate::protocol::ProtocolVersion::V2025_11_25))
                    .completions
                    .is_some(),
                service.capabilities(Era::Modern).completions.is_some(),
            )
        };
        let plain = Server::builder()
            .logger(quiet())
            .prompt(empty_prompt("p").argument("a", "A", false))
            .template(empty_template("t://{x}"))
            .build()
            .unwrap();
        assert_eq!(completions(plain), (false, false));
        assert_eq!(completions(server()), (true, true));
        // A template's completer alone is enough, and it serves `ref/resource`.
        let template = Server::builder()
            .logger(quiet())
            .template(empty_template("t://{x}").complete_variable("x", one("xylophone")))
            .build()
            .unwrap();
        let service = template.service(false, None).unwrap();
        assert!(service
            .capabilities(Era::Legacy(crate::protocol::ProtocolVersion::V2025_11_25))
            .completions
            .is_some());
        let reference = crate::prompts::CompletionRef::Resource {
            uri: "t://{x}".into(),
        };
        let (values, total, more) = service
            .prompts
            .complete(&reference, "x", "", &HashMap::new());
        assert_eq!(
            (values, total, more),
            (vec!["xylophone".to_owned()], 1, false)
        );
    }

    #[test]
    fn a_second_completer_for_one_argument_is_refused_at_build() {
        let refused = |builder: ServerBuilder| {
            let err = builder.logger(quiet()).build().expect_err("refused");
            assert!(err.to_string().contains("a completer for"), "{err}");
            err.to_string()
        };
        let e = refused(
            Server::builder().prompt(
                empty_prompt("p")
                    .complete_argument("a", one("1"))
                    .complete_argument("a", one("2")),
            ),
        );
        assert!(e.contains("ref/prompt p, argument a"), "{e}");
        let e = refused(
            Server::builder().template(
                empty_template("t://{x}")
                    .complete_variable("x", one("1"))
                    .complete_variable("x", one("2")),
            ),
        );
        assert!(e.contains("ref/resource t://{x}, variable x"), "{e}");
        // Registered by reference (as the binary's fixture sets do) beside one
        // attached to the template.
        let mut builder =
            Server::builder().template(empty_template("t://{x}").complete_variable("x", one("1")));
        builder.registries().prompts.completer(
            crate::prompts::CompletionRef::Resource {
                uri: "t://{x}".into(),
            },
            "x",
            one("2"),
        );
        refused(builder);
        let mut builder =
            Server::builder().prompt(empty_prompt("p").complete_argument("a", one("1")));
        builder.registries().prompts.completer(
            crate::prompts::CompletionRef::Prompt { name: "p".into() },
            "a",
            one("2"),
        );
        refused(builder);
        // Different arguments, prompts and templates are no duplicates.
        assert!(Server::builder()
            .logger(quiet())
            .prompt(
                empty_prompt("p")
                    .complete_argument("a", one("1"))
                    .complete_argument("b", one("2"))
            )
            .prompt(empty_prompt("q").complete_argument("a", one("3")))
            .template(empty_template("t://{x}").complete_variable("x", one("4")))
            .template(empty_template("u://{x}").complete_variable("x", one("5")))
            .build()
            .is_ok());
    }
}
