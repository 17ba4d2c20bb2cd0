//! `[server]`: limits on slow or idle clients.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, err, positive_secs};

/// `[server]`: limits on slow or idle clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds a connection may take to send a request head (default 10).
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request body may take to arrive after its head (default 30; then 408).
    pub body_read_timeout_secs: Option<u64>,
    /// Connections served at once (default 4096).
    pub max_connections: Option<usize>,
    /// Seconds between the checks of a websocket tunnel's session (default 30): a tunnel
    /// opened with a session closes once the session is gone.
    pub websocket_session_check_secs: Option<u64>,
}

impl ServerConfig {
    /// The connection limits and the interval of the websocket session checks.
    pub(super) fn validate(&self) -> Result<(server_limits::Limits, Duration), ConfigError> {
        let defaults = server_limits::Limits::default();
        let limits = server_limits::Limits::new(
            match self.header_read_timeout_secs {
                Some(secs) => positive_secs("server.header_read_timeout_secs", secs)?,
                None => defaults.header_read_timeout,
            },
            match self.body_read_timeout_secs {
                Some(secs) => positive_secs("server.body_read_timeout_secs", secs)?,
                None => defaults.body_read_timeout,
            },
            match self.max_connections {
                Some(0) => return err("server.max_connections: must be at least 1"),
                Some(n) => n,
                None => defaults.max_connections,
            },
        );

        let websocket_session_check = positive_secs(
            "server.websocket_session_check_secs",
            self.websocket_session_check_secs.unwrap_or(30),
        )?;
        Ok((limits, websocket_session_check))
    }
}
