//! A server while it is served: what runs beside any transport (`Live`: the shared
//! service, housekeeping, the storage watcher, and the final flush; the drain is the
//! transport's), and the handles an embedder holds ([`Running`] from
//! [`Server::start`], [`Mounted`] from [`Server::mount`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Server;
use crate::error::Error;
use crate::runtime::service::Service;
use crate::storage::{Recovery, StorageError};

impl Server {
    /// Open storage, recover tasks, start housekeeping and the storage watcher:
    /// what runs beside any transport.
    pub(super) async fn go_live(
        self,
        stdio: bool,
        instance: Option<String>,
    ) -> Result<Live, Error> {
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
        // over; tasks past their TTL are forgotten. With shared storage, the
        // leases of the tasks this process runs are renewed (and their records
        // polled for what other instances wrote) on a timer of their own.
        let housekeeping = {
            let service = service.clone();
            actix_rt::spawn(async move {
                let every = service.tasks.heartbeat_every();
                let leases = async {
                    let Some(every) = every else {
                        return futures::future::pending().await;
                    };
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        service.tasks.heartbeat().await;
                    }
                };
                let sweeps = async {
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
                };
                futures::future::join(leases, sweeps).await;
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
pub(super) async fn restart(needed: Option<tokio::sync::oneshot::Receiver<()>>) -> Option<()> {
    match needed {
        Some(needed) => needed.await.ok(),
        None => None,
    }
}

/// What runs beside a transport while a server is served: the shared service, the
/// housekeeping tick and the storage watcher.
pub(super) struct Live {
    pub(super) service: Arc<Service>,
    pub(super) housekeeping: actix_rt::task::JoinHandle<()>,
    pub(super) watch: Option<tokio::task::JoinHandle<()>>,
    /// Resolves when the watcher found that only a new process can reopen storage.
    pub(super) restart_needed: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Live {
    /// After the transport stopped (with `result`): stop the housekeeping and the
    /// watcher, write the last refusal summaries, flush storage (not when
    /// `restarting`: it failed, and that is the error) and log "stopped".
    pub(super) async fn finish(
        self,
        restarting: bool,
        result: std::io::Result<()>,
    ) -> Result<(), Error> {
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
    pub(super) local_addr: Option<SocketAddr>,
    pub(super) admin_addr: Option<SocketAddr>,
    pub(super) stop: CancellationToken,
    pub(super) task: actix_rt::task::JoinHandle<Result<(), Error>>,
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
    pub(super) routes: crate::transport::http::MountedRoutes,
    pub(super) live: Live,
    pub(super) restarting: Arc<AtomicBool>,
    pub(super) watch_restart: actix_rt::task::JoinHandle<()>,
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
