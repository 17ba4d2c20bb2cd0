//! The proxy's own metrics, rendered as Prometheus text by `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `oidc_proxy_requests_total` | counter | `outcome`: `authenticated`, `redirected`, `rejected`, `skipped`, `oauth2` (the proxy's `/oauth2/*` routes) |
//! | `oidc_proxy_request_duration_seconds` | histogram | `outcome`; until the response head, bodies stream on |
//! | `oidc_proxy_requests_in_flight` | gauge | |
//! | `oidc_proxy_upstream_responses_total` | counter | `upstream`, `class` (`1xx` … `5xx`) |
//! | `oidc_proxy_upstream_errors_total` | counter | `upstream`, `reason`: `connect`, `timeout`, `other` |
//! | `oidc_proxy_upstream_own_cookie_dropped_total` | counter | `upstream`: `Set-Cookie` headers of the upstream for the proxy's session cookie, dropped |
//!
//! The handles are registered once with the recorder of this proxy, not through the global
//! recorder, so that several proxies in one process (tests) keep their own numbers. The
//! binary also installs the recorder as the global one, so that metrics emitted by the
//! libraries through the `metrics` facade appear on the same page.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// How a request through the proxy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Reached the upstream with an identity.
    Authenticated,
    /// Sent to the login.
    Redirected,
    /// Refused (401, 403, 400, 503…).
    Rejected,
    /// A skip-auth route: forwarded without authentication.
    Skipped,
    /// One of the proxy's own `/oauth2/*` routes (login, callback, logout, userinfo).
    OAuth2,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Authenticated,
        Outcome::Redirected,
        Outcome::Rejected,
        Outcome::Skipped,
        Outcome::OAuth2,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Authenticated => "authenticated",
            Outcome::Redirected => "redirected",
            Outcome::Rejected => "rejected",
            Outcome::Skipped => "skipped",
            Outcome::OAuth2 => "oauth2",
        }
    }
}

/// Why an upstream request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpstreamError {
    /// No connection.
    Connect,
    /// No response head in time.
    Timeout,
    /// Anything else (a broken response, a closed connection).
    Other,
}

impl UpstreamError {
    const ALL: [UpstreamError; 3] = [
        UpstreamError::Connect,
        UpstreamError::Timeout,
        UpstreamError::Other,
    ];

    fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Other => "other",
        }
    }
}

const REQUESTS: &str = "oidc_proxy_requests_total";
const DURATION: &str = "oidc_proxy_request_duration_seconds";
const IN_FLIGHT: &str = "oidc_proxy_requests_in_flight";
const UPSTREAM_RESPONSES: &str = "oidc_proxy_upstream_responses_total";
const UPSTREAM_ERRORS: &str = "oidc_proxy_upstream_errors_total";
const OWN_COOKIE_DROPPED: &str = "oidc_proxy_upstream_own_cookie_dropped_total";

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The proxy's metric handles and the Prometheus page.
#[derive(Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
    /// Taken by [`take_recorder`](Self::take_recorder) to install it globally.
    recorder: Mutex<Option<PrometheusRecorder>>,
    requests: BTreeMap<Outcome, (Counter, Histogram)>,
    in_flight: Gauge,
    upstream_responses: BTreeMap<(String, u8), Counter>,
    upstream_errors: BTreeMap<(String, UpstreamError), Counter>,
    own_cookie_dropped: BTreeMap<String, Counter>,
}

static METADATA: Metadata<'static> = Metadata::new("oidc_proxy", Level::INFO, Some(module_path!()));

impl Metrics {
    /// Registers every metric, with a label set for each upstream in `upstreams`.
    pub fn new<'a>(upstreams: impl IntoIterator<Item = &'a str>) -> Self {
        let builder = PrometheusBuilder::new();
        // `set_buckets_for_metric` refuses only an empty bucket list.
        let builder =
            match builder.set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), &BUCKETS) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        recorder.describe_counter(
            REQUESTS.into(),
            None,
            "Requests through the proxy, by how they ended.".into(),
        );
        recorder.describe_histogram(
            DURATION.into(),
            Some(Unit::Seconds),
            "Time until the response head, by outcome.".into(),
        );
        recorder.describe_gauge(IN_FLIGHT.into(), None, "Requests being handled.".into());
        recorder.describe_counter(
            UPSTREAM_RESPONSES.into(),
            None,
            "Responses from upstreams, by status class.".into(),
        );
        recorder.describe_counter(
            UPSTREAM_ERRORS.into(),
            None,
            "Upstream requests that got no response.".into(),
        );
        recorder.describe_counter(
            OWN_COOKIE_DROPPED.into(),
            None,
            "Set-Cookie headers of upstreams for the proxy's own session cookie, dropped.".into(),
        );
        let key = |name: &'static str, labels: Vec<Label>| Key::from_parts(name, labels);
        let requests = Outcome::ALL
            .iter()
            .map(|o| {
                let labels = vec![Label::new("outcome", o.as_str())];
                (
                    *o,
                    (
                        recorder.register_counter(&key(REQUESTS, labels.clone()), &METADATA),
                        recorder.register_histogram(&key(DURATION, labels), &METADATA),
                    ),
                )
            })
            .collect();
        let in_flight = recorder.register_gauge(&key(IN_FLIGHT, Vec::new()), &METADATA);
        let mut upstream_responses = BTreeMap::new();
        let mut upstream_errors = BTreeMap::new();
        let mut own_cookie_dropped = BTreeMap::new();
        for name in upstreams {
            own_cookie_dropped.insert(
                name.to_owned(),
                recorder.register_counter(
                    &key(
                        OWN_COOKIE_DROPPED,
                        vec![Label::new("upstream", name.to_owned())],
                    ),
                    &METADATA,
                ),
            );
            for class in 1..=5u8 {
                let labels = vec![
                    Label::new("upstream", name.to_owned()),
                    Label::new("class", format!("{class}xx")),
                ];
                upstream_responses.insert(
                    (name.to_owned(), class),
                    recorder.register_counter(&key(UPSTREAM_RESPONSES, labels), &METADATA),
                );
            }
            for reason in UpstreamError::ALL {
                let labels = vec![
                    Label::new("upstream", name.to_owned()),
                    Label::new("reason", reason.as_str()),
                ];
                upstream_errors.insert(
                    (name.to_owned(), reason),
                    recorder.register_counter(&key(UPSTREAM_ERRORS, labels), &METADATA),
                );
            }
        }
        Self {
            handle,
            recorder: Mutex::new(Some(recorder)),
            requests,
            in_flight,
            upstream_responses,
            upstream_errors,
            own_cookie_dropped,
        }
    }

    /// The recorder, once: the binary installs it as the global recorder.
    pub fn take_recorder(&self) -> Option<PrometheusRecorder> {
        self.recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The Prometheus text page.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; run now and then so that memory stays
    /// bounded between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Counts one request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.increment(1.0);
        InFlight(self.in_flight.clone())
    }

    /// Records a finished request.
    pub fn request(&self, outcome: Outcome, elapsed: Duration) {
        if let Some((counter, histogram)) = self.requests.get(&outcome) {
            counter.increment(1);
            histogram.record(elapsed.as_secs_f64());
        }
    }

    /// Records an upstream response status.
    pub fn upstream_response(&self, upstream: &str, status: http::StatusCode) {
        let class = u8::try_from(status.as_u16() / 100).unwrap_or(5).clamp(1, 5);
        if let Some(counter) = self.upstream_responses.get(&(upstream.to_owned(), class)) {
            counter.increment(1);
        }
    }

    /// Records a `Set-Cookie` of `upstream` for the proxy's own cookie, dropped.
    pub fn own_cookie_dropped(&self, upstream: &str) {
        if let Some(counter) = self.own_cookie_dropped.get(upstream) {
            counter.increment(1);
        }
    }

    /// Records an upstream failure.
    pub fn upstream_error(&self, upstream: &str, reason: UpstreamError) {
        if let Some(counter) = self.upstream_errors.get(&(upstream.to_owned(), reason)) {
            counter.increment(1);
        }
    }
}

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new(["app"]);
        m.request(Outcome::Rejected, Duration::from_millis(3));
        m.upstream_error("app", UpstreamError::Connect);
        m.upstream_response("app", http::StatusCode::OK);
        m.own_cookie_dropped("app");
        {
            let _guard = m.in_flight();
        }
        let text = m.render();
        assert!(
            text.contains("oidc_proxy_requests_total{outcome=\"rejected\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("oidc_proxy_requests_total{outcome=\"authenticated\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "oidc_proxy_upstream_errors_total{upstream=\"app\",reason=\"connect\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("oidc_proxy_upstream_responses_total{upstream=\"app\",class=\"2xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("oidc_proxy_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("oidc_proxy_requests_in_flight 0"), "{text}");
        assert!(
            text.contains("oidc_proxy_upstream_own_cookie_dropped_total{upstream=\"app\"} 1"),
            "{text}"
        );
        assert!(m.take_recorder().is_some());
        assert!(m.take_recorder().is_none());
    }
}
