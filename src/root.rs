//! The Root actor: one per process; supervises sessions (DESIGN §2).
//!
//! It owns the session registry: it mints session ids, starts Session actors, forgets
//! them when they stop, and is where session limits, idle reaping and drain live.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use slog::Logger;

use crate::service::Service;
use crate::session::{Session, SessionEnded};

/// Open a new session.
#[derive(Message)]
#[rtype(result = "Result<(Arc<str>, Addr<Session>), RootError>")]
pub struct OpenSession;

/// Look a session up by id.
#[derive(Message)]
#[rtype(result = "Option<Addr<Session>>")]
pub struct GetSession(pub Arc<str>);

/// Number of live sessions.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SessionCount;

/// Why the root refused.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// No session id could be minted (the OS random source failed).
    #[error("cannot mint a session id: {0}")]
    Random(String),
}

/// The root supervisor.
pub struct Root {
    service: Arc<Service>,
    sessions: HashMap<Arc<str>, Addr<Session>>,
    log: Logger,
}

impl Root {
    /// A root for `service`.
    pub fn new(service: Arc<Service>) -> Root {
        let log = service.log.clone();
        Root {
            service,
            sessions: HashMap::new(),
            log,
        }
    }
}

/// A fresh session id: 128 bits from the OS CSPRNG as 32 lowercase hex characters
/// (visible ASCII, as MCP requires of `Mcp-Session-Id`).
pub fn mint_session_id() -> Result<String, RootError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| RootError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Actor for Root {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        slog::debug!(self.log, "root started");
    }
}

impl Handler<OpenSession> for Root {
    type Result = Result<(Arc<str>, Addr<Session>), RootError>;

    fn handle(&mut self, _msg: OpenSession, ctx: &mut Context<Self>) -> Self::Result {
        let id: Arc<str> = Arc::from(mint_session_id()?);
        let session = Session::new(
            id.clone(),
            self.service.clone(),
            Some(ctx.address().recipient()),
        );
        let addr = session.start();
        self.sessions.insert(id.clone(), addr.clone());
        Ok((id, addr))
    }
}

impl Handler<SessionEnded> for Root {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _ctx: &mut Context<Self>) {
        self.sessions.remove(&msg.id);
    }
}

impl Handler<GetSession> for Root {
    type Result = Option<Addr<Session>>;

    fn handle(&mut self, msg: GetSession, _ctx: &mut Context<Self>) -> Self::Result {
        self.sessions.get(&msg.0).cloned()
    }
}

impl Handler<SessionCount> for Root {
    type Result = usize;

    fn handle(&mut self, _msg: SessionCount, _ctx: &mut Context<Self>) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::mint_session_id;

    #[test]
    fn session_ids_are_random_visible_ascii() {
        let a = mint_session_id().unwrap();
        let b = mint_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
