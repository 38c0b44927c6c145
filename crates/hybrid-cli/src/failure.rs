//! A command's failure: the one-line message and the exit code.

use hybrid_platform::{ConfigError, PlatformError};
use hybrid_store::StoreError;

use crate::exit_code;

/// Why a command failed.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl Failure {
    /// A failure with this code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<PlatformError> for Failure {
    fn from(e: PlatformError) -> Self {
        Failure::new(exit_code::for_platform_error(&e), e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new(exit_code::STORE, format!("database: {e}"))
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::new(exit_code::CONFIG, e.to_string())
    }
}
