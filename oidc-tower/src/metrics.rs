//! Metrics through the `metrics` facade (feature `metrics`); without the feature every
//! function here is empty and compiles away.
//!
//! The names and labels are listed in the crate docs ("Metrics").

use crate::error::{AuthError, AuthErrorKind};

/// The `reason` label of a rejection.
fn reason(kind: AuthErrorKind) -> &'static str {
    match kind {
        AuthErrorKind::MissingToken => "missing_token",
        AuthErrorKind::InvalidRequest => "invalid_request",
        AuthErrorKind::InvalidToken => "invalid_token",
        AuthErrorKind::InsufficientScope => "insufficient_scope",
        AuthErrorKind::Unavailable => "unavailable",
        AuthErrorKind::MissingLayer => "missing_layer",
        AuthErrorKind::LoginRequired => "login_required",
    }
}

/// A request refused by a layer.
pub(crate) fn rejected(error: &AuthError) {
    outcome("rejected", reason(error.kind()));
}

/// A request outcome (see the module table).
#[cfg(feature = "metrics")]
pub(crate) fn outcome(outcome: &'static str, reason: &'static str) {
    metrics::counter!("oidc_requests_total", "outcome" => outcome, "reason" => reason).increment(1);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn outcome(_outcome: &'static str, _reason: &'static str) {}

/// Counts `name` with one label.
#[cfg(feature = "metrics")]
pub(crate) fn event(name: &'static str, label: &'static str, value: &'static str) {
    metrics::counter!(name, label => value).increment(1);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn event(_name: &'static str, _label: &'static str, _value: &'static str) {}

/// Held while a request is inside a layer: the in-flight gauge, and the duration histogram
/// when dropped.
pub(crate) struct InFlight {
    #[cfg(feature = "metrics")]
    layer: &'static str,
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl InFlight {
    #[cfg(feature = "metrics")]
    pub(crate) fn new(layer: &'static str) -> Self {
        metrics::gauge!("oidc_requests_in_flight", "layer" => layer).increment(1.0);
        Self {
            layer,
            start: std::time::Instant::now(),
        }
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new(_layer: &'static str) -> Self {
        Self {}
    }
}

#[cfg(feature = "metrics")]
impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("oidc_requests_in_flight", "layer" => self.layer).decrement(1.0);
        metrics::histogram!("oidc_request_duration_seconds", "layer" => self.layer)
            .record(self.start.elapsed().as_secs_f64());
    }
}
