//! The Root actor: one per process; supervises sessions (DESIGN §2).
//!
//! Root owns the session registry: it mints session ids, starts Session actors (on the
//! arbiter of the worker that asked, so sessions spread over cores), enforces the
//! session cap, reaps idle sessions, ends sessions on `DELETE`, and drains them all at
//! shutdown. It also adopts the stateless sessions of the HTTP workers, to drain them.
//! Transports read the registry directly (`Registry::get`) to route requests
//! without a hop through this actor; only Root writes it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use slog::Logger;

use crate::runtime::service::Service;
use crate::runtime::session::{
    Close, Drain, Inbound, Session, SessionEnded, SessionKind, SessionRecord,
};

pub use crate::telemetry::now_ms;

/// What the registry knows of one live session.
#[derive(Debug)]
pub struct SessionEntry {
    /// The session id.
    pub id: Arc<str>,
    /// The actor.
    pub addr: Addr<Session>,
    last_seen_ms: AtomicU64,
    /// `last_seen_ms` as last written to the session's saved use time.
    marked_ms: AtomicU64,
    open_streams: AtomicUsize,
    /// The principal that opened it (`[auth]`), if any: the HTTP transport answers
    /// 404 to a request of another.
    pub owner: Option<Arc<str>>,
}

impl SessionEntry {
    /// The entry of a session just started.
    pub(crate) fn new(id: Arc<str>, addr: Addr<Session>) -> SessionEntry {
        SessionEntry {
            id,
            addr,
            owner: None,
            last_seen_ms: AtomicU64::new(now_ms()),
            marked_ms: AtomicU64::new(0),
            open_streams: AtomicUsize::new(0),
        }
    }

    /// Record activity now (a request arrived).
    pub fn touch(&self) {
        self.last_seen_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// A stream opened; a session with an open stream is never idle.
    pub fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream closed.
    pub fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    fn idle_for(&self, now: u64) -> Option<u64> {
        if self.open_streams.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(now.saturating_sub(self.last_seen_ms.load(Ordering::Relaxed)))
    }
}

/// The session registry: read by transports, written by Root. A set of entries
/// found by their ids (a slot is one pointer, not the id and the entry).
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<RwLock<HashSet<Registered>>>);

/// A registry slot: an entry, hashed and compared by its id.
#[derive(Debug)]
struct Registered(Arc<SessionEntry>);

impl std::borrow::Borrow<str> for Registered {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl std::hash::Hash for Registered {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the `str` it borrows as hashes.
        self.0.id.hash(state)
    }
}

impl PartialEq for Registered {
    fn eq(&self, other: &Registered) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Registered {}

impl Registry {
    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Arc<SessionEntry>> {
        Some(self.0.read().ok()?.get(id)?.0.clone())
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.0.read().map_or(0, |m| m.len())
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, entry: Arc<SessionEntry>) {
        if let Ok(mut m) = self.0.write() {
            m.replace(Registered(entry));
        }
    }

    fn remove(&self, id: &str) -> Option<Arc<SessionEntry>> {
        Some(self.0.write().ok()?.take(id)?.0)
    }

    fn all(&self) -> Vec<Arc<SessionEntry>> {
        self.0
            .read()
            .map_or_else(|_| Vec::new(), |m| m.iter().map(|r| r.0.clone()).collect())
    }
}

/// Open a new session, started on `arbiter` (the caller's) or on Root's own.
#[derive(Message)]
#[rtype(result = "Result<Arc<SessionEntry>, RootError>")]
pub struct OpenSession {
    /// Where the Session actor runs.
    pub arbiter: Option<ArbiterHandle>,
    /// What it serves: a stdio connection, a session-era HTTP session (saved so
    /// that it survives a restart) or a 2026-07-28 listen stream.
    pub kind: SessionKind,
    /// The principal opening it (`[auth]`), bound to it for its life.
    pub owner: Option<Arc<str>>,
}

/// Adopt the stateless session of one HTTP worker (it serves 2026-07-28 requests
/// on that worker's thread). Not a client session: not in the registry, not
/// counted, never reaped; drained and stopped at shutdown like the others.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdoptStateless(pub Addr<Session>);

/// Rebuild a saved session whose actor is gone (the process restarted): look its
/// record up in storage and start a Session from it. `None` if there is no record.
#[derive(Message)]
#[rtype(result = "Result<Option<Arc<SessionEntry>>, RootError>")]
pub struct RestoreSession {
    /// The session id the client holds.
    pub id: Arc<str>,
    /// Where the Session actor runs.
    pub arbiter: Option<ArbiterHandle>,
}

/// End a session now (HTTP `DELETE`); answers whether it existed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CloseSession(pub Arc<str>);

/// Drain every session: wait for in-flight calls up to `grace`, cancel the rest.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainAll {
    /// Grace period for in-flight calls.
    pub grace: Duration,
}

/// Liveness probe: answered at once (health checks, systemd watchdog).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Why the root refused.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The session cap is reached.
    #[error("too many sessions (limit {0})")]
    Full(usize),
    /// The principal opening it holds its share of the sessions.
    #[error(
        "this principal holds its share of the sessions (limits.max_sessions_per_principal = {0})"
    )]
    Share(usize),
    /// The server is draining for shutdown.
    #[error("the server is shutting down")]
    Draining,
    /// No session id could be minted (the OS random source failed).
    #[error("cannot mint a session id: {0}")]
    Random(String),
}

/// The root supervisor.
pub struct Root {
    service: Arc<Service>,
    registry: Registry,
    /// Set by `DrainAll`: no session is opened or restored from then on.
    draining: bool,
    /// The HTTP workers' stateless sessions.
    stateless: Vec<Addr<Session>>,
    /// Saved sessions not live in this process that a client may still restore
    /// (unexpired records): they count toward `max_sessions`.
    dormant: usize,
    /// Live sessions per principal that opened them (`[auth]`), against
    /// `limits.max_sessions_per_principal`; a principal with none has no entry.
    per_owner: HashMap<Arc<str>, usize>,
    /// Where the sessions it opens report their end: one sender shared by all
    /// (an actix sender each would cost every session ~140 bytes), held by them
    /// (the root holding its own address would keep itself alive).
    ended: std::sync::Weak<Recipient<SessionEnded>>,
    log: Logger,
}

impl Root {
    /// A root for `service`, writing `registry`.
    pub fn new(service: Arc<Service>, registry: Registry) -> Root {
        let log = service.log.clone();
        Root {
            service,
            registry,
            draining: false,
            stateless: Vec::new(),
            dormant: 0,
            per_owner: HashMap::new(),
            ended: std::sync::Weak::new(),
            log,
        }
    }

    /// [`Root::ended`], made again when no session holds it.
    fn ended_to(&mut self, ctx: &Context<Self>) -> Arc<Recipient<SessionEnded>> {
        if let Some(ended) = self.ended.upgrade() {
            return ended;
        }
        let ended = Arc::new(ctx.address().recipient());
        self.ended = Arc::downgrade(&ended);
        ended
    }

    /// Remove a session from the registry (once: the gauge follows the registry).
    /// `ended` also deletes its saved record: the client's id answers 404 from now on
    /// (DELETE, idle reaping); a session stopped by shutdown keeps its record.
    fn forget(&mut self, id: &str, ended: bool) -> Option<Arc<SessionEntry>> {
        if ended {
            if let Err(e) = self.service.storage.delete_session(id) {
                slog::warn!(self.log, "session record not deleted"; "session" => crate::telemetry::session_tag(id), "error" => e.to_string());
            }
        }
        let entry = self.registry.remove(id)?;
        self.service.metrics.active_sessions.dec();
        if let Some(owner) = &entry.owner {
            if let Some(n) = self.per_owner.get_mut(owner) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_owner.remove(owner);
                }
            }
        }
        Some(entry)
    }

    /// Start a Session actor and register it.
    fn start_session(
        &mut self,
        id: Arc<str>,
        session: Session,
        arbiter: Option<ArbiterHandle>,
        owner: Option<Arc<str>>,
    ) -> Arc<SessionEntry> {
        let session = session.owned_by(owner.clone());
        let addr = match arbiter {
            Some(arbiter) => Session::start_in_arbiter(&arbiter, move |_| session),
            None => session.start(),
        };
        let mut entry = SessionEntry::new(id, addr);
        if let Some(owner) = &owner {
            *self.per_owner.entry(owner.clone()).or_insert(0) += 1;
        }
        entry.owner = owner;
        let entry = Arc::new(entry);
        self.registry.insert(entry.clone());
        self.service.metrics.active_sessions.inc();
        entry
    }

    fn reap(&mut self) {
        let ttl = self.service.limits.session_idle_ttl.as_millis() as u64;
        let now = now_ms();
        for entry in self.registry.all() {
            if entry.idle_for(now).is_some_and(|idle| idle >= ttl) {
                slog::info!(self.log, "session idle, reaped"; "session" => crate::telemetry::session_tag(&entry.id));
                self.forget(&entry.id, true);
                entry.addr.do_send(Close);
            }
        }
        self.mark_live_sessions_used(false);
        self.expire_records();
    }

    /// Write each live saved session's last use to storage (those used since the
    /// last write; `all`: every one, at shutdown), so that after a restart its
    /// record expires by the same idle TTL as a live session.
    fn mark_live_sessions_used(&mut self, all: bool) {
        let (now, unix_now) = (now_ms(), crate::storage::unix_ms());
        let storage = &self.service.storage;
        for entry in self.registry.all() {
            let seen = if entry.open_streams.load(Ordering::Relaxed) > 0 {
                now
            } else {
                entry.last_seen_ms.load(Ordering::Relaxed)
            };
            if !all && entry.marked_ms.swap(seen, Ordering::Relaxed) == seen {
                continue;
            }
            if storage.has_session(&entry.id).unwrap_or(false) {
                let at = unix_now.saturating_sub(now.saturating_sub(seen));
                if let Err(e) = storage.mark_session_used(&entry.id, at) {
                    slog::warn!(self.log, "session use not saved"; "error" => e.to_string());
                }
            }
        }
    }

    /// Delete saved records of sessions that are not live here and were last used
    /// more than the idle TTL ago (from an earlier run, or reaped while dormant).
    fn expire_records(&mut self) {
        let ttl = self.service.limits.session_idle_ttl.as_millis() as u64;
        let unix_now = crate::storage::unix_ms();
        let storage = &self.service.storage;
        let stale = match storage.sessions_unused_since(unix_now.saturating_sub(ttl), unix_now) {
            Ok(stale) => stale,
            Err(e) => {
                slog::warn!(self.log, "session records not swept"; "error" => e.to_string());
                return;
            }
        };
        let mut expired = 0;
        for id in stale {
            if self.registry.get(&id).is_some() {
                continue;
            }
            if storage.delete_session(&id).is_ok() {
                expired += 1;
            }
        }
        if expired > 0 {
            self.dormant = self.dormant.saturating_sub(expired);
            slog::info!(self.log, "expired session records removed"; "count" => expired);
        }
    }
}

/// A fresh session id: 128 bits from the OS CSPRNG as 22 characters of
/// [`SESSION_ID_ALPHABET`] (visible ASCII, as MCP requires of `Mcp-Session-Id`;
/// short enough that sled keeps the key inline: 32 hex digits cost every session
/// ~80 bytes more), after `{instance}-` when the server has an instance id, so that
/// a proxy can route a session to its instance. No `-` in the random part: the
/// instance is what comes before the last one.
pub fn mint_session_id(instance: Option<&str>) -> Result<String, RootError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| RootError::Random(e.to_string()))?;
    let random = SESSION_IDS.encode(bytes);
    Ok(match instance {
        Some(prefix) => format!("{prefix}-{random}"),
        None => random,
    })
}

/// The characters of a session id's random part: base64's, with `_` and `.` for
/// `+` and `/`.
pub const SESSION_ID_ALPHABET: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";

const SESSION_IDS: base64::engine::GeneralPurpose = {
    match base64::alphabet::Alphabet::new(SESSION_ID_ALPHABET) {
        Ok(alphabet) => {
            base64::engine::GeneralPurpose::new(&alphabet, base64::engine::general_purpose::NO_PAD)
        }
        Err(_) => panic!("SESSION_ID_ALPHABET is 64 distinct characters"),
    }
};

impl Actor for Root {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Records saved by an earlier run: the expired go, the rest may be restored
        // and count toward the cap.
        self.expire_records();
        // Shared records are the fleet's: none counts toward this instance's cap
        // until it restores it.
        if !self.service.storage.is_shared() {
            self.dormant = self.service.storage.session_count();
        }
        // What other instances tell this one: sessions ended there (closed here
        // too), client answers that reached them (to the session that asked).
        let from_fleet = self
            .service
            .from_fleet
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(mut from_fleet) = from_fleet {
            let root = ctx.address();
            ctx.spawn(actix::fut::wrap_future(async move {
                while let Some(message) = from_fleet.recv().await {
                    root.do_send(FleetMessage(message));
                }
            }));
        }
        // Check a few times per TTL, at most once a second, at least every 30 s.
        let ttl = self.service.limits.session_idle_ttl;
        let every = (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        ctx.run_interval(every, |act, _ctx| act.reap());
    }
}

impl Handler<OpenSession> for Root {
    type Result = Result<Arc<SessionEntry>, RootError>;

    fn handle(&mut self, msg: OpenSession, ctx: &mut Context<Self>) -> Self::Result {
        self.check_cap(msg.owner.as_deref())?;
        let id: Arc<str> = Arc::from(mint_session_id(self.service.instance.as_deref())?);
        let ended = self.ended_to(ctx);
        let session = Session::new(id.clone(), self.service.clone(), msg.kind, Some(ended));
        self.service.metrics.sessions_total.inc();
        Ok(self.start_session(id, session, msg.arbiter, msg.owner))
    }
}

impl Handler<AdoptStateless> for Root {
    type Result = ();

    fn handle(&mut self, msg: AdoptStateless, _ctx: &mut Context<Self>) {
        self.stateless.push(msg.0);
    }
}

impl Root {
    /// The session cap, `owner`'s share of it, and the drain. The transport that
    /// asked counts and logs the refusal (`mcp_rejected_total`), where the
    /// client's address is known.
    fn check_cap(&self, owner: Option<&str>) -> Result<(), RootError> {
        if self.draining {
            return Err(RootError::Draining);
        }
        let limit = self.service.limits.max_sessions;
        if self.registry.len() + self.dormant >= limit {
            return Err(RootError::Full(limit));
        }
        if let Some(owner) = owner {
            let share = self.service.limits.sessions_per_principal();
            if self.per_owner.get(owner).copied().unwrap_or(0) >= share {
                return Err(RootError::Share(share));
            }
        }
        Ok(())
    }
}

impl Handler<RestoreSession> for Root {
    type Result = Result<Option<Arc<SessionEntry>>, RootError>;

    fn handle(&mut self, msg: RestoreSession, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(entry) = self.registry.get(&msg.id) {
            return Ok(Some(entry)); // restored by a concurrent request
        }
        let record = match self.service.storage.load_session(&msg.id) {
            Ok(Some(bytes)) => match serde_json::from_slice::<SessionRecord>(&bytes) {
                Ok(record) => record,
                Err(e) => {
                    slog::warn!(self.log, "unreadable session record"; "session" => crate::telemetry::session_tag(&msg.id), "error" => e.to_string());
                    return Ok(None);
                }
            },
            Ok(None) => return Ok(None),
            Err(e) => {
                slog::warn!(self.log, "session lookup failed"; "error" => e.to_string());
                return Ok(None);
            }
        };
        // A record idle longer than the TTL is expired, even before a sweep sees it.
        let ttl = self.service.limits.session_idle_ttl.as_millis() as u64;
        let storage = &self.service.storage;
        let used = storage.session_used_at(&msg.id).ok().flatten().unwrap_or(0);
        if crate::storage::unix_ms().saturating_sub(used) > ttl {
            if storage.delete_session(&msg.id).is_ok() {
                self.dormant = self.dormant.saturating_sub(1);
            }
            slog::info!(self.log, "expired session not restored"; "session" => crate::telemetry::session_tag(&msg.id));
            return Ok(None);
        }
        // It was counted as dormant: restoring it does not take a new place.
        self.dormant = self.dormant.saturating_sub(1);
        if let Err(e) = self.check_cap(record.owner.as_deref()) {
            self.dormant += 1;
            return Err(e);
        }
        let ended = self.ended_to(ctx);
        let session = Session::new(
            msg.id.clone(),
            self.service.clone(),
            SessionKind::Http,
            Some(ended),
        );
        let owner = record.owner.as_deref().map(Arc::from);
        let session = session.restored(record);
        Ok(Some(self.start_session(
            msg.id,
            session,
            msg.arbiter,
            owner,
        )))
    }
}

impl Handler<SessionEnded> for Root {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _ctx: &mut Context<Self>) {
        // Stopped without being ended (a crash of its actor, or shutdown): its record,
        // if any, may still be restored.
        if self.forget(&msg.id, false).is_some()
            && self.service.storage.has_session(&msg.id).unwrap_or(false)
        {
            self.dormant += 1;
        }
    }
}

/// What another instance of the fleet told this one.
#[derive(Message)]
#[rtype(result = "()")]
struct FleetMessage(crate::runtime::service::bus::FromFleet);

impl Handler<FleetMessage> for Root {
    type Result = ();

    fn handle(&mut self, msg: FleetMessage, _ctx: &mut Context<Self>) {
        use crate::runtime::service::bus::FromFleet;
        match msg.0 {
            // A session ended (DELETE) elsewhere: close it here.
            FromFleet::Ended(id) => {
                if let Some(entry) = self.forget(&id, false) {
                    entry.addr.do_send(Close);
                }
                // Closed here (or never live): the DELETE may answer.
                self.service
                    .storage
                    .publish(crate::runtime::service::bus::ENDED_SEEN, id.as_bytes());
            }
            // The client answered elsewhere a request this instance's session
            // made: to the session, which completes the request if it asked it.
            FromFleet::Answer(id, json) => {
                if let Some(entry) = self.registry.get(&id) {
                    let (sink, _) = crate::sink::Sink::channel();
                    let payload = crate::protocol::jsonrpc::parse(&json);
                    entry.addr.do_send(Inbound::relayed(payload, sink));
                }
            }
        }
    }
}

impl Handler<CloseSession> for Root {
    type Result = ResponseFuture<bool>;

    /// Answers once the record's removal is on disk: a DELETEd id never comes back.
    fn handle(&mut self, msg: CloseSession, _ctx: &mut Context<Self>) -> Self::Result {
        let storage = self.service.storage.clone();
        let saved = storage.load_session(&msg.0).ok().flatten().is_some();
        let live = match self.forget(&msg.0, true) {
            Some(entry) => {
                entry.addr.do_send(Close);
                true
            }
            None => false,
        };
        if saved && !live {
            self.dormant = self.dormant.saturating_sub(1);
        }
        let log = self.log.clone();
        let waits = self.service.ended_waits.clone();
        let id = msg.0.clone();
        Box::pin(async move {
            if saved {
                if let Err(e) = storage.flush().await {
                    slog::error!(log, "session removal not flushed"; "error" => e.to_string());
                }
            }
            if saved && storage.is_shared() {
                // The other instances close the session before the DELETE is
                // answered: a request right after it gets 404 wherever it lands.
                use crate::runtime::service::bus;
                let all_seen = waits.expect(&id);
                let received = storage
                    .publish_counted(bus::SESSION_ENDED, id.as_bytes())
                    .await;
                // This instance's own bus received it too, and ignores it.
                waits.owe(&id, i64::try_from(received).unwrap_or(0) - 1);
                if tokio::time::timeout(bus::ENDED_WAIT, all_seen)
                    .await
                    .is_err()
                {
                    waits.forget(&id);
                    slog::warn!(log, "a session's end was not confirmed by every instance in time";
                        "session" => crate::telemetry::session_tag(&id));
                }
            }
            live || saved
        })
    }
}

impl Handler<Ping> for Root {
    type Result = ();

    fn handle(&mut self, _msg: Ping, _ctx: &mut Context<Self>) {}
}

impl Handler<DrainAll> for Root {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: DrainAll, _ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        // After a restart, each saved session lives one idle TTL from its last use.
        self.mark_live_sessions_used(true);
        let sessions: Vec<Addr<Session>> = self
            .registry
            .all()
            .into_iter()
            .map(|s| s.addr.clone())
            .chain(self.stateless.drain(..))
            .collect();
        Box::pin(async move {
            let drains = sessions.iter().map(|s| s.send(Drain { grace: msg.grace }));
            futures::future::join_all(drains).await;
            for s in &sessions {
                s.do_send(Close);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{mint_session_id, SESSION_ID_ALPHABET};

    #[test]
    fn session_ids_are_random_visible_ascii() {
        let a = mint_session_id(None).unwrap();
        let b = mint_session_id(None).unwrap();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| SESSION_ID_ALPHABET.as_bytes().contains(&c)));
        let c = mint_session_id(Some("b2")).unwrap();
        assert!(c.starts_with("b2-") && c.len() == 25, "{c}");
        assert_eq!(c.rsplit_once('-').map(|(instance, _)| instance), Some("b2"));
        // 128 bits: every character of the alphabet turns up, none other.
        let seen: std::collections::HashSet<u8> = (0..200)
            .flat_map(|_| mint_session_id(None).unwrap().into_bytes())
            .collect();
        assert_eq!(seen.len(), 64);
    }
}
