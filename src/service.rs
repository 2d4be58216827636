//! The service: everything a session needs to answer requests, shared read-only by
//! every session and call (`Arc<Service>`).

use std::sync::Arc;

use slog::Logger;
use tokio::sync::broadcast;

use crate::config::Limits;
use crate::gate::Gate;
use crate::health::HealthChecks;
use crate::prompts::PromptRegistry;
use crate::protocol::mcp::Implementation;
use crate::resources::ResourceRegistry;
use crate::storage::Storage;
use crate::telemetry::Metrics;
use crate::tools::ToolRegistry;

/// Resource-updated events queued per session before the oldest are skipped.
const UPDATE_QUEUE: usize = 256;

/// Broadcasts `notifications/resources/updated` to the sessions subscribed to a URI.
#[derive(Debug, Clone)]
pub struct Notifier(broadcast::Sender<Arc<str>>);

impl Default for Notifier {
    fn default() -> Self {
        Notifier(broadcast::channel(UPDATE_QUEUE).0)
    }
}

impl Notifier {
    /// Tell every session subscribed to `uri` that it changed.
    pub fn resource_updated(&self, uri: &str) {
        let _ = self.0.send(Arc::from(uri));
    }

    /// A receiver for one session.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.0.subscribe()
    }

    /// Sessions currently receiving updates (those with a subscription).
    pub fn receivers(&self) -> usize {
        self.0.receiver_count()
    }
}

/// Who the server says it is in `initialize`.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Programmatic name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Optional usage hints for the model.
    pub instructions: Option<String>,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            name: "emcee".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: None,
        }
    }
}

impl ServerInfo {
    pub(crate) fn implementation(&self) -> Implementation {
        Implementation {
            name: self.name.clone(),
            version: self.version.clone(),
            title: None,
        }
    }
}

/// A server definition: tools, resources, prompts, storage, limits, logger.
#[derive(Debug)]
pub struct Service {
    /// Server identity.
    pub info: ServerInfo,
    /// Registered tools.
    pub tools: ToolRegistry,
    /// Resources and templates.
    pub resources: ResourceRegistry,
    /// Prompts and completers.
    pub prompts: PromptRegistry,
    /// Resource update broadcasts.
    pub notifier: Notifier,
    /// The database.
    pub storage: Storage,
    /// Runtime limits.
    pub limits: Limits,
    /// Root logger of the process.
    pub log: Logger,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Dependency checks run by `/health`.
    pub health: HealthChecks,
    /// Calls in flight server-wide (`limits.max_in_flight_total`).
    pub in_flight: Arc<Gate>,
    /// Threads for blocking handler code (`limits.blocking_threads`).
    pub blocking: Arc<tokio::sync::Semaphore>,
    /// Prefix of minted session ids (`{instance}-…`), for proxy affinity.
    pub instance: Option<String>,
}

impl Service {
    /// A service with the given tools and nothing else registered.
    pub fn new(
        info: ServerInfo,
        tools: ToolRegistry,
        storage: Storage,
        limits: crate::config::Limits,
        log: Logger,
    ) -> Service {
        Service {
            info,
            tools,
            resources: ResourceRegistry::default(),
            prompts: PromptRegistry::default(),
            notifier: Notifier::default(),
            storage,
            in_flight: Gate::new(limits.max_in_flight_total),
            blocking: Arc::new(tokio::sync::Semaphore::new(limits.blocking_threads)),
            instance: None,
            limits,
            log,
            metrics: Arc::new(Metrics::new()),
            health: HealthChecks::default(),
        }
    }
}
