//! Server → client requests awaiting the client's answer (session era): a handler's
//! question goes out on its call's stream with a fresh id, and the session routes
//! the client's response back here by that id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use serde_json::value::RawValue;

use crate::protocol::{RequestId, RpcError};

/// The client's answer to a server → client request: its result or its error.
pub type Outcome = Result<Box<RawValue>, RpcError>;

/// Server → client requests awaiting the client's answer, shared by a session and
/// its calls. Ids are strings `emcee-N`, so they never collide with a client's ids.
/// One allocation, made at the first call of a session-era client that declared
/// a capability (`Session::peer_for`): no other client can be asked anything.
#[derive(Clone, Default)]
pub struct Peer(Arc<Mutex<Pending>>);

#[derive(Default)]
struct Pending {
    /// The number in the next request's id.
    next: u64,
    waiting: HashMap<RequestId, oneshot::Sender<Outcome>>,
}

impl Peer {
    pub(crate) fn register(&self) -> (RequestId, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let Ok(mut p) = self.0.lock() else {
            // Poisoned (a panic while it was held): `tx` is dropped, so the
            // asker's wait ends at once, as when the session ends.
            return (RequestId::String("emcee-lost".into()), rx);
        };
        let id = RequestId::String(format!("emcee-{}", p.next));
        p.next += 1;
        p.waiting.insert(id.clone(), tx);
        (id, rx)
    }

    pub(crate) fn forget(&self, id: &RequestId) {
        if let Ok(mut p) = self.0.lock() {
            p.waiting.remove(id);
        }
    }

    /// Deliver the client's answer; false if no request with this id is pending.
    pub fn complete(&self, id: RequestId, outcome: Outcome) -> bool {
        let tx = self.0.lock().ok().and_then(|mut p| p.waiting.remove(&id));
        match tx {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }
}
