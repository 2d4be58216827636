//! Operations endpoints: `/health`, `/health/live`, `/health/ready`, `/metrics`, and
//! systemd notifications (`READY=1`, `STOPPING=1`, watchdog pings).
//!
//! Served on the MCP listener, or on their own with `--admin-bind`. `/health`,
//! `/health/ready` and `/metrics` tell a reader tool names, counters and dependency
//! errors, so a DNS-rebinding page must not read them: their `Host` and `Origin` are
//! checked like `/mcp`'s, except that a `Host` that is an IP literal is accepted (a
//! probe or scraper by address; see `hosts::check_ops_host_and_origin`), and a
//! refusal is a 403, counted and logged like `/mcp`'s. `/health/live` says only
//! that the process answers: any `Host` gets it, so a liveness probe never needs the
//! allowlist.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use slog::Logger;

use crate::config::OpsAccess;
use crate::health::{self, HealthReport};
use crate::protocol::RpcError;
use crate::runtime::root::{Ping, Root};
use crate::telemetry::metrics::reason;
use crate::telemetry::Refused;
use crate::transport::exchange::{rpc_error, Refusal, RefusalDetail};
use crate::transport::hosts::check_ops_host_and_origin;
use crate::transport::state::AppState;

/// Register the operations routes.
pub fn routes(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .service(
                web::resource("/health")
                    .wrap(from_fn(guard_token))
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
                    .wrap(from_fn(guard_token))
                    .wrap(from_fn(guard_host_and_origin))
                    .route(web::get().to(metrics)),
            );
    }
}

/// 403 for a request whose `Host` or `Origin` is not allowed
/// (`hosts::check_ops_host_and_origin`), counted and logged as a `forbidden` refusal.
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

/// With tokens configured (`[auth]`) and `ops` other than `open`: 401 for a
/// `/health` or `/metrics` request without a valid bearer token, counted and
/// logged as `unauthorized` (never the token). The admin listener's state has no
/// auth: it is always open.
async fn guard_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let auth = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| Some((s.auth.clone()?, s.service.refusals.clone())));
    let Some((auth, refusals)) = auth.filter(|(a, _)| a.ops != OpsAccess::Open) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let presented = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let Err(denied) = auth.check(presented).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let refusal = Refusal::unauthorized(&auth, denied);
    let resp = HttpResponse::from(refusal);
    let detail = resp
        .extensions()
        .get::<RefusalDetail>()
        .map(|d| d.0.clone())
        .unwrap_or_default();
    refusals.refuse(Refused {
        reason: reason::UNAUTHORIZED,
        status: Some(StatusCode::UNAUTHORIZED.as_u16()),
        client: req.peer_addr(),
        method: Some(req.method().as_str()),
        detail: &detail,
    });
    Ok(req.into_response(resp))
}

/// Serve the operations routes alone on `addr` (one worker); the server's handle and
/// the address it bound (port 0 resolved).
pub(crate) fn start(
    addr: SocketAddr,
    state: AppState,
    log: &Logger,
) -> std::io::Result<(ServerHandle, SocketAddr)> {
    let mut app_state = state.clone();
    // Operator-only: never asks for a token.
    app_state.auth = None;
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
