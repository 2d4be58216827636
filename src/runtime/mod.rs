//! The runtime: the actors that serve requests (DESIGN §2) and the service they
//! share. Private to the crate: an embedder sees [`crate::Server`], a handler sees
//! [`crate::handler::CallContext`], and neither sees an actor.
//!
//! ```text
//! Root                 one per process: registry, caps, reaping, restore, drain (root.rs)
//! └── Session          one per client session, stdio connection, HTTP worker
//!     │                (stateless, 2026-07-28) or listen stream (session/)
//!     └── Call         one per in-flight tools/call, resources/read, prompts/get:
//!                      timeout, cancellation, panic containment (call.rs)
//! Service              what every actor reads: registries, storage, limits, telemetry
//! ```

pub(crate) mod call;
pub(crate) mod root;
pub(crate) mod service;
pub(crate) mod session;
