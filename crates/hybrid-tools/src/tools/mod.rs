//! The built-in tools.

mod bash;
mod files;
mod http;
mod search;

pub use bash::BashTool;
pub use files::{EditFileTool, ReadFileTool, WriteFileTool};
pub use http::{HttpRequestTool, NotifyTool};
pub use search::{GlobTool, GrepTool};
