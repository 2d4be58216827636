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
    /// True once the drain began: new requests get 503 + `Retry-After` from the
    /// transport whatever the shape of their answer.
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) log: Logger,
    /// Bytes request bodies being read may hold together, one permit a byte
    /// (`limits.max_body_bytes_total`).
    pub(crate) bodies: Arc<tokio::sync::Semaphore>,
    /// Bytes answers waiting on connections hold together
    /// (`limits.max_pending_answer_bytes`).
    pub(crate) answers: crate::transport::answers::AnswerBudget,
    /// The session era's SSE streams, per session.
    pub(crate) streams: Arc<crate::transport::sse::SessionStreams>,
    /// Open MCP connections (`http.max_connections`).
    pub(crate) connections: Arc<crate::transport::connections::McpConnections>,
    /// Open `subscriptions/listen` streams, in all and per client address.
    pub(crate) listens: Arc<ListenStreams>,
    /// Bearer tokens asked on `/mcp` (and on `/health`, `/metrics` per
    /// `[auth] ops`); `None`: no auth configured, anyone gets in.
    pub(crate) auth: Option<crate::auth::Auth>,
    /// The `[rate]` buckets; `None`: every rate off.
    pub(crate) rate: Option<Arc<crate::transport::rate::RateLimits>>,
}

/// Open listen streams: `limits.max_listen_streams` in all,
/// `limits.max_listen_streams_per_ip` per client address.
#[derive(Debug, Default)]
pub struct ListenStreams {
    open: std::sync::atomic::AtomicUsize,
    per_address: Arc<crate::transport::connections::PerAddress>,
}

/// One open listen stream's place, given back when dropped.
#[derive(Debug)]
pub struct ListenPlace {
    table: Arc<ListenStreams>,
    _address: Option<crate::transport::connections::AddressGuard>,
}

impl ListenStreams {
    /// A place for one more stream from `client`, within `total` in all and
    /// `per_ip` per address; `Err` names the limit that is reached.
    pub fn take(
        table: &Arc<ListenStreams>,
        client: Option<std::net::IpAddr>,
        total: usize,
        per_ip: usize,
    ) -> Result<ListenPlace, &'static str> {
        use std::sync::atomic::Ordering;
        let address = match client {
            Some(ip) => Some(
                crate::transport::connections::PerAddress::try_take(&table.per_address, ip, per_ip)
                    .ok_or("limits.max_listen_streams_per_ip")?,
            ),
            None => None,
        };
        table
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < total).then_some(n + 1)
            })
            .map_err(|_| "limits.max_listen_streams")?;
        Ok(ListenPlace {
            table: table.clone(),
            _address: address,
        })
    }
}

impl Drop for ListenPlace {
    fn drop(&mut self) {
        self.table
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
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
        let rate = crate::transport::rate::RateLimits::from_config(&http.rate).map(Arc::new);
        service
            .shared_kv
            .store(http.auth.shared_kv, std::sync::atomic::Ordering::Relaxed);
        AppState {
            rate,
            answers,
            bodies: Arc::new(tokio::sync::Semaphore::new(bodies)),
            streams: Arc::new(crate::transport::sse::SessionStreams::starting_at(
                service.storage.stream_base(),
            )),
            service,
            root,
            registry,
            http: Arc::new(http),
            ready: Arc::new(AtomicBool::new(false)),
            draining: Arc::new(AtomicBool::new(false)),
            log,
            connections: Arc::new(crate::transport::connections::McpConnections::new(None)),
            listens: Arc::default(),
            auth: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Listen streams stop at the total and at the per-address share, whichever
    /// comes first, and give their places back when dropped.
    #[test]
    fn listen_places_stop_at_the_total_and_the_share() {
        let table = Arc::new(ListenStreams::default());
        let a: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = ListenStreams::take(&table, Some(a), 3, 2).unwrap();
        let _a2 = ListenStreams::take(&table, Some(a), 3, 2).unwrap();
        assert_eq!(
            ListenStreams::take(&table, Some(a), 3, 2).unwrap_err(),
            "limits.max_listen_streams_per_ip"
        );
        let _b1 = ListenStreams::take(&table, Some(b), 3, 2).unwrap();
        assert_eq!(
            ListenStreams::take(&table, Some(b), 3, 2).unwrap_err(),
            "limits.max_listen_streams"
        );
        drop(a1);
        assert!(ListenStreams::take(&table, Some(b), 3, 2).is_ok());
        assert!(ListenStreams::take(&table, None, 3, 2).is_ok());
    }
}
