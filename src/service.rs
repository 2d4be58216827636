//! The service: everything a session needs to answer requests, shared read-only by
//! every session and call (`Arc<Service>`).

use slog::Logger;

use crate::config::Limits;
use crate::protocol::mcp::Implementation;
use crate::storage::Storage;
use crate::tools::ToolRegistry;

/// Who the server says it is in `initialize`.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Programmatic name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Optional usage hints for the model.
    pub instructions: Option<String>,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            name: "emcee".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: None,
        }
    }
}

impl ServerInfo {
    pub(crate) fn implementation(&self) -> Implementation {
        Implementation {
            name: self.name.clone(),
            version: self.version.clone(),
            title: None,
        }
    }
}

/// A server definition: tools, storage, limits, logger.
#[derive(Debug)]
pub struct Service {
    /// Server identity.
    pub info: ServerInfo,
    /// Registered tools.
    pub tools: ToolRegistry,
    /// The database.
    pub storage: Storage,
    /// Runtime limits.
    pub limits: Limits,
    /// Root logger of the process.
    pub log: Logger,
}
