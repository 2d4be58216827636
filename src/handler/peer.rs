//! Server → client requests awaiting the client's answer (session era): a handler's
//! question goes out on its call's stream with a fresh id, and the session routes
//! the client's response back here by that id.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::channel::oneshot;

use serde_json::value::RawValue;

use crate::protocol::{RequestId, RpcError};

/// The client's answer to a server → client request: its result or its error.
pub type Outcome = Result<Box<RawValue>, RpcError>;

/// Server → client requests awaiting the client's answer, shared by a session and
/// its calls. Ids are strings `emcee-N`, so they never collide with a client's ids.
#[derive(Clone, Default)]
pub struct Peer {
    next: Arc<std::sync::atomic::AtomicU64>,
    pending: Arc<std::sync::Mutex<HashMap<RequestId, oneshot::Sender<Outcome>>>>,
}

impl Peer {
    pub(crate) fn register(&self) -> (RequestId, oneshot::Receiver<Outcome>) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("emcee-{n}"));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), tx);
        }
        (id, rx)
    }

    pub(crate) fn forget(&self, id: &RequestId) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(id);
        }
    }

    /// Deliver the client's answer; false if no request with this id is pending.
    pub fn complete(&self, id: RequestId, outcome: Outcome) -> bool {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        match tx {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }
}
