//! The handler's side of a call: [`CallContext`], what a tool, resource or prompt
//! handler is given to talk to the client (progress, log messages, questions through
//! `request_client`), reach storage, run blocking code, begin a task or announce
//! changes. The Call actor that runs the handler is the runtime's.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use slog::Logger;

use super::Peer;
use crate::protocol::jsonrpc::encode_notification;
use crate::protocol::mcp::{method, LogMessageParams, ProgressParams, ProgressToken};
use crate::protocol::{LoggingLevel, RequestId, RpcError};
use crate::sink::Sink;
use crate::storage::Storage;

/// The handler's view of its call: where to send progress and log notifications,
/// the storage, and a logger tagged with session, request and tool.
#[derive(Clone)]
pub struct CallContext {
    pub(crate) session_id: Arc<str>,
    pub(crate) request_id: RequestId,
    pub(crate) progress_token: Option<ProgressToken>,
    pub(crate) sink: Sink,
    pub(crate) client_log_level: Arc<AtomicU8>,
    pub(crate) storage: Storage,
    /// Where the client's answers to this call's questions arrive (session era,
    /// a client that declared some capability).
    pub(crate) peer: Option<Peer>,
    pub(crate) client_capabilities: Arc<serde_json::Map<String, Value>>,
    /// A 2026-07-28 request: the server sends the client no requests.
    pub(crate) modern: bool,
    /// A 2026-07-28 `tools/call`, `prompts/get` or `resources/read`: the client's
    /// answers so far and the questions asked (multi-round-trip requests).
    pub(crate) inputs: Option<Arc<crate::mrtr::Inputs>>,
    /// A tool that may run as a task (tasks extension).
    pub(crate) task: Option<Arc<crate::tasks::TaskSlot>>,
    pub(crate) client_request_timeout: Duration,
    /// Who sent the request (`[auth]`): its principal's name.
    pub(crate) principal: Option<Arc<str>>,
    /// Each principal's kv namespaces are its own (`[auth] shared_kv` off).
    pub(crate) kv_per_principal: bool,
    pub(crate) notifier: crate::notify::Notifier,
    pub(crate) blocking: Arc<tokio::sync::Semaphore>,
    pub(crate) log: Logger,
}

impl CallContext {
    /// What the client declared at `initialize` (`sampling`, `elicitation`, `roots`...).
    pub fn client_capabilities(&self) -> &serde_json::Map<String, Value> {
        &self.client_capabilities
    }

    /// Ask the client for input (`sampling/createMessage`, `elicitation/create`,
    /// `roots/list`) and await its answer. Fails at once if the client did not
    /// declare `capability` (-32021 in 2026-07-28, -32600 in the session era).
    ///
    /// The same call serves both protocol eras:
    /// - session era: a request to the client on this call's stream, answered within
    ///   `limits.client_request_timeout`;
    /// - 2026-07-28: if the retry of this request carries the answer, it is returned
    ///   at once; otherwise the call ends with an `input_required` result asking the
    ///   client (its questions are keyed `<method>-<n>` in ask order; see
    ///   [`CallContext::request_client_keyed`] to name them), and the client's retry
    ///   runs the handler again from the start. So code before an ask must be safe
    ///   to run more than once (read, compute; write only after the last ask), and
    ///   several questions asked at once (`futures::join!`) go to the client in one
    ///   round. Answers of earlier rounds ride in the sealed `requestState`.
    pub async fn request_client(
        &self,
        method: &str,
        capability: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let key = match (&self.task, &self.inputs) {
            (Some(slot), _) if slot.id.get().is_some() => {
                crate::mrtr::nth_key(method, slot.next_key.fetch_add(1, Ordering::Relaxed))
            }
            (_, Some(inputs)) => inputs.auto_key(method),
            _ => String::new(),
        };
        self.request_client_keyed(&key, method, capability, params)
            .await
    }

    /// [`CallContext::request_client`] with the key this question has in a
    /// 2026-07-28 `inputRequests` (ignored in the session era).
    pub async fn request_client_keyed(
        &self,
        key: &str,
        method: &str,
        capability: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        if let Some((slot, id)) = self
            .task
            .as_ref()
            .and_then(|s| s.id.get().map(|id| (s, id)))
        {
            // A running task asks through its record: `input_required` until
            // `tasks/update` answers.
            if !self.client_capabilities.contains_key(capability) {
                return Err(crate::protocol::era::missing_capability(
                    method,
                    &[capability],
                ));
            }
            return slot.tasks.ask(id, key, method, params).await;
        }
        if self.modern {
            if !self.client_capabilities.contains_key(capability) {
                return Err(crate::protocol::era::missing_capability(
                    method,
                    &[capability],
                ));
            }
            let Some(inputs) = &self.inputs else {
                return Err(RpcError::internal(format!(
                    "{method}: only tools/call, prompts/get and resources/read may ask the client for input"
                )));
            };
            match inputs.answer(key, method) {
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(malformed)) => inputs.fail(malformed),
                None => inputs.ask(key, method, params),
            }
            // The call ends here (input_required, or the malformed answer's error):
            // this handler run never resumes.
            return futures::future::pending().await;
        }
        if !self.client_capabilities.contains_key(capability) {
            // The session era defines no code of its own for this: the request that
            // led here needs what the client's `initialize` did not declare.
            return Err(RpcError::new(
                crate::protocol::code::INVALID_REQUEST,
                format!(
                    "{method} needs the client capability \"{capability}\", which the client did not declare at initialize"
                ),
            )
            .with_data(serde_json::json!({ "requiredCapabilities": { capability: {} } })));
        }
        let Some(peer) = &self.peer else {
            // Not reached: a session whose client declared a capability has a peer.
            return Err(RpcError::internal("this session cannot ask its client"));
        };
        let (id, rx) = peer.register();
        let sent = self.sink.send(
            crate::sink::FrameKind::Request,
            crate::protocol::jsonrpc::encode_request(&id, method, &params),
        );
        if !sent {
            peer.forget(&id);
            return Err(RpcError::internal("the client's stream is closed"));
        }
        let outcome = match actix_rt::time::timeout(self.client_request_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(RpcError::internal(
                "the session ended before the client answered",
            )),
            Err(_) => {
                peer.forget(&id);
                Err(RpcError::internal(format!(
                    "the client did not answer {method} within {} ms",
                    self.client_request_timeout.as_millis()
                )))
            }
        };
        let raw = outcome?;
        serde_json::from_str(raw.get()).map_err(RpcError::internal)
    }

    /// Turn this call into a task (tasks extension) if it may be one: when the tool
    /// supports tasks and the 2026-07-28 request declared the extension, the task is
    /// created durably and the call is answered at once with `resultType: "task"`;
    /// the handler goes on, and what it returns becomes the task's result. Otherwise
    /// nothing happens (the call is answered with the handler's result as usual), or
    /// -32021 for a tool that can only run as a task. Called for the handler before
    /// it starts, unless the tool is declared with
    /// `Tool::task_begun_by_handler`.
    /// Questions asked after it (`request_client`) park the task in `input_required`
    /// until `tasks/update` answers them.
    pub async fn begin_task(&self) -> Result<(), RpcError> {
        let Some(slot) = &self.task else {
            return Ok(());
        };
        if slot.id.get().is_some() {
            return Ok(());
        }
        if !slot.declared {
            return match slot.support {
                crate::tasks::TaskSupport::Required => {
                    Err(crate::tasks::missing_extension("this tool"))
                }
                _ => Ok(()),
            };
        }
        let Some(task) = slot.create().await? else {
            // Refused, and the tool may run without a task: it does.
            return Ok(());
        };
        let answer = crate::tasks::created(&task)?;
        let _ = slot.id.set(task.task_id.clone());
        let begin = slot.begin.lock().ok().and_then(|mut b| b.take());
        if let Some(begin) = begin {
            let _ = begin.send((task.task_id, Ok(answer)));
        }
        // Let the Call send the answer before the handler goes on.
        actix_rt::task::yield_now().await;
        Ok(())
    }

    /// Run blocking code (file IO, a subprocess, heavy CPU) off the event loop, on at
    /// most `limits.blocking_threads` threads; waits its turn within the call's timeout.
    /// A panic in `f` propagates, and is contained like any handler panic. If the call
    /// ends first (timeout, cancellation), `f` still runs to its end on its thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, RpcError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self
            .blocking
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RpcError::internal("the blocking pool is closed"))?;
        match tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(RpcError::internal(e)),
        }
    }

    /// Tell sessions subscribed to `uri` that the resource changed.
    pub fn resource_updated(&self, uri: &str) {
        self.notifier.resource_updated(uri);
    }

    /// Tell listening clients that a list (tools, prompts, resources) changed.
    pub fn list_changed(&self, change: crate::notify::Change) {
        self.notifier.changed(change);
    }

    /// Fail with -32021 (`requiredCapabilities`) unless the client declared every
    /// capability in `names` (at `initialize`, or on this 2026-07-28 request).
    pub fn require_client_capabilities(&self, what: &str, names: &[&str]) -> Result<(), RpcError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.client_capabilities.contains_key(*n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(crate::protocol::era::missing_capability(what, &missing))
        }
    }

    /// Ask the transport to close this request's SSE connection now; the call goes on
    /// and the client resumes with `Last-Event-ID` (SEP-1699). No-op on stdio.
    pub fn close_stream(&self) {
        self.sink
            .send(crate::sink::FrameKind::CloseStream, String::new());
    }

    /// The session this call belongs to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The id of the request being served.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// The server's storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The kv `namespace` as the caller sees it: with auth (`[auth]`), each
    /// principal has its own copy of every namespace (unless `[auth] shared_kv`),
    /// each within the namespace's quota; without auth, or over stdio, the
    /// namespace itself ([`Storage::kv`]). Tools that keep a client's data should
    /// use this rather than [`CallContext::storage`].
    pub fn kv(&self, namespace: &str) -> crate::storage::Kv {
        let scope = self.principal.as_deref().filter(|_| self.kv_per_principal);
        self.storage.kv_scoped(namespace, scope)
    }

    /// The name of the principal that sent the request (`[auth]`: for a bearer
    /// token, a fingerprint of its digest), if credentials were checked.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// A logger for the server's own log (stderr), tagged with this call.
    pub fn logger(&self) -> &Logger {
        &self.log
    }

    /// True when the client asked for progress (sent a `progressToken`).
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Send `notifications/progress` if the client asked for progress.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        if let Some(token) = &self.progress_token {
            let params = ProgressParams {
                progress_token: token,
                progress,
                total,
                message,
            };
            self.sink
                .notification(encode_notification(method::PROGRESS, Some(&params)));
        }
    }

    /// Send `notifications/message` to the client if `level` is at or above the level
    /// it set with `logging/setLevel`.
    pub fn notify_log(&self, level: LoggingLevel, logger: Option<&str>, data: Value) {
        if (level as u8) < self.client_log_level.load(Ordering::Relaxed) {
            return;
        }
        let params = LogMessageParams {
            level,
            logger,
            data: &data,
        };
        self.sink
            .notification(encode_notification(method::MESSAGE, Some(&params)));
    }
}
