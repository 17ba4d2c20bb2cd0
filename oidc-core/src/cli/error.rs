//! What can go wrong in a command-line login.

use std::path::PathBuf;

use crate::error::{ConfigError, FlowError};

/// A command-line login, token file or logout step failed.
///
/// No variant carries a token; the messages are fit for the user's terminal (print the
/// [`source`](std::error::Error::source) chain for the details).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A step at the provider failed (the callback did not match the login, the provider
    /// refused, an ID token was invalid, the provider was unreachable…).
    #[error("the login at the provider failed")]
    Flow(#[source] FlowError),
    /// The client could not be configured (the loopback redirect URI).
    #[error("the client configuration is invalid")]
    Config(#[source] ConfigError),
    /// Reading or writing a file, or the loopback listener, failed.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token file can be read by other users: it is not read. Restrict it (`chmod 600`)
    /// or log in again.
    #[error(
        "the token file {path:?} is readable by other users (mode {mode:04o}); \
         run `chmod 600` on it or log in again"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token file is not a token file of this library.
    #[error("the token file is invalid: {0}")]
    InvalidFile(&'static str),
    /// There are no usable tokens: log in (again).
    #[error("not logged in: {0}")]
    LoginRequired(&'static str),
    /// The browser did not come back to the loopback redirect in time.
    #[error("the login was not completed in time")]
    Timeout,
    /// The URL could not be shown or the browser not opened.
    #[error("the browser could not be opened")]
    Browser(#[source] std::io::Error),
}

impl From<FlowError> for CliError {
    fn from(e: FlowError) -> Self {
        Self::Flow(e)
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}
