//! The clock and the leeway of the time checks (`exp`, `nbf`, `iat`, `auth_time`), shared by
//! the access token verifier and the login flow.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time, for tests with a fixed clock.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The clock skew tolerated by default, in seconds.
pub(crate) const DEFAULT_LEEWAY_SECS: i64 = 60;

/// Seconds since the Unix epoch by `clock`, or by the system clock.
pub(crate) fn unix_now(clock: Option<&Clock>) -> i64 {
    unix_secs(clock.map_or_else(SystemTime::now, |c| c()))
}

/// `t` as seconds since the Unix epoch (0 before it, saturating after `i64::MAX`).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A leeway as the whole seconds the time checks add and subtract (saturating).
pub(crate) fn leeway_secs(leeway: Duration) -> i64 {
    i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX)
}
