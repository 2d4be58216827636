//! Change broadcasts: a resource changed, or a list (tools, prompts, resources) did.
//! Handlers publish ([`Notifier::changed`]), and so can code outside any call through
//! the server's handle (`Server::notifier`); sessions subscribed to a change
//! (session-era `resources/subscribe`, 2026-07-28 `subscriptions/listen`) forward it
//! to their client. In a fleet every change is also relayed to the other instances
//! (a relay the server installs: Redis pub/sub), and theirs delivered here
//! ([`Notifier::deliver`]). Depends on nothing else in the crate.

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;

/// Change events queued per session before the oldest are skipped.
const UPDATE_QUEUE: usize = 256;

/// Something a client may subscribe to changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The resource with this URI changed (`notifications/resources/updated`).
    Resource(Arc<str>),
    /// The tool list changed.
    ToolsList,
    /// The prompt list changed.
    PromptsList,
    /// The resource list changed.
    ResourcesList,
}

impl Change {
    /// The change as bytes for other instances: `r` + a resource URI, `t`, `p`,
    /// `l`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Change::Resource(uri) => [b"r", uri.as_bytes()].concat(),
            Change::ToolsList => b"t".to_vec(),
            Change::PromptsList => b"p".to_vec(),
            Change::ResourcesList => b"l".to_vec(),
        }
    }

    /// The change [`Change::encode`] made `bytes` of, if they are one.
    pub fn decode(bytes: &[u8]) -> Option<Change> {
        match bytes.split_first()? {
            (b'r', uri) => std::str::from_utf8(uri)
                .ok()
                .map(|uri| Change::Resource(Arc::from(uri))),
            (b't', []) => Some(Change::ToolsList),
            (b'p', []) => Some(Change::PromptsList),
            (b'l', []) => Some(Change::ResourcesList),
            _ => None,
        }
    }
}

/// Where a notifier relays the changes made here: the other instances of a fleet.
pub type Relay = Box<dyn Fn(&Change) + Send + Sync>;

/// Broadcasts changes to the sessions that subscribed to them (session-era
/// `resources/subscribe`, 2026-07-28 `subscriptions/listen`).
#[derive(Clone)]
pub struct Notifier {
    local: broadcast::Sender<Change>,
    relay: Arc<OnceLock<Relay>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("receivers", &self.receivers())
            .field("relayed", &self.relay.get().is_some())
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            local: broadcast::channel(UPDATE_QUEUE).0,
            relay: Arc::default(),
        }
    }
}

impl Notifier {
    /// Relay every change made here to `relay` too (once; later calls are
    /// ignored): every clone of this notifier relays.
    pub fn relay_to(&self, relay: Relay) {
        let _ = self.relay.set(relay);
    }

    /// A change made on another instance: to this instance's sessions only.
    pub fn deliver(&self, change: Change) {
        let _ = self.local.send(change);
    }

    /// Tell every session subscribed to `uri` that it changed.
    pub fn resource_updated(&self, uri: &str) {
        self.changed(Change::Resource(Arc::from(uri)));
    }

    /// Tell every subscribed session about `change`, on every instance.
    pub fn changed(&self, change: Change) {
        if let Some(relay) = self.relay.get() {
            relay(&change);
        }
        let _ = self.local.send(change);
    }

    /// Tell listening clients that a list (tools, prompts, resources) changed: the
    /// same as [`Notifier::changed`], named as `CallContext::list_changed` is.
    pub fn list_changed(&self, change: Change) {
        self.changed(change);
    }

    /// A receiver for one session.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }

    /// Sessions currently receiving updates (those with a subscription).
    pub fn receivers(&self) -> usize {
        self.local.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_as_bytes() {
        for c in [
            Change::Resource(Arc::from("kv://a b")),
            Change::ToolsList,
            Change::PromptsList,
            Change::ResourcesList,
        ] {
            assert_eq!(Change::decode(&c.encode()), Some(c));
        }
        assert_eq!(Change::decode(b""), None);
        assert_eq!(Change::decode(b"tx"), None);
        assert_eq!(Change::decode(b"r\xff"), None);
    }

    #[test]
    fn a_relayed_change_goes_out_and_a_delivered_one_stays_in() {
        let n = Notifier::default();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = sent.clone();
        n.clone()
            .relay_to(Box::new(move |c| out.lock().unwrap().push(c.clone())));
        let mut rx = n.subscribe();
        n.resource_updated("kv://x");
        n.deliver(Change::ToolsList);
        assert_eq!(
            rx.try_recv().ok(),
            Some(Change::Resource(Arc::from("kv://x")))
        );
        assert_eq!(rx.try_recv().ok(), Some(Change::ToolsList));
        assert_eq!(
            *sent.lock().unwrap(),
            vec![Change::Resource(Arc::from("kv://x"))]
        );
    }
}
