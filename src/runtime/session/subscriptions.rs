//! Subscriptions and change fan-out: `resources/subscribe` (session era, told on
//! the standalone stream), `subscriptions/listen` (2026-07-28, one stream per
//! listen), and the `Changed` broadcasts a session receives from its first
//! subscription on.

use actix::prelude::*;
use tokio::sync::broadcast;

use super::{over_limit, Session, SessionKind};
use crate::notify::Change;
use crate::protocol::jsonrpc::{encode_notification, encode_result};
use crate::protocol::mcp::{method, ListenParams, SubscriptionFilter, UriParams};
use crate::protocol::request::META_SUBSCRIPTION_ID;
use crate::protocol::{reply, Encoded, Reply, Request, RequestId, RpcError};
use crate::sink::Sink;

/// One `subscriptions/listen` stream: its request id (the subscription id), what it
/// listens to, and where its notifications go.
pub(super) struct Listen {
    pub(super) id: RequestId,
    filter: SubscriptionFilter,
    sink: Sink,
}

impl Session {
    /// From now on, resource updates reach this session (once; the stream belongs
    /// to the actor's context, so it ends with the session).
    fn forward_updates(&mut self, ctx: &mut Context<Self>) {
        let rare = self.rare();
        if rare.forwarding_updates {
            return;
        }
        rare.forwarding_updates = true;
        let updates =
            futures::stream::unfold(self.service.notifier.subscribe(), |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(change) => return Some((Changed(change), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
        ctx.add_message_stream(updates);
    }

    pub(super) fn subscribe(
        &mut self,
        params: &UriParams,
        on: bool,
        ctx: &mut Context<Self>,
    ) -> Reply {
        if on {
            let held = self.rare.as_ref().map(|r| &r.subscriptions);
            let new = !held.is_some_and(|s| s.contains(&params.uri));
            self.check_subscription(&params.uri, held.map_or(0, |s| s.len()), new)?;
            if !self.service.resources.exists(&params.uri) {
                return Err(crate::resources::not_found(&params.uri));
            }
            self.forward_updates(ctx);
            self.rare().subscriptions.insert(params.uri.clone());
        } else if let Some(rare) = self.rare.as_mut() {
            rare.subscriptions.remove(&params.uri);
        }
        reply(&serde_json::json!({}))
    }

    /// A subscription to `uri` when `held` are held already (`new`: it is not one of
    /// them): within the count and URI-size limits (-32602 naming the limit otherwise).
    fn check_subscription(&self, uri: &str, held: usize, new: bool) -> Result<(), RpcError> {
        let limits = &self.service.limits;
        if uri.len() > limits.max_uri_bytes {
            return Err(over_limit(
                "limits.max_uri_bytes",
                limits.max_uri_bytes,
                format!("a URI of {} bytes", uri.len()),
            ));
        }
        if new && held >= limits.max_subscriptions {
            return Err(over_limit(
                "limits.max_subscriptions",
                limits.max_subscriptions,
                "one more subscription".to_owned(),
            ));
        }
        Ok(())
    }

    /// `subscriptions/listen`: acknowledge what will be honoured, then keep the
    /// stream: its notifications carry the request id as the subscription id. The
    /// request is answered when the stream ends at shutdown (`Drain`).
    pub(super) fn listen(
        &mut self,
        req: &Request,
        params: &ListenParams,
        sink: &Sink,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let asked = &params.notifications;
        let wanted = asked.resource_subscriptions.as_deref().unwrap_or_default();
        let held: usize = self
            .listens()
            .iter()
            .filter_map(|l| l.filter.resource_subscriptions.as_ref())
            .map(Vec::len)
            .sum();
        for (n, uri) in wanted.iter().enumerate() {
            self.check_subscription(uri, held + n, true)?;
        }
        let resources = &self.service.resources;
        let honoured = SubscriptionFilter {
            // The lists are fixed for the server's life: a change would be sent, and
            // none happens.
            tools_list_changed: asked.tools_list_changed.filter(|&on| on),
            prompts_list_changed: asked.prompts_list_changed.filter(|&on| on),
            resources_list_changed: asked.resources_list_changed.filter(|&on| on),
            resource_subscriptions: asked.resource_subscriptions.as_ref().map(|uris| {
                uris.iter()
                    .filter(|u| resources.exists(u))
                    .cloned()
                    .collect()
            }),
        };
        if honoured != SubscriptionFilter::default() {
            self.forward_updates(ctx);
        }
        let params = serde_json::json!({
            "notifications": honoured,
            "_meta": { META_SUBSCRIPTION_ID: &req.id },
        });
        sink.notification(encode_notification(
            method::SUBSCRIPTIONS_ACKNOWLEDGED,
            Some(&params),
        ));
        slog::info!(self.service.log, "listening"; self.tag_kv(), "request_id" => req.id.to_string(),
            "resources" => honoured.resource_subscriptions.as_ref().map_or(0, Vec::len));
        self.rare().listens.push(Listen {
            id: req.id.clone(),
            filter: honoured,
            sink: sink.clone(),
        });
        if self.kind == SessionKind::Listener {
            // The stream is the subscription: the session ends when the client
            // closes it (the transport drops the receiving end).
            let closed = sink.clone();
            ctx.spawn(
                async move { closed.closed().await }
                    .into_actor(self)
                    .map(|(), act, ctx| {
                        slog::info!(act.service.log, "listen stream closed by the client"; act.tag_kv());
                        if let Some(rare) = act.rare.as_mut() {
                            rare.listens.clear();
                        }
                        ctx.stop();
                    }),
            );
        }
        Ok(())
    }

    /// End every listen stream with its final result (at shutdown).
    pub(super) fn end_listens(&mut self) {
        let listens = self.rare.as_mut().map(|r| std::mem::take(&mut r.listens));
        for listen in listens.unwrap_or_default() {
            let result = self.service.envelope().listen_closed(&listen.id);
            listen
                .sink
                .response(Encoded::result(encode_result(&listen.id, &result)));
        }
    }
}

/// Something changed (from [`crate::runtime::service::Notifier`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed(pub Change);

impl Session {
    /// Tell the session-era subscriber (on the standalone stream) about `change`.
    fn tell_subscriber(&self, change: &Change) {
        let Change::Resource(uri) = change else {
            return;
        };
        let Some(rare) = self.rare.as_deref() else {
            return;
        };
        if !rare.subscriptions.contains(&**uri) {
            return;
        }
        if let Some(sink) = &rare.standalone {
            let params = serde_json::json!({ "uri": &**uri });
            sink.notification(encode_notification(
                method::RESOURCES_UPDATED,
                Some(&params),
            ));
        }
    }

    /// Tell every listen stream whose filter asked for `change`.
    fn tell_listeners(&self, change: &Change) {
        for listen in self.listens() {
            let f = &listen.filter;
            let (wanted, method) = match change {
                Change::Resource(uri) => (
                    f.resource_subscriptions
                        .as_ref()
                        .is_some_and(|uris| uris.iter().any(|u| **u == **uri)),
                    method::RESOURCES_UPDATED,
                ),
                Change::ToolsList => (
                    f.tools_list_changed == Some(true),
                    method::TOOLS_LIST_CHANGED,
                ),
                Change::PromptsList => (
                    f.prompts_list_changed == Some(true),
                    method::PROMPTS_LIST_CHANGED,
                ),
                Change::ResourcesList => (
                    f.resources_list_changed == Some(true),
                    method::RESOURCES_LIST_CHANGED,
                ),
            };
            if !wanted {
                continue;
            }
            let mut params = serde_json::json!({ "_meta": { META_SUBSCRIPTION_ID: &listen.id } });
            if let Change::Resource(uri) = change {
                params["uri"] = serde_json::Value::from(&**uri);
            }
            listen
                .sink
                .notification(encode_notification(method, Some(&params)));
        }
    }
}

impl Handler<Changed> for Session {
    type Result = ();

    fn handle(&mut self, msg: Changed, _ctx: &mut Context<Self>) {
        self.tell_subscriber(&msg.0);
        self.tell_listeners(&msg.0);
    }
}
