//! Operations endpoints: `/health`, `/health/live`, `/health/ready`, `/metrics`, and
//! systemd notifications (`READY=1`, `STOPPING=1`, watchdog pings).
//!
//! Served on the MCP listener, or on their own with `--admin-bind`. `/health`,
//! `/health/ready` and `/metrics` tell a reader tool names, counters and dependency
//! errors, so a DNS-rebinding page must not read them: their `Host` and `Origin` are
//! checked like `/mcp`'s, except that a `Host` that is an IP literal is accepted (a
//! probe or scraper by address; see `http::check_ops_host_and_origin`), and a
//! refusal is a 403, counted and logged like `/mcp`'s. `/health/live` says only
//! that the process answers: any `Host` gets it, so a liveness probe never needs the
//! allowlist.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::sync::Arc;

use actix::prelude::*;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus::IntGauge;
use slog::Logger;

use crate::health::{self, HealthReport};
use crate::protocol::RpcError;
use crate::runtime::root::{Ping, Root};
use crate::telemetry::metrics::reason;
use crate::telemetry::Refused;
use crate::transport::exchange::rpc_error;
use crate::transport::http::check_ops_host_and_origin;
use crate::transport::state::AppState;

/// The client a per-address limit counts: an IPv4 address (an IPv4-mapped IPv6
/// address is its IPv4 address); an IPv6 address's /64 (a host usually holds a
/// whole /64, so counting single addresses would let it walk around the limit).
/// Behind a proxy every connection has the proxy's address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Open connections (or listen streams) per client ([`client_key`]):
/// `http.max_connections_per_ip`, `limits.max_listen_streams_per_ip`.
#[derive(Debug, Default)]
pub struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One connection of an address, counted while it lives; `over` when the address
/// already held its limit as it connected (its requests are refused with 429).
#[derive(Debug)]
pub struct AddressGuard {
    table: Arc<PerAddress>,
    ip: IpAddr,
    /// The address was over its limit with this connection.
    pub over: bool,
}

impl PerAddress {
    /// Count a new connection from `ip`; `limit` decides whether it is one too many.
    pub fn connected(table: &Arc<PerAddress>, ip: IpAddr, limit: usize) -> AddressGuard {
        let ip = client_key(ip);
        let n = table.open.lock().map_or(0, |mut m| {
            let n = m.entry(ip).or_insert(0);
            *n += 1;
            *n
        });
        AddressGuard {
            table: table.clone(),
            ip,
            over: n > limit,
        }
    }

    /// Count one more for `ip` only if it holds fewer than `limit`; `None` when it
    /// holds `limit` already.
    pub fn try_take(table: &Arc<PerAddress>, ip: IpAddr, limit: usize) -> Option<AddressGuard> {
        let ip = client_key(ip);
        let mut m = table.open.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                m.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(AddressGuard {
            table: table.clone(),
            ip,
            over: false,
        })
    }
}

/// Open MCP connections (`http.max_connections`): a connection counts from its
/// first `/mcp` request until it closes, so connections of the operations routes
/// never take an MCP connection's place.
#[derive(Debug)]
pub struct McpConnections {
    open: AtomicUsize,
    /// `http.max_connections`; `None` when the embedder's `HttpServer` sets the bound
    /// (a mounted server).
    pub max: Option<usize>,
}

impl McpConnections {
    /// A count capped at `max`.
    pub fn new(max: Option<usize>) -> McpConnections {
        McpConnections {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Open MCP connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// A connection's place among the MCP connections, taken at its first `/mcp`
/// request ([`McpSlot::take`]) and given back when the connection closes.
#[derive(Debug)]
pub struct McpSlot {
    table: Arc<McpConnections>,
    taken: AtomicBool,
}

impl McpSlot {
    /// A connection of `table`, not counted yet.
    pub fn new(table: Arc<McpConnections>) -> McpSlot {
        McpSlot {
            table,
            taken: AtomicBool::new(false),
        }
    }

    /// Count this connection as an MCP connection (once); false when
    /// `http.max_connections` are open already.
    pub fn take(&self) -> bool {
        if self.taken.load(Ordering::Acquire) {
            return true;
        }
        let max = self.table.max.unwrap_or(usize::MAX);
        let counted = self
            .table
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if counted {
            self.taken.store(true, Ordering::Release);
        }
        counted
    }
}

impl Drop for McpSlot {
    fn drop(&mut self) {
        if self.taken.load(Ordering::Acquire) {
            self.table.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.table.open.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// Decrements the open-connections gauge when its connection closes.
pub struct ConnectionGuard(IntGauge);

impl ConnectionGuard {
    /// Count one more open connection.
    pub fn new(gauge: IntGauge) -> ConnectionGuard {
        gauge.inc();
        ConnectionGuard(gauge)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Register the operations routes.
pub fn routes(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .service(
                web::resource("/health")
                    .wrap(from_fn(guard_host_and_origin))
                    .route(web::get().to(health)),
            )
            .route("/health/live", web::get().to(live))
            .service(
                web::resource("/health/ready")
                    .wrap(from_fn(guard_host_and_origin))
                    .route(web::get().to(ready)),
            )
            .service(
                web::resource("/metrics")
                    .wrap(from_fn(guard_host_and_origin))
                    .route(web::get().to(metrics)),
            );
    }
}

/// 403 for a request whose `Host` or `Origin` is not allowed
/// (`http::check_ops_host_and_origin`), counted and logged as a `forbidden` refusal.
async fn guard_host_and_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Err(why) = check_ops_host_and_origin(&state.http, req.headers()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let error = RpcError::new(-32000, format!("forbidden: {why}"));
    state.service.refusals.refuse(Refused {
        reason: reason::FORBIDDEN,
        status: Some(StatusCode::FORBIDDEN.as_u16()),
        client: req.peer_addr(),
        method: Some(req.method().as_str()),
        detail: &error.message,
    });
    Ok(req.into_response(rpc_error(StatusCode::FORBIDDEN, error)))
}

/// Serve the operations routes alone on `addr` (one worker); the server's handle and
/// the address it bound (port 0 resolved).
pub(crate) fn start(
    addr: SocketAddr,
    state: AppState,
    log: &Logger,
) -> std::io::Result<(ServerHandle, SocketAddr)> {
    let app_state = state.clone();
    let ops_connections = state.http.ops_connections;
    let server = HttpServer::new(move || App::new().configure(routes(app_state.clone())))
        .workers(1)
        // Its own bound, apart from the MCP listener's.
        .max_connections(ops_connections)
        .disable_signals()
        .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    slog::info!(log, "serving admin"; "admin_bind" => bound.to_string());
    Ok((handle, bound))
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = BTreeMap::new();
    let storage = state.service.storage.clone();
    checks.insert(
        "storage".to_owned(),
        health::timed(async move { storage.probe().map_err(|e| e.to_string()) }).await,
    );
    let root = state.root.clone();
    checks.insert(
        "root".to_owned(),
        health::timed(async move { root.send(Ping).await.map_err(|e| e.to_string()) }).await,
    );
    state.service.health.run_into(&mut checks).await;
    let connections = state.connections.max.map(|max| {
        let open = state.connections.open();
        let check = if open >= max {
            health::CheckResult::failed(format!(
                "{open} of {max} MCP connections open (http.max_connections): new MCP \
                 connections are refused"
            ))
        } else {
            health::CheckResult::passed()
        };
        checks.insert("connections".to_owned(), check);
        health::Connections { open, max }
    });
    let mut report = HealthReport::new(checks, state.registry.len());
    report.connections = connections;
    let mut resp = if report.ok() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.json(report)
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "not ready"}))
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.service.metrics.render())
}

/// Tell systemd we are ready (no-op outside systemd), and start watchdog pings when
/// `WATCHDOG_USEC` asks for them: a ping only while Root answers within the deadline
/// and storage is not failing, so a wedged actor system or a dead disk gets the
/// service restarted.
pub fn notify_systemd_ready(root: Addr<Root>, storage: crate::storage::Storage, log: &Logger) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let Some(period) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
        return;
    };
    let every = period / 2;
    slog::info!(log, "systemd watchdog on"; "interval_ms" => every.as_millis() as u64);
    let log = log.clone();
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Some(why) = storage.failure() {
                // A failing disk is a degraded service: let systemd restart us.
                slog::error!(log, "storage failing: watchdog ping withheld"; "error" => why);
                continue;
            }
            match actix_rt::time::timeout(health::CHECK_DEADLINE, root.send(Ping)).await {
                Ok(Ok(())) => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                _ => slog::error!(log, "root actor unresponsive: watchdog ping withheld"),
            }
        }
    });
}

/// Tell systemd we are draining.
pub fn notify_systemd_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    /// Issue 18 item 2: an IPv6 client is counted by its /64 (it can pick any address
    /// in it), an IPv4-mapped one as its IPv4 address, an IPv4 one alone.
    #[test]
    fn the_per_address_key_groups_ipv6_by_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::1")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(client_key(ip("192.0.2.7")), client_key(ip("192.0.2.8")));
        // Counted together: the second address of the same /64 is over a limit of 1.
        let table = Arc::new(PerAddress::default());
        let first = PerAddress::connected(&table, ip("2001:db8::1"), 1);
        assert!(!first.over);
        let second = PerAddress::connected(&table, ip("2001:db8::2:3"), 1);
        assert!(second.over);
        assert!(PerAddress::try_take(&table, ip("2001:db8::9"), 2).is_none());
        drop((first, second));
        assert!(PerAddress::try_take(&table, ip("2001:db8::9"), 1).is_some());
    }

    /// The MCP connection count stops at its cap, a connection counts once, and a
    /// closed one gives its place back.
    #[test]
    fn mcp_connections_stop_at_the_cap() {
        let table = Arc::new(McpConnections::new(Some(2)));
        let a = McpSlot::new(table.clone());
        let b = McpSlot::new(table.clone());
        let c = McpSlot::new(table.clone());
        assert!(a.take() && a.take(), "taken once, then kept");
        assert!(b.take());
        assert!(!c.take(), "the third is one too many");
        assert_eq!(table.open(), 2);
        drop(a);
        assert_eq!(table.open(), 1);
        assert!(c.take());
        drop(McpSlot::new(table.clone()));
        assert_eq!(table.open(), 2, "a slot never taken gives nothing back");
    }
}
