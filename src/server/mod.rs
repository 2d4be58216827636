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
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use slog::Logger;
use tokio_util::sync::CancellationToken;

mod live;

use live::restart;
pub use live::{Mounted, Running, ShutdownHandle};

use crate::config::{Limits, LogLevel, MrtrConfig, StorageConfig};
use crate::error::Error;
use crate::health::HealthChecks;
use crate::notify::Notifier;
use crate::prompts::{Prompt, PromptRegistry};
use crate::resources::{Resource, ResourceRegistry, Template};
use crate::runtime::service::{ServerInfo, Service};
use crate::storage::Storage;
use crate::tools::{Tool, ToolRegistry};

/// Where a server keeps its state.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum StorageOptions {
    /// In memory, gone when the process ends (tests, examples, stateless tools).
    #[default]
    Temporary,
    /// A sled database in this directory, with these settings; with
    /// `settings.url`, the state instances share (kv, session and task records)
    /// on that Redis instead, and the directory is not used.
    Dir(PathBuf, StorageConfig),
}

pub use crate::transport::http::{HttpOptions, MountOptions};

/// Which transport [`Server::serve`] serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
// Built once per server; boxing `HttpOptions` would only change the public shape.
#[allow(clippy::large_enum_variant)]
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
/// with one name) or limits that cannot be served with.
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
    /// one variable of a template, and limits out of range or that disagree
    /// ([`Limits::validate`], as the binary checks them at load).
    pub fn build(mut self) -> Result<Server, BuildError> {
        if let Err(e) = self.def.limits.validate() {
            self.errors.push(e.to_string());
        }
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
            #[cfg(feature = "redis")]
            StorageOptions::Dir(_, settings) if settings.url.is_some() => {
                let url = settings.url.as_deref().unwrap_or_default();
                (Storage::open_redis(url, settings)?, Some(settings.clone()))
            }
            #[cfg(not(feature = "redis"))]
            StorageOptions::Dir(_, settings) if settings.url.is_some() => {
                return Err(crate::storage::StorageError::Redis(
                    "this build has no Redis support (the `redis` cargo feature)".into(),
                )
                .into());
            }
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
        storage.set_session_ttl(def.limits.session_idle_ttl);
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
        service.mrtr = Arc::new(crate::mrtr::Mrtr::from_config(&def.mrtr)?);
        share_with_the_fleet(&service)?;
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
        // Clients may be spread over several instances: an instance id (a proxy's
        // affinity) or a non-loopback bind (reached from elsewhere, maybe behind a
        // load balancer).
        let shared_clients = match &transport {
            Transport::Http(h) => h.instance_id.is_some() || !h.bind.ip().is_loopback(),
            Transport::Stdio => false,
        };
        // The tokens file is read before anything opens: a bad one stops the start.
        let auth = match &transport {
            Transport::Http(h) => crate::auth::Auth::from_config(&h.http.auth)?,
            Transport::Stdio => None,
        };
        let mut live = self.go_live(stdio, instance).await?;
        warn_unshared_mrtr_key(&live.service, shared_clients);
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
                let started = match crate::transport::http::start(&options, service, auth) {
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
        let auth = crate::auth::Auth::from_config(&options.http.auth)?;
        let mut live = self.go_live(false, options.instance_id.clone()).await?;
        warn_unshared_mrtr_key(&live.service, options.instance_id.is_some());
        let routes = crate::transport::http::mount(&options, live.service.clone(), auth);
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
}

/// The start-up warning that 2026-07-28 `requestState`s are sealed with a key of
/// this process, given only where it matters: `shared_clients`, an HTTP server whose
/// clients may reach several instances (an `instance_id`, or a non-loopback bind).
/// Never for stdio (one client, one process) nor for a loopback server: there a
/// state lost to a restart only makes the client ask again, and a warning on every
/// spawn or test would be noise.
fn warn_unshared_mrtr_key(service: &crate::runtime::service::Service, shared_clients: bool) {
    if shared_clients && !service.mrtr.is_shared() {
        slog::warn!(service.log, "2026-07-28 requestState is sealed with a random key of this process: a retry that reaches another instance or a restart is refused; set mrtr.key_file to a file of 32+ random bytes shared by the instances";
            "key" => "mrtr.key_file", "env" => "EMCEE_MRTR_KEY_FILE");
    }
}

/// With storage shared by a fleet (Redis): relay this instance's changes to the
/// others, and deliver theirs to this instance's subscribers and `listen`
/// streams; sessions ended and client answers that reached another instance come
/// to the root (`Service::from_fleet`).
fn share_with_the_fleet(service: &crate::runtime::service::Service) -> Result<(), Error> {
    use crate::runtime::service::bus;
    if !service.storage.is_shared() {
        return Ok(());
    }
    service
        .storage
        .count_bus_drops(service.metrics.bus_dropped.clone());
    let notifier = service.notifier.clone();
    let waits = service.ended_waits.clone();
    let (to_root, from_fleet) = tokio::sync::mpsc::channel(bus::QUEUE);
    service
        .storage
        .listen_bus(Box::new(move |kind, data| match kind {
            bus::CHANGE => {
                if let Some(change) = crate::notify::Change::decode(data) {
                    notifier.deliver(change);
                }
            }
            bus::SESSION_ENDED => {
                if let Ok(id) = std::str::from_utf8(data) {
                    let _ = to_root.try_send(bus::FromFleet::Ended(id.to_owned()));
                }
            }
            bus::ENDED_SEEN => {
                if let Ok(id) = std::str::from_utf8(data) {
                    waits.owe(id, -1);
                }
            }
            bus::ANSWER => {
                let mut parts = data.splitn(2, |b| *b == b'\n');
                if let (Some(Ok(id)), Some(json)) =
                    (parts.next().map(std::str::from_utf8), parts.next())
                {
                    let answer = bus::FromFleet::Answer(id.to_owned(), json.to_vec());
                    let _ = to_root.try_send(answer);
                }
            }
            _ => {}
        }))?;
    if let Ok(mut slot) = service.from_fleet.lock() {
        *slot = Some(from_fleet);
    }
    let storage = service.storage.clone();
    service.notifier.relay_to(Box::new(move |change| {
        storage.publish(bus::CHANGE, &change.encode());
    }));
    Ok(())
}

#[cfg(test)]
mod tests;
