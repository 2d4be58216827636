//! What the HTTP workers share: the service, the Root actor and its registry, the
//! HTTP configuration and the readiness flag; and each worker's stateless session.
//! Both the MCP routes (`transport::http`) and the operations routes
//! (`transport::admin`) read it; neither imports the other for it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::prelude::*;
use slog::Logger;

use crate::config::HttpConfig;
use crate::runtime::root::{AdoptStateless, Registry, Root};
use crate::runtime::service::Service;
use crate::runtime::session::{Session, SessionKind};

/// Shared state of the HTTP workers.
#[derive(Clone)]
pub struct AppState {
    pub(crate) service: Arc<Service>,
    pub(crate) root: Addr<Root>,
    pub(crate) registry: Registry,
    pub(crate) http: Arc<HttpConfig>,
    /// False while starting and while draining: `/health/ready` answers 503.
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) log: Logger,
    /// Bytes request bodies being read may hold together, one permit a byte
    /// (`limits.max_body_bytes_total`).
    pub(crate) bodies: Arc<tokio::sync::Semaphore>,
    /// Bytes answers waiting on connections hold together
    /// (`limits.max_pending_answer_bytes`).
    pub(crate) answers: crate::transport::answers::AnswerBudget,
    /// The session era's SSE streams, per session.
    pub(crate) streams: Arc<crate::transport::sse::SessionStreams>,
}

impl AppState {
    /// State for `service`; starts the Root actor on the current arbiter.
    pub fn new(service: Arc<Service>, http: HttpConfig) -> AppState {
        let registry = Registry::default();
        let log = service.log.new(slog::o!("transport" => "http"));
        let root = Root::new(service.clone(), registry.clone()).start();
        let bodies = service
            .limits
            .max_body_bytes_total
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let answers =
            crate::transport::answers::AnswerBudget::new(service.limits.max_pending_answer_bytes);
        AppState {
            answers,
            bodies: Arc::new(tokio::sync::Semaphore::new(bodies)),
            streams: Arc::default(),
            service,
            root,
            registry,
            http: Arc::new(http),
            ready: Arc::new(AtomicBool::new(false)),
            log,
        }
    }

    /// A stateless session started on the current thread's arbiter (an HTTP
    /// worker's), adopted by Root so that shutdown drains it.
    pub(crate) fn worker_session(&self) -> WorkerSession {
        let session = Session::new(
            Arc::from("stateless"),
            self.service.clone(),
            SessionKind::Stateless,
            None,
        )
        .start();
        self.root.do_send(AdoptStateless(session.clone()));
        WorkerSession(session)
    }
}

/// The stateless session of one HTTP worker: it serves the 2026-07-28 requests that
/// worker reads, on its thread (no cross-thread hop per request).
#[derive(Clone)]
pub struct WorkerSession(pub(crate) Addr<Session>);
