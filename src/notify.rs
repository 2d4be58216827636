//! Change broadcasts: a resource changed, or a list (tools, prompts, resources) did.
//! Handlers publish ([`Notifier::changed`]), and so can code outside any call through
//! the server's handle (`Server::notifier`); sessions subscribed to a change
//! (session-era `resources/subscribe`, 2026-07-28 `subscriptions/listen`) forward it
//! to their client. Depends on nothing else in the crate.

use std::sync::Arc;

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

/// Broadcasts changes to the sessions that subscribed to them (session-era
/// `resources/subscribe`, 2026-07-28 `subscriptions/listen`).
#[derive(Debug, Clone)]
pub struct Notifier(broadcast::Sender<Change>);

impl Default for Notifier {
    fn default() -> Self {
        Notifier(broadcast::channel(UPDATE_QUEUE).0)
    }
}

impl Notifier {
    /// Tell every session subscribed to `uri` that it changed.
    pub fn resource_updated(&self, uri: &str) {
        self.changed(Change::Resource(Arc::from(uri)));
    }

    /// Tell every subscribed session about `change`.
    pub fn changed(&self, change: Change) {
        let _ = self.0.send(change);
    }

    /// Tell listening clients that a list (tools, prompts, resources) changed: the
    /// same as [`Notifier::changed`], named as `CallContext::list_changed` is.
    pub fn list_changed(&self, change: Change) {
        self.changed(change);
    }

    /// A receiver for one session.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }

    /// Sessions currently receiving updates (those with a subscription).
    pub fn receivers(&self) -> usize {
        self.0.receiver_count()
    }
}
