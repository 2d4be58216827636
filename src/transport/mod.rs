//! Transports: move bytes between a client and its Session actor.
//!
//! A transport reads payloads, parses them (`protocol::jsonrpc::parse`), hands them to
//! a session with the [`crate::sink::Sink`] where the answers go, and writes the
//! frames it receives. It holds no protocol state of its own.

pub mod admin;
pub mod answers;
pub mod connections;
pub mod exchange;
pub mod hosts;
pub mod http;
pub mod modern;
pub mod rate;
pub mod sse;
pub mod state;
pub mod stdio;
