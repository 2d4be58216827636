//! [`Error`]: what stops a server (a bad definition or configuration, storage, a
//! transport), each with the process exit code the binary maps it to.

use crate::config;
use crate::storage::StorageError;
use crate::tools::DuplicateName;

/// A failure that stops the process; `main` maps each to an exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration (exit 2).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Storage could not be opened or flushed (exit 3).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Two tools, resources, templates or prompts share a name (exit 2).
    #[error(transparent)]
    DuplicateName(#[from] DuplicateName),
    /// A transport failed (exit 1).
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::DuplicateName(_) => 2,
            Error::Storage(_) => 3,
            Error::Io(_) => 1,
        }
    }
}
