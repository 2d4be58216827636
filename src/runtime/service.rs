//! The service: everything a session needs to answer requests, shared read-only by
//! every session and call (`Arc<Service>`).

use std::sync::Arc;

use slog::Logger;

use crate::config::Limits;
use crate::gate::Gate;
use crate::health::HealthChecks;
pub use crate::notify::Notifier;
use crate::prompts::PromptRegistry;
use crate::protocol::era::{Envelope, Era};
use crate::protocol::mcp::{
    Implementation, ListChangedCapability, ResourcesCapability, ServerCapabilities,
};
use crate::resources::ResourceRegistry;
use crate::storage::Storage;
use crate::telemetry::Metrics;
use crate::tools::ToolRegistry;

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
    /// Seals the `requestState` of 2026-07-28 multi-round-trip requests.
    pub mrtr: Arc<crate::mrtr::Mrtr>,
    /// The tasks extension's tasks.
    pub tasks: Arc<crate::tasks::Tasks>,
    /// While storage fails, how often to test whether it works again (`None`: a
    /// temporary database, never retried).
    pub storage_retry: Option<std::time::Duration>,
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
    /// Calls in flight per principal (`limits.max_in_flight_per_principal`).
    pub in_flight_per_principal: Arc<crate::gate::KeyedGate>,
    /// `[auth] shared_kv`: every principal's calls see one kv namespace (set by
    /// the HTTP transport; else each principal's `CallContext::kv` is its own).
    pub shared_kv: std::sync::atomic::AtomicBool,
    /// Threads for blocking handler code (`limits.blocking_threads`).
    pub blocking: Arc<tokio::sync::Semaphore>,
    /// Prefix of minted session ids (`{instance}-…`), for proxy affinity.
    pub instance: Option<String>,
    /// One `info` line per finished call (`log_calls`). Default on.
    pub log_calls: bool,
    /// Refusals: counted in `mcp_rejected_total{reason}` and logged, floods summed up.
    pub refusals: Arc<crate::telemetry::Refusals>,
    /// What other instances of the fleet tell this one's root (sessions ended,
    /// answers to this instance's requests to a client); taken by the root when it
    /// starts.
    pub(crate) from_fleet: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<bus::FromFleet>>>,
    /// DELETEs waiting for the other instances to close the session.
    pub(crate) ended_waits: Arc<bus::EndedWaits>,
    /// The 2026-07-28 result envelope, made from `info` at first use.
    envelope: std::sync::OnceLock<Envelope>,
}

/// What instances of a fleet tell each other on the storage's bus.
pub(crate) mod bus {
    /// A change for subscribers and `listen` streams (`notify::Change::encode`).
    pub const CHANGE: u8 = b'c';
    /// A session ended (DELETE): its id.
    pub const SESSION_ENDED: u8 = b'e';
    /// An instance closed a session [`SESSION_ENDED`] named (or had none): its id.
    pub const ENDED_SEEN: u8 = b'k';
    /// Longest a DELETE waits for the other instances to close the session.
    pub const ENDED_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

    /// DELETEs waiting for the other instances to close their session: per
    /// session id, acknowledgements still owed (negative: some came before the
    /// count was known) and whom to tell when none are.
    #[derive(Debug, Default)]
    pub struct EndedWaits(std::sync::Mutex<std::collections::HashMap<String, Waiting>>);

    #[derive(Debug)]
    struct Waiting {
        owed: i64,
        done: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl EndedWaits {
        /// Start waiting for `id`'s acknowledgements (before publishing).
        pub fn expect(&self, id: &str) -> tokio::sync::oneshot::Receiver<()> {
            let (done, rx) = tokio::sync::oneshot::channel();
            if let Ok(mut w) = self.0.lock() {
                w.insert(
                    id.to_owned(),
                    Waiting {
                        owed: 0,
                        done: Some(done),
                    },
                );
            }
            rx
        }

        /// `n` more acknowledgements are owed for `id` (negative: received).
        pub fn owe(&self, id: &str, n: i64) {
            let Ok(mut w) = self.0.lock() else { return };
            let settled = match w.get_mut(id) {
                Some(waiting) => {
                    waiting.owed += n;
                    waiting.owed <= 0
                }
                None => false,
            };
            if settled {
                if let Some(mut waiting) = w.remove(id) {
                    if let Some(done) = waiting.done.take() {
                        let _ = done.send(());
                    }
                }
            }
        }

        /// Stop waiting for `id` (timed out).
        pub fn forget(&self, id: &str) {
            if let Ok(mut w) = self.0.lock() {
                w.remove(id);
            }
        }
    }
    /// A client's answer to a server's request (elicitation, sampling, roots)
    /// that reached another instance than the one that asked: the session id, a
    /// newline, the JSON-RPC response.
    pub const ANSWER: u8 = b'a';
    /// Messages waiting for the root at most; more are dropped (an ended session
    /// then lives on here until it idles out; an answer is lost and its call
    /// times out).
    pub const QUEUE: usize = 64;
    /// Longest answer relayed to another instance (a client's answer to an
    /// elicitation or sampling request is far smaller); a longer one is dropped.
    pub const ANSWER_MAX_BYTES: usize = 1024 * 1024;

    /// What the bus brings the root.
    #[derive(Debug)]
    pub enum FromFleet {
        /// This session ended elsewhere.
        Ended(String),
        /// This session's client answered, elsewhere, with this JSON-RPC response.
        Answer(String, Vec<u8>),
    }
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
        // The replay log's per-session share is bounded by the limits (a kv
        // namespace's bytes are bounded where the server is defined).
        storage.set_event_share(limits.event_log_session_bytes, limits.event_log_session_max);
        let metrics = Arc::new(Metrics::new());
        let refusals = Arc::new(crate::telemetry::Refusals::new(
            &metrics,
            &limits,
            log.clone(),
        ));
        Service {
            info,
            tools,
            resources: ResourceRegistry::default(),
            prompts: PromptRegistry::default(),
            notifier: Notifier::default(),
            tasks: Arc::new(
                crate::tasks::Tasks::new(storage.clone(), &limits, log.clone())
                    .with_refusals(refusals.clone()),
            ),
            storage,
            mrtr: Arc::new(crate::mrtr::Mrtr::random(
                crate::config::MrtrConfig::default().state_ttl,
                crate::config::MrtrConfig::default().max_state_bytes,
            )),
            storage_retry: None,
            from_fleet: std::sync::Mutex::new(None),
            ended_waits: Arc::default(),
            in_flight: Gate::new(limits.max_in_flight_total),
            in_flight_per_principal: crate::gate::KeyedGate::new(limits.in_flight_per_principal()),
            shared_kv: std::sync::atomic::AtomicBool::new(false),
            blocking: Arc::new(tokio::sync::Semaphore::new(limits.blocking_threads)),
            instance: None,
            log_calls: true,
            refusals,
            limits,
            log,
            metrics,
            health: HealthChecks::default(),
            envelope: std::sync::OnceLock::new(),
        }
    }

    /// What 2026-07-28 results carry: `resultType` and this server's identity.
    pub fn envelope(&self) -> &Envelope {
        self.envelope.get_or_init(|| {
            Envelope::new(&serde_json::to_value(self.info.implementation()).unwrap_or_default())
        })
    }

    /// The capabilities this server advertises in `era` (`initialize` or
    /// `server/discover`). Resource
    /// updates are served by `resources/subscribe` (session era) and by
    /// `subscriptions/listen` (2026-07-28), which also carries list changes.
    pub fn capabilities(&self, era: Era) -> ServerCapabilities {
        // List changes reach 2026-07-28 listen streams; session-era sessions are not
        // told (their lists are fixed for the process's life).
        let modern = era == Era::Modern;
        ServerCapabilities {
            tools: Some(ListChangedCapability {
                list_changed: modern,
            }),
            logging: Some(Default::default()),
            resources: (!self.resources.is_empty()).then_some(ResourcesCapability {
                subscribe: true,
                list_changed: modern,
            }),
            prompts: (!self.prompts.is_empty()).then_some(ListChangedCapability {
                list_changed: modern,
            }),
            completions: self.prompts.has_completions().then(Default::default),
            // The tasks extension is served to 2026-07-28 requests.
            extensions: modern.then(|| {
                let mut extensions = serde_json::Map::new();
                extensions.insert(crate::tasks::EXTENSION.to_owned(), serde_json::json!({}));
                extensions
            }),
        }
    }
}

/// A service for the runtime's own unit tests: an `echo` tool and a `kv://{key}`
/// template (subscribable; reads the `kv` namespace), on temporary storage.
#[cfg(test)]
pub(crate) fn for_tests() -> Arc<Service> {
    use crate::protocol::resource::ResourceContents;
    use crate::protocol::CallToolResult;
    use crate::resources::Template;
    use crate::tools::Tool;
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Echo {
        text: String,
    }
    let log = crate::telemetry::logging::logger_to(std::io::sink(), crate::config::LogLevel::Info);
    let server = crate::Server::builder()
        .logger(log)
        .tool(Tool::new(
            "echo",
            "Echoes text.",
            |_ctx, a: Echo| async move { Ok(CallToolResult::text(a.text)) },
        ))
        .template(Template::new(
            "kv://{key}",
            "kv",
            |ctx, uri, vars| async move {
                let key = vars.get("key").cloned().unwrap_or_default();
                let value = ctx.storage().kv("kv").get(&key)?.unwrap_or_default();
                Ok(vec![ResourceContents::text(
                    uri,
                    Some("text/plain"),
                    String::from_utf8_lossy(&value),
                )])
            },
        ))
        .build()
        .expect("a valid definition");
    let storage = Storage::temporary().expect("temporary storage");
    server.assemble(storage, None, None).expect("a service")
}
