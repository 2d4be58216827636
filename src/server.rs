//! [`Server`]: build an MCP server from tools, resources and prompts, then serve it
//! over stdio or Streamable HTTP with the same runtime as the `emcee` binary
//! (actors, logs, metrics, health, drain, flush).
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
use std::sync::Arc;

use slog::Logger;

use crate::config::{Limits, LogLevel, MrtrConfig, StorageConfig};
use crate::error::Error;
use crate::health::HealthChecks;
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

pub use crate::transport::http::HttpOptions;

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

    /// Add a resource template (`kv://{key}`).
    pub fn template(mut self, template: Template) -> Self {
        if let Err(e) = self.def.resources.add_template(template) {
            self.errors.push(e.to_string());
        }
        self
    }

    /// Add a prompt.
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
    /// name are an error, and so are limits out of range or that disagree
    /// ([`Limits::validate`], as the binary checks them at load).
    pub fn build(mut self) -> Result<Server, BuildError> {
        if let Err(e) = self.def.limits.validate() {
            self.errors.push(e.to_string());
        }
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
    /// [`crate::block_on`]).
    ///
    /// Storage that fails is retried; one that only a new process can reopen stops
    /// HTTP serving like a `shutdown`, with [`Error::Storage`] (exit code 3 in the
    /// binary, which the shipped unit restarts); stdio keeps serving.
    pub async fn serve(
        self,
        transport: Transport,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        // The uptime clock (`telemetry::now_ms`) starts now.
        crate::telemetry::now_ms();
        // Poll `shutdown` once before serving, so that the signal handlers it
        // installs on its first poll are in place before any request is answered: a
        // SIGTERM then is a graceful shutdown, never the default action (death).
        let mut shutdown = Box::pin(shutdown);
        let shutdown = if futures::poll!(shutdown.as_mut()).is_ready() {
            futures::future::Either::Left(std::future::ready(()))
        } else {
            futures::future::Either::Right(shutdown)
        };
        let stdio = matches!(transport, Transport::Stdio);
        let instance = match &transport {
            Transport::Http(h) => h.instance_id.clone(),
            Transport::Stdio => None,
        };
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
        let restarting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let result = match transport {
            Transport::Stdio => {
                slog::info!(log, "serving stdio"; "tools" => service.tools.len(),
                    "data_dir" => service.storage.dir().map(|d| d.display().to_string()));
                crate::transport::stdio::serve_stdio(service.clone(), shutdown).await
            }
            Transport::Http(options) => {
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
                crate::transport::http::serve(&options, service.clone(), stop).await
            }
        };
        if let Some(watch) = watch {
            watch.abort();
        }
        housekeeping.abort();
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

    /// Issue 18 item 7: limits that would crash the server (a semaphore past tokio's
    /// maximum) or refuse every large body are refused at build, naming the key.
    #[test]
    fn limits_out_of_range_are_refused_at_build() {
        let quiet = Logger::root(slog::Discard, slog::o!());
        let threads = Limits {
            blocking_threads: usize::MAX,
            ..Limits::default()
        };
        let budget = Limits {
            max_body_bytes_total: Limits::default().max_message_bytes - 1,
            ..Limits::default()
        };
        for (limits, key) in [
            (threads, "limits.blocking_threads"),
            (budget, "limits.max_body_bytes_total"),
        ] {
            let err = Server::builder()
                .logger(quiet.clone())
                .limits(limits)
                .build()
                .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
