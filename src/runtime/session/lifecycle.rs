//! A session's lifecycle and era: which era each request is served in, the
//! session-era handshake (`initialize`, saved before it is answered), its log level,
//! `server/discover`, and the record a restart restores a session from.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{over_limit, Session, SessionKind};
use crate::protocol::era::{self, Era};
use crate::protocol::mcp::{method, InitializeParams, InitializeResult, SetLevelParams};
use crate::protocol::{
    code, reply, LoggingLevel, ProtocolVersion, Reply, Request, RequestId, RpcError,
};
use crate::sink::Sink;
use crate::telemetry::Maybe;

/// Level of `notifications/message` a session-era client gets before it calls
/// `logging/setLevel`.
pub const DEFAULT_CLIENT_LOG_LEVEL: LoggingLevel = LoggingLevel::Info;

/// A log threshold above every level: no `notifications/message` at all (a
/// 2026-07-28 request that names no log level).
const NO_CLIENT_LOG: u8 = LoggingLevel::Emergency as u8 + 1;

/// The log threshold of a 2026-07-28 request (fixed for the request: shared, never
/// written).
pub(super) fn request_log_level(level: Option<LoggingLevel>) -> Arc<AtomicU8> {
    static LEVELS: std::sync::OnceLock<Vec<Arc<AtomicU8>>> = std::sync::OnceLock::new();
    let levels = LEVELS.get_or_init(|| {
        (0..=NO_CLIENT_LOG)
            .map(|n| Arc::new(AtomicU8::new(n)))
            .collect()
    });
    let n = level.map_or(NO_CLIENT_LOG, |l| l as u8);
    levels[usize::from(n)].clone()
}

/// What is saved of a session so that a restart does not turn its id into 404: the
/// negotiated version and the client's `initialize` params, replayed on first use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The negotiated version.
    pub protocol_version: String,
    /// The client's `initialize` params.
    pub client: InitializeParams,
    /// The name of the principal that opened it (`[auth]`: a token's
    /// fingerprint); only it may use the session, on any instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Session {
    /// A session rebuilt from its saved record (after a restart): already initialized.
    pub fn restored(mut self, record: SessionRecord) -> Session {
        self.era = Some(Era::Legacy(ProtocolVersion::negotiate(
            &record.protocol_version,
        )));
        self.client_capabilities = Some(record.client.capabilities);
        self.owner = record.owner.map(Arc::from);
        self.kind = SessionKind::Http;
        slog::info!(self.service.log, "session restored"; self.tag_kv(), "protocol_version" => record.protocol_version);
        self
    }

    /// The negotiated session-era version, once initialized.
    pub fn version(&self) -> Option<ProtocolVersion> {
        match self.era {
            Some(Era::Legacy(v)) => Some(v),
            _ => None,
        }
    }

    /// The era `req` is served in, or the error that answers it. `None`: a
    /// session-era request before `initialize` (only `initialize` and `ping`).
    ///
    /// A request that names its version in `_meta` is served as 2026-07-28, whatever
    /// came before on the connection; `initialize` selects the session era for the
    /// connection (stdio) or the session (HTTP).
    /// `checked`: the transport checked it as a 2026-07-28 request already.
    pub(super) fn era_of(&mut self, req: &Request, checked: bool) -> Result<Option<Era>, RpcError> {
        if checked {
            return Ok(Some(Era::Modern));
        }
        let stateless = matches!(self.kind, SessionKind::Stateless | SessionKind::Listener);
        if stateless || era::is_modern_request(&req.meta) {
            era::check_modern(req)?;
            if self.era.is_none() {
                self.era = Some(Era::Modern);
            }
            return Ok(Some(Era::Modern));
        }
        match self.era {
            Some(Era::Legacy(v)) => {
                if !req.call.in_session_era() {
                    return Err(RpcError::method_not_found(req.method()));
                }
                Ok(Some(Era::Legacy(v)))
            }
            _ if req.call.before_initialize() => Ok(None),
            // Neither era yet: a request other than the handshake is read as
            // 2026-07-28, whose checks name what is missing (-32602 for `_meta`);
            // the message also points session-era clients to `initialize`.
            Some(Era::Modern) | None => {
                era::check_modern(req)
                    .map(|()| Some(Era::Modern))
                    .map_err(|e| match (self.era, e.code) {
                        (None, code::INVALID_PARAMS) => RpcError::new(
                            e.code,
                            format!(
                                "{} (session-era clients: send `initialize` first)",
                                e.message
                            ),
                        ),
                        _ => e,
                    })
            }
        }
    }

    pub(super) fn initialize(&mut self, params: &InitializeParams) -> Reply {
        if matches!(self.era, Some(Era::Legacy(_))) {
            return Err(RpcError::invalid_request("session already initialized"));
        }
        // What the session keeps is bounded in bytes, whatever the client sends.
        let limit = self.service.limits.max_session_bytes;
        let size = serde_json::to_vec(params).map_or(usize::MAX, |v| v.len());
        if size > limit {
            return Err(over_limit(
                "limits.max_session_bytes",
                limit,
                format!("initialize params of {size} bytes"),
            ));
        }
        let mut version = ProtocolVersion::negotiate(&params.protocol_version);
        if self.kind == SessionKind::Http && version < ProtocolVersion::V2025_03_26 {
            // 2024-11-05's transport is HTTP+SSE, not Streamable HTTP: an HTTP
            // client is offered the newest session-era version instead (it goes on
            // with it, or disconnects), as version negotiation has it.
            version = ProtocolVersion::LATEST_LEGACY;
        }
        slog::info!(self.service.log, "session initialized"; self.tag_kv(),
            "requested_version" => &params.protocol_version, "protocol_version" => version.as_str(),
            "client" => %crate::telemetry::clip(&params.client_info.name),
            "client_version" => %crate::telemetry::clip(&params.client_info.version));
        self.era = Some(Era::Legacy(version));
        self.client_capabilities = Some(params.capabilities.clone());
        let service = &self.service;
        reply(&InitializeResult {
            protocol_version: version.as_str(),
            capabilities: service.capabilities(Era::Legacy(version)),
            server_info: service.info.implementation(),
            instructions: service.info.instructions.clone(),
        })
    }

    /// Durability (DESIGN §3): a session the client is told exists is on disk first.
    pub(super) fn answer_after_saving(
        &mut self,
        req: RequestId,
        reply: Reply,
        params: &InitializeParams,
        sink: &Sink,
        started: Instant,
        ctx: &mut Context<Self>,
    ) {
        let record = SessionRecord {
            protocol_version: self
                .version()
                .map_or("", ProtocolVersion::as_str)
                .to_owned(),
            client: params.clone(),
            owner: self.owner.as_deref().map(String::from),
        };
        let storage = self.service.storage.clone();
        let metrics = self.service.metrics.clone();
        let id = self.id.clone();
        let sink = sink.clone();
        let (log, tag) = (self.service.log.clone(), self.tag.clone());
        ctx.spawn(
            async move {
                let saved = match serde_json::to_vec(&record) {
                    Ok(bytes) => storage
                        .save_session(&id, &bytes)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let reply = match saved {
                    Ok(()) => reply,
                    Err(e) => {
                        slog::error!(log, "session not saved";
                            Maybe("session", tag), "error" => &e);
                        Err(RpcError::internal(format!("cannot save the session: {e}")))
                    }
                };
                let outcome = if reply.is_ok() { "ok" } else { "error" };
                metrics.request(method::INITIALIZE, outcome, started.elapsed().as_secs_f64());
                sink.response(era::encode_reply(&req, &reply, None));
            }
            .into_actor(self),
        );
    }

    /// `server/discover`: versions and capabilities, cacheable (the server's identity
    /// is in `_meta`, as on every 2026-07-28 result).
    pub(super) fn discover(&self) -> Reply {
        let service = &self.service;
        let mut result = serde_json::json!({
            "supportedVersions": era::supported_versions(),
            "capabilities": service.capabilities(Era::Modern),
        });
        if let Some(instructions) = &service.info.instructions {
            result["instructions"] = instructions.clone().into();
        }
        era::add_cache_fields(&mut result, era::LIST_TTL_MS, era::CacheScope::Public);
        reply(&result)
    }

    pub(super) fn set_level(&self, params: &SetLevelParams) -> Reply {
        self.client_log_level
            .store(params.level as u8, Ordering::Relaxed);
        reply(&serde_json::json!({}))
    }
}
