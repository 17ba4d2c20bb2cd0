//! A correctness load test on loopback (issue #7, the Load part): one quickstart against the
//! real OpenID Provider, many concurrent clients in bearer and session mode, and a storm of
//! unknown `kid`s in the middle of the run. Not a benchmark: nothing is asserted about
//! throughput or latency (`benches/src/bin/load.rs` measures those).
//!
//! Set-up: the provider (`LoginProvider`, so that the app's callback is registered), one
//! quickstart with `OIDC_UNKNOWN_KID_COOLDOWN_SECS` = [`COOLDOWN_SECS`], [`SESSIONS`] users
//! logged in through the provider's own login and consent pages (scripted user agent), and a
//! few real `client_credentials` tokens of `svc-reader` (`api:read`) and `svc-writer`
//! (`api:read api:write`).
//!
//! Load: [`WORKERS`] concurrent tasks for [`RUN`] (or at most [`MAX_REQUESTS`] requests), each
//! request of a [`Class`] picked at random with the weights of [`Class::weight`]:
//!
//! | class | request | expected answer |
//! | --- | --- | --- |
//! | `bearer_read_me` | reader token, `/api/me` | 200, `sub` = `client_id` = `svc-reader`, scopes `api:read` |
//! | `bearer_read_admin` | reader token, `/api/admin` | 403 `insufficient_scope` |
//! | `bearer_write_me` | writer token, `/api/me` | 200, `sub` = `svc-writer`, scopes `api:read api:write` |
//! | `bearer_write_admin` | writer token, `/api/admin` | 200, `sub` = `svc-writer`, `admin` |
//! | `session` | a user's session cookie, `/me` (JSON) | 200 with *that* user's `sub`, `email`, `iss` |
//! | `anonymous_api` | nothing, `/api/me` or `/api/admin` | 401 `Bearer` without `error` |
//! | `anonymous_session` | nothing, `/me` (JSON) | 401, no redirect |
//! | `forged_session` | a random session id, `/me` (JSON) | 401, no redirect |
//! | `tampered` | a real token with a flipped character | 401 `invalid_token` |
//! | `unknown_kid` | middle third only: a real token whose header `kid` is random | 401 `invalid_token` |
//!
//! Checks: zero wrong answers (any status, challenge or body other than the expected one; a
//! session answered with another user's `sub` is one), zero 5xx (the designed 503 only comes
//! when the keys are unavailable, which they never are here), zero transport errors; JWKS
//! fetches during the run (`oidc_jwks_fetches_total` of `/metrics`, before and after) at least
//! one (the storm reached the refetch path) and at most the number of cooldown windows in the
//! run + 1; the quickstart's resident memory (`VmRSS`) at the end at most [`RSS_GROWTH_KIB`]
//! above its value after the first third (the warm-up). The figures are printed and written to
//! `target/load-results.txt`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_e2e::load::{
    Rng, SESSION_COOKIE, find_quickstart_pid, log_in, metric_samples, metric_sum, rss_kib,
    with_header_kid,
};
use oidc_e2e::{
    LoginProvider, OpLogsOnPanic, Quickstart, RealProvider, clients, flip_char_in_segment,
    http_client, parse_challenge, target_dir,
};
use serde_json::Value;

/// Users logged in before the load, one session each.
const SESSIONS: usize = 50;
/// Logins run at the same time while setting up.
const LOGIN_CONCURRENCY: usize = 8;
/// Concurrent clients of the load.
const WORKERS: usize = 64;
/// How long the load runs; the storm of unknown `kid`s is its middle third.
const RUN: Duration = Duration::from_secs(21);
/// The most requests the load sends (a bound, far above what a debug quickstart serves in
/// [`RUN`] on loopback).
const MAX_REQUESTS: u64 = 500_000;
/// The quickstart's `OIDC_UNKNOWN_KID_COOLDOWN_SECS`: [`RUN`] spans several cooldowns.
const COOLDOWN_SECS: u64 = 5;
/// Distinct real tokens per client (`svc-reader`, `svc-writer`).
const TOKENS_PER_CLIENT: usize = 3;
/// The most the quickstart's resident memory may grow from the warm-up to the end (KiB).
const RSS_GROWTH_KIB: u64 = 32 * 1024;
/// Wrong answers quoted in full in the report.
const SAMPLES: usize = 10;

/// A kind of request, with its expected answer (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    BearerReadMe,
    BearerReadAdmin,
    BearerWriteMe,
    BearerWriteAdmin,
    Session,
    AnonymousApi,
    AnonymousSession,
    ForgedSession,
    Tampered,
    UnknownKid,
}

impl Class {
    const ALL: [Self; 10] = [
        Self::BearerReadMe,
        Self::BearerReadAdmin,
        Self::BearerWriteMe,
        Self::BearerWriteAdmin,
        Self::Session,
        Self::AnonymousApi,
        Self::AnonymousSession,
        Self::ForgedSession,
        Self::Tampered,
        Self::UnknownKid,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::BearerReadMe => "bearer_read_me",
            Self::BearerReadAdmin => "bearer_read_admin",
            Self::BearerWriteMe => "bearer_write_me",
            Self::BearerWriteAdmin => "bearer_write_admin",
            Self::Session => "session",
            Self::AnonymousApi => "anonymous_api",
            Self::AnonymousSession => "anonymous_session",
            Self::ForgedSession => "forged_session",
            Self::Tampered => "tampered",
            Self::UnknownKid => "unknown_kid",
        }
    }

    /// The weight of the class in the mix; the unknown `kid`s only during the storm, where
    /// they are half of the requests.
    fn weight(self, storm: bool) -> usize {
        match self {
            Self::Session => 30,
            Self::BearerReadMe => 12,
            Self::BearerReadAdmin | Self::BearerWriteMe | Self::BearerWriteAdmin => 8,
            Self::AnonymousApi | Self::AnonymousSession => 5,
            Self::ForgedSession => 4,
            Self::Tampered => 10,
            Self::UnknownKid if storm => 90,
            Self::UnknownKid => 0,
        }
    }

    fn pick(rng: &mut Rng, storm: bool) -> Self {
        let total: usize = Self::ALL.iter().map(|c| c.weight(storm)).sum();
        let mut n = rng.below(total);
        for class in Self::ALL {
            let w = class.weight(storm);
            if n < w {
                return class;
            }
            n -= w;
        }
        unreachable!("weights sum to {total}")
    }
}

/// What the load needs: the app's URL and the credentials of each class.
struct Fixture {
    base_url: String,
    issuer: String,
    readers: Vec<String>,
    writers: Vec<String>,
    tampered: Vec<String>,
    /// `(account, session cookie)` of each logged-in user.
    sessions: Vec<(String, String)>,
}

/// The answer to one request, as judged.
enum Outcome {
    Right,
    /// Not the expected answer (a 5xx is counted apart).
    Wrong(String),
    ServerError(String),
    Transport(String),
}

#[derive(Debug, Default, Clone, Copy)]
struct ClassStats {
    requests: u64,
    right: u64,
    wrong: u64,
    server_errors: u64,
    transport_errors: u64,
}

impl ClassStats {
    fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.right += other.right;
        self.wrong += other.wrong;
        self.server_errors += other.server_errors;
        self.transport_errors += other.transport_errors;
    }
}

#[derive(Debug, Default)]
struct Tally {
    by_class: BTreeMap<Class, ClassStats>,
    /// The first wrong answers, 5xx and transport errors, described.
    samples: Vec<String>,
}

impl Tally {
    fn record(&mut self, class: Class, outcome: Outcome) {
        let stats = self.by_class.entry(class).or_default();
        stats.requests += 1;
        let problem = match outcome {
            Outcome::Right => {
                stats.right += 1;
                return;
            }
            Outcome::Wrong(what) => {
                stats.wrong += 1;
                format!("wrong answer: {what}")
            }
            Outcome::ServerError(what) => {
                stats.server_errors += 1;
                format!("5xx: {what}")
            }
            Outcome::Transport(what) => {
                stats.transport_errors += 1;
                format!("transport error: {what}")
            }
        };
        if self.samples.len() < SAMPLES {
            self.samples.push(format!("[{}] {problem}", class.name()));
        }
    }

    fn merge(&mut self, other: Self) {
        for (class, stats) in other.by_class {
            self.by_class.entry(class).or_default().add(&stats);
        }
        for sample in other.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(sample);
            }
        }
    }

    fn total(&self) -> ClassStats {
        let mut total = ClassStats::default();
        for stats in self.by_class.values() {
            total.add(stats);
        }
        total
    }
}

/// The answer as received.
struct Answer {
    status: u16,
    challenge: Option<String>,
    location: Option<String>,
    content_type: String,
    body: String,
}

impl Answer {
    fn describe(&self, path: &str) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!(
            "GET {path} -> {} (WWW-Authenticate {:?}, Location {:?}, Content-Type {:?}) {body}",
            self.status, self.challenge, self.location, self.content_type
        )
    }

    fn challenge_error(&self) -> Result<Option<String>, String> {
        let header = self
            .challenge
            .as_deref()
            .ok_or("no WWW-Authenticate challenge")?;
        let (scheme, params) = parse_challenge(header);
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!("challenge scheme {scheme:?}"));
        }
        Ok(params.get("error").cloned())
    }

    fn json(&self) -> Result<Value, String> {
        if !self.content_type.starts_with("application/json") {
            return Err("not JSON".to_owned());
        }
        serde_json::from_str(&self.body).map_err(|e| format!("bad JSON: {e}"))
    }
}

/// Expects 200 with a JSON body, and returns it.
fn expect_json(answer: &Answer) -> Result<Value, String> {
    if answer.status != 200 {
        return Err("status".to_owned());
    }
    if answer.challenge.is_some() {
        return Err("challenge on a 200".to_owned());
    }
    answer.json()
}

/// Expects a 401 from the bearer layer with this `error` (`None`: without one).
fn expect_bearer_401(answer: &Answer, error: Option<&str>) -> Result<(), String> {
    if answer.status != 401 {
        return Err("status".to_owned());
    }
    if answer.location.is_some() {
        return Err("redirect".to_owned());
    }
    let got = answer.challenge_error()?;
    if got.as_deref() != error {
        return Err(format!("challenge error {got:?}, expected {error:?}"));
    }
    if answer.body.contains("eyJ") {
        return Err("body echoes a token".to_owned());
    }
    Ok(())
}

/// Expects a 401 from the login layer to an API call without a valid session.
fn expect_session_401(answer: &Answer) -> Result<(), String> {
    if answer.status != 401 {
        return Err("status".to_owned());
    }
    if answer.location.is_some() {
        return Err("redirect".to_owned());
    }
    Ok(())
}

fn scopes(body: &Value) -> Result<Vec<&str>, String> {
    let mut scopes: Vec<&str> = body["scopes"]
        .as_array()
        .ok_or("`scopes` is not an array")?
        .iter()
        .map(|s| s.as_str().ok_or("a scope is not a string"))
        .collect::<Result<_, _>>()?;
    scopes.sort_unstable();
    Ok(scopes)
}

/// Expects `/api/me` for the client `client` with exactly `expected` scopes.
fn expect_api_me(
    answer: &Answer,
    fx: &Fixture,
    client: &str,
    expected: &[&str],
) -> Result<(), String> {
    let body = expect_json(answer)?;
    if body["sub"] != client || body["client_id"] != client {
        return Err(format!("sub/client_id not {client}"));
    }
    if body["iss"] != fx.issuer.as_str() {
        return Err("iss".to_owned());
    }
    let scopes = scopes(&body)?;
    if scopes != expected {
        return Err(format!("scopes {scopes:?}, expected {expected:?}"));
    }
    Ok(())
}

/// Sends one request of `class` and judges the answer.
async fn one(client: &reqwest::Client, fx: &Fixture, class: Class, rng: &mut Rng) -> Outcome {
    let pick = |rng: &mut Rng, v: &[String]| v[rng.below(v.len())].clone();
    let either = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            "/api/me"
        } else {
            "/api/admin"
        }
    };
    let mut session = None;
    let (path, authorization, cookie) = match class {
        Class::BearerReadMe => ("/api/me", Some(pick(rng, &fx.readers)), None),
        Class::BearerReadAdmin => ("/api/admin", Some(pick(rng, &fx.readers)), None),
        Class::BearerWriteMe => ("/api/me", Some(pick(rng, &fx.writers)), None),
        Class::BearerWriteAdmin => ("/api/admin", Some(pick(rng, &fx.writers)), None),
        Class::Session => {
            let (account, cookie) = &fx.sessions[rng.below(fx.sessions.len())];
            session = Some(account.as_str());
            ("/me", None, Some(cookie.clone()))
        }
        Class::AnonymousApi => (either(rng), None, None),
        Class::AnonymousSession => ("/me", None, None),
        Class::ForgedSession => {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            ("/me", None, Some(URL_SAFE_NO_PAD.encode(id)))
        }
        Class::Tampered => ("/api/me", Some(pick(rng, &fx.tampered)), None),
        Class::UnknownKid => {
            let real = if rng.below(2) == 0 {
                pick(rng, &fx.readers)
            } else {
                pick(rng, &fx.writers)
            };
            (either(rng), Some(with_header_kid(&real, &rng.kid())), None)
        }
    };
    let mut req = client
        .get(format!("{}{path}", fx.base_url))
        .header("accept", "application/json");
    if let Some(token) = &authorization {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(cookie) = &cookie {
        req = req.header("cookie", format!("{SESSION_COOKIE}={cookie}"));
    }
    let res = match req.send().await {
        Ok(res) => res,
        Err(e) => return Outcome::Transport(format!("GET {path}: {e}")),
    };
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
    };
    let status = res.status().as_u16();
    let challenge = header("www-authenticate");
    let location = header("location");
    let content_type = header("content-type").unwrap_or_default();
    let body = match res.text().await {
        Ok(body) => body,
        Err(e) => return Outcome::Transport(format!("GET {path}: reading the body: {e}")),
    };
    let answer = Answer {
        status,
        challenge,
        location,
        content_type,
        body,
    };
    if answer.status >= 500 {
        return Outcome::ServerError(answer.describe(path));
    }
    let (reader, _) = clients::READER;
    let (writer, _) = clients::WRITER;
    let verdict = match class {
        Class::BearerReadMe => expect_api_me(&answer, fx, reader, &["api:read"]),
        Class::BearerWriteMe => expect_api_me(&answer, fx, writer, &["api:read", "api:write"]),
        Class::BearerReadAdmin => {
            if answer.status == 403 {
                match answer.challenge_error() {
                    Ok(Some(e)) if e == "insufficient_scope" => Ok(()),
                    Ok(e) => Err(format!("challenge error {e:?}")),
                    Err(e) => Err(e),
                }
            } else {
                Err("status".to_owned())
            }
        }
        Class::BearerWriteAdmin => expect_json(&answer).and_then(|body| {
            if body["sub"] == writer && body["admin"] == true {
                Ok(())
            } else {
                Err("not svc-writer's admin answer".to_owned())
            }
        }),
        Class::Session => {
            let account = session.expect("a session request has an account");
            expect_json(&answer).and_then(|body| {
                if body["sub"] != account {
                    Err(format!("sub {} for the session of {account}", body["sub"]))
                } else if body["email"] != format!("{account}@example.com") {
                    Err(format!("email {} for {account}", body["email"]))
                } else if body["iss"] != fx.issuer.as_str() {
                    Err("iss".to_owned())
                } else {
                    Ok(())
                }
            })
        }
        Class::AnonymousApi => expect_bearer_401(&answer, None),
        Class::AnonymousSession | Class::ForgedSession => expect_session_401(&answer),
        Class::Tampered | Class::UnknownKid => expect_bearer_401(&answer, Some("invalid_token")),
    };
    match verdict {
        Ok(()) => Outcome::Right,
        Err(why) => Outcome::Wrong(format!("{why}: {}", answer.describe(path))),
    }
}

/// One client of the load: requests until the deadline or the request cap.
async fn worker(
    id: u64,
    client: reqwest::Client,
    fx: Arc<Fixture>,
    start: Instant,
    issued: Arc<AtomicU64>,
) -> Tally {
    let mut rng = Rng::new(id);
    let mut tally = Tally::default();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= RUN || issued.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            return tally;
        }
        let storm = elapsed >= RUN / 3 && elapsed < RUN * 2 / 3;
        let class = Class::pick(&mut rng, storm);
        let outcome = one(&client, &fx, class, &mut rng).await;
        tally.record(class, outcome);
    }
}

/// Samples the quickstart's `VmRSS` every 250 ms until `stop`; returns `(seconds, KiB)`.
async fn sample_rss(pid: u32, start: Instant, stop: Arc<AtomicBool>) -> Vec<(f64, u64)> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(kib) = rss_kib(pid) {
            samples.push((start.elapsed().as_secs_f64(), kib));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    samples
}

async fn metrics(app: &Quickstart) -> String {
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status(), 200, "GET /metrics");
    res.text().await.unwrap()
}

/// Logs in [`SESSIONS`] users, [`LOGIN_CONCURRENCY`] at a time.
async fn log_in_all(app: &Quickstart, op: &RealProvider) -> Vec<(String, String)> {
    let op_host = op.host();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..LOGIN_CONCURRENCY {
        let next = next.clone();
        let app_url = app.base_url().to_owned();
        let op_host = op_host.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= SESSIONS as u64 {
                    return done;
                }
                let account = format!("load-user-{i:02}");
                let cookie = log_in(&app_url, &op_host, &account).await;
                done.push((account, cookie));
            }
        }));
    }
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.extend(task.await.expect("login task"));
    }
    sessions.sort();
    sessions
}

#[tokio::test(flavor = "multi_thread")]
async fn load_bearer_and_sessions_with_unknown_kid_storm() {
    let test_start = Instant::now();
    let login = LoginProvider::start(1, &[]).await;
    let op = login.op();
    let _op_logs = OpLogsOnPanic(op);
    let cooldown = COOLDOWN_SECS.to_string();
    // Info logs, plus the JWKS cache's `jwks loaded` lines (counted as a cross-check); not the
    // debug line of every rejection.
    let app = login
        .start_app(&[
            ("OIDC_UNKNOWN_KID_COOLDOWN_SECS", cooldown.as_str()),
            ("RUST_LOG", "info,oidc_core::jwks=debug"),
        ])
        .await;
    let bind = app
        .base_url()
        .strip_prefix("http://")
        .expect("http base URL")
        .to_owned();
    let pid = find_quickstart_pid(&bind)
        .unwrap_or_else(|| panic!("no quickstart process with BIND={bind} in /proc"));

    // Real tokens, and tampered ones (payload or signature changed).
    let (reader_id, reader_secret) = clients::READER;
    let (writer_id, writer_secret) = clients::WRITER;
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..TOKENS_PER_CLIENT {
        let resource = Some(op.api_resource());
        readers.push(
            op.client_credentials_token(reader_id, reader_secret, "api:read", resource)
                .await,
        );
        writers.push(
            op.client_credentials_token(writer_id, writer_secret, "api:read api:write", resource)
                .await,
        );
    }
    let tampered: Vec<String> = readers
        .iter()
        .chain(&writers)
        .flat_map(|t| [flip_char_in_segment(t, 1), flip_char_in_segment(t, 2)])
        .collect();

    let login_start = Instant::now();
    let sessions = log_in_all(&app, op).await;
    let login_time = login_start.elapsed();
    assert_eq!(sessions.len(), SESSIONS, "every login succeeded");

    let fx = Arc::new(Fixture {
        base_url: app.base_url().to_owned(),
        issuer: op.issuer().to_owned(),
        readers,
        writers,
        tampered,
        sessions,
    });

    // Before the load: the JWKS counters, and the `jwks loaded` log lines.
    let jwks_lines = || app.logs().matches("jwks loaded").count();
    let before_text = metrics(&app).await;
    let jwks_before = metric_sum(&before_text, "oidc_jwks_fetches_total");
    let jwks_lines_before = jwks_lines();
    let metrics_before = Instant::now();

    // The load.
    let client = http_client();
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_rss(pid, start, stop.clone()));
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|id| {
            tokio::spawn(worker(
                id,
                client.clone(),
                fx.clone(),
                start,
                issued.clone(),
            ))
        })
        .collect();
    // Warm-up: the first third, every class but the unknown `kid`s.
    tokio::time::sleep_until((start + RUN / 3).into()).await;
    let rss_warm = rss_kib(pid).expect("the quickstart is running after the warm-up");
    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.await.expect("load worker"));
    }
    let run_time = start.elapsed();
    let rss_end = rss_kib(pid).expect("the quickstart is running at the end");
    stop.store(true, Ordering::Relaxed);
    let rss_samples = sampler.await.expect("RSS sampler");

    let after_text = metrics(&app).await;
    let window = metrics_before.elapsed();
    let jwks_after = metric_sum(&after_text, "oidc_jwks_fetches_total");
    let fetch_errors = |text: &str| -> f64 {
        metric_samples(text, "oidc_jwks_fetches_total")
            .iter()
            .filter(|(labels, _)| labels.contains("outcome=\"error\""))
            .map(|(_, v)| v)
            .sum()
    };
    let jwks_errors = fetch_errors(&after_text) - fetch_errors(&before_text);
    let jwks_fetches = jwks_after - jwks_before;
    // Whole cooldowns or parts of one in the interval between the two snapshots.
    let windows = (window.as_secs_f64() / COOLDOWN_SECS as f64).ceil();
    // The log lines reach the harness through a pipe: give them a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jwks_log_fetches = jwks_lines() - jwks_lines_before;

    // After the load: still ready, and a real token still works.
    let ready = app.get("/readyz", None).await.status();
    let after_me = app.get("/api/me", Some(&fx.readers[0])).await.status();

    // The figures.
    let total = tally.total();
    let rss_peak = rss_samples.iter().map(|(_, kib)| *kib).max().unwrap_or(0);
    let rss_growth = rss_end.saturating_sub(rss_warm);
    let mut report = String::new();
    writeln!(report, "load test of the quickstart (tests/tests/load.rs)").unwrap();
    writeln!(
        report,
        "workers {WORKERS}, sessions {SESSIONS} (logged in in {:.1} s), tokens {} reader + {} writer, cooldown {COOLDOWN_SECS} s",
        login_time.as_secs_f64(),
        fx.readers.len(),
        fx.writers.len()
    )
    .unwrap();
    writeln!(
        report,
        "run {:.1} s (deadline {} s, cap {MAX_REQUESTS} requests), storm of unknown kids from {:.1} s to {:.1} s",
        run_time.as_secs_f64(),
        RUN.as_secs(),
        (RUN / 3).as_secs_f64(),
        (RUN * 2 / 3).as_secs_f64()
    )
    .unwrap();
    writeln!(
        report,
        "{:<20} {:>9} {:>9} {:>7} {:>5} {:>9}",
        "class", "requests", "right", "wrong", "5xx", "transport"
    )
    .unwrap();
    for (class, s) in &tally.by_class {
        writeln!(
            report,
            "{:<20} {:>9} {:>9} {:>7} {:>5} {:>9}",
            class.name(),
            s.requests,
            s.right,
            s.wrong,
            s.server_errors,
            s.transport_errors
        )
        .unwrap();
    }
    writeln!(
        report,
        "{:<20} {:>9} {:>9} {:>7} {:>5} {:>9}",
        "total",
        total.requests,
        total.right,
        total.wrong,
        total.server_errors,
        total.transport_errors
    )
    .unwrap();
    writeln!(
        report,
        "achieved {:.0} req/s (for the report only; a debug build on a shared machine)",
        total.requests as f64 / run_time.as_secs_f64()
    )
    .unwrap();
    writeln!(
        report,
        "JWKS fetches during the run: {jwks_fetches} ({jwks_errors} failed; {jwks_log_fetches} `jwks loaded` log lines) over {:.1} s = {windows} cooldown windows, bound {}",
        window.as_secs_f64(),
        windows + 1.0
    )
    .unwrap();
    writeln!(
        report,
        "quickstart RSS: warm-up {rss_warm} KiB, end {rss_end} KiB, growth {rss_growth} KiB (bound {RSS_GROWTH_KIB}), peak {rss_peak} KiB over {} samples",
        rss_samples.len()
    )
    .unwrap();
    writeln!(
        report,
        "after the load: /readyz {ready}, /api/me with a reader token {after_me}; test time {:.1} s",
        test_start.elapsed().as_secs_f64()
    )
    .unwrap();
    for sample in &tally.samples {
        writeln!(report, "{sample}").unwrap();
    }
    println!("{report}");
    let results = target_dir().join("load-results.txt");
    if let Err(e) = std::fs::write(&results, &report) {
        eprintln!("cannot write {}: {e}", results.display());
    }

    // The checks.
    for class in Class::ALL {
        assert!(
            tally.by_class.get(&class).is_some_and(|s| s.requests > 0),
            "no {} requests were sent:\n{report}",
            class.name()
        );
    }
    assert_eq!(total.wrong, 0, "wrong answers:\n{report}");
    assert_eq!(total.server_errors, 0, "5xx answers:\n{report}");
    assert_eq!(
        total.transport_errors, 0,
        "requests without an answer:\n{report}"
    );
    assert_eq!(
        total.right, total.requests,
        "every request answered as expected:\n{report}"
    );
    assert!(
        jwks_fetches >= 1.0,
        "the storm of unknown kids forced no JWKS refetch (the refetch path was not reached):\n{report}"
    );
    assert!(
        jwks_fetches <= windows + 1.0,
        "more JWKS fetches than cooldown windows + 1:\n{report}"
    );
    assert_eq!(jwks_errors, 0.0, "failed JWKS fetches:\n{report}");
    assert!(
        rss_growth <= RSS_GROWTH_KIB,
        "the quickstart's memory grew after the warm-up:\n{report}"
    );
    assert_eq!(ready, 200, "/readyz after the load:\n{report}");
    assert_eq!(after_me, 200, "a real token after the load:\n{report}");
}
