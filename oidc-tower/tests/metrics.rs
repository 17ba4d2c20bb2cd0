//! The metrics of the layers (feature `metrics`), read back through a debugging recorder:
//! request outcomes and reasons, in-flight gauge, duration histogram, JWKS fetches, logins,
//! refreshes and logouts.

#![cfg(feature = "metrics")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
mod login_common;

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use common::{bearer, bearer_setup, request, send};

/// Running totals: the debugging recorder hands out each value once (a snapshot resets
/// counters and gauges to 0 and drains histograms), so snapshots are summed here.
struct Totals {
    snap: Snapshotter,
    sums: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Totals {
    /// The counter or gauge `name` with exactly these labels, or its histogram's sample
    /// count (0 when absent).
    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        for (key, _, _, v) in self.snap.snapshot().into_vec() {
            let key = key.key();
            let mut got: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            got.sort_unstable();
            let add = match v {
                DebugValue::Counter(c) => c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            *self.sums.entry((key.name().to_owned(), got)).or_default() += add;
        }
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort_unstable();
        self.sums
            .get(&(name.to_owned(), want))
            .copied()
            .unwrap_or_default()
    }

    /// The total of `oidc_requests_total` with this `outcome` and `reason`.
    fn requests(&mut self, outcome: &str, reason: &str) -> f64 {
        self.get(
            "oidc_requests_total",
            &[("outcome", outcome), ("reason", reason)],
        )
    }
}

#[tokio::test]
async fn layers_count_outcomes_fetches_logins_refreshes_and_logouts() {
    let recorder = DebuggingRecorder::new();
    let mut m = Totals {
        snap: recorder.snapshotter(),
        sums: HashMap::new(),
    };
    recorder.install().unwrap();

    // Bearer: one accepted, one without a token, one invalid.
    let (tp, _calls, svc) = bearer_setup().await;
    let ok = send(&svc, bearer(&tp.token().sign())).await;
    assert_eq!(ok.status(), 200);
    let missing = send(&svc, request(&[])).await;
    assert_eq!(missing.status(), 401);
    let invalid = send(&svc, bearer(&tp.token().audience("someone-else").sign())).await;
    assert_eq!(invalid.status(), 401);

    assert_eq!(m.requests("authenticated", "bearer"), 1.0);
    assert_eq!(m.requests("rejected", "missing_token"), 1.0);
    assert_eq!(m.requests("rejected", "invalid_token"), 1.0);
    assert_eq!(m.get("oidc_jwks_fetches_total", &[("outcome", "ok")]), 1.0);
    assert!(m.get("oidc_request_duration_seconds", &[("layer", "bearer")]) >= 2.0);
    assert_eq!(
        m.get("oidc_requests_in_flight", &[("layer", "bearer")]),
        0.0
    );

    // Login: a redirect, a login, a refresh, an authenticated request and a logout.
    let app = login_common::Builder::new()
        .layer(|l| l.with_refresh_margin(Duration::from_secs(3600)))
        .start()
        .await;
    let mut anonymous = login_common::Jar::default();
    let res = app.nav("/app", &mut anonymous).await;
    assert_eq!(res.status, 303);
    assert_eq!(m.requests("redirected", "login"), 1.0);
    let mut jar = app.login().await;
    assert_eq!(m.get("oidc_logins_total", &[("outcome", "ok")]), 1.0);
    app.assert_logged_in(&jar).await;
    assert_eq!(m.requests("authenticated", "session"), 1.0);
    assert_eq!(
        m.get("oidc_token_refreshes_total", &[("outcome", "ok")]),
        1.0
    );
    let logout = app.logout(&mut jar).await;
    assert_eq!(logout.status, 303);
    assert_eq!(m.get("oidc_logouts_total", &[("kind", "rp")]), 1.0);
    app.assert_not_logged_in(&jar).await;
    assert_eq!(m.requests("rejected", "unauthenticated"), 1.0);
    assert_eq!(m.get("oidc_requests_in_flight", &[("layer", "login")]), 0.0);
    assert!(m.get("oidc_request_duration_seconds", &[("layer", "login")]) >= 4.0);
}
