//! What a server built on emcee needs, in one import: `use emcee::prelude::*;`.

pub use crate::config::{HttpConfig, Limits, LogLevel, MrtrConfig, StorageConfig};
pub use crate::handler::{CallContext, Elicitation};
pub use crate::notify::{Change, Notifier};
pub use crate::prompts::Prompt;
pub use crate::protocol::prompt::{GetPromptResult, PromptMessage};
pub use crate::protocol::resource::ResourceContents;
pub use crate::protocol::ToolAnnotations;
pub use crate::protocol::{CallToolResult, Content, RpcError};
pub use crate::protocol::{Root, SamplingMessage, SamplingRequest, SamplingResult};
pub use crate::resources::{Resource, Template};
pub use crate::server::{
    HttpOptions, MountOptions, Mounted, Running, Server, ServerBuilder, StorageOptions, Transport,
};
pub use crate::tools::TaskSupport;
pub use crate::tools::{DuplicateName, Json, Tool, ToolError, ToolOutcome};
pub use crate::{block_on, shutdown_signal, Error};

// The derive macros expand to paths in `serde` and `schemars`: a crate deriving them
// depends on both itself (see the crate docs).
pub use schemars::JsonSchema;
pub use serde::{Deserialize, Serialize};
