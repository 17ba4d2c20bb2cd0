//! Helpers of the load test (`tests/tests/load.rs`): browser logins in bulk, forged tokens,
//! the quickstart's metrics and its resident memory.
//!
//! * [`log_in`] logs a user agent in to a quickstart through the real provider's own login
//!   and consent pages and returns the session cookie.
//! * [`with_header_kid`] forges a token whose `kid` the provider never published.
//! * [`metric_sum`] reads a counter from the quickstart's Prometheus text (`GET /metrics`).
//! * [`find_quickstart_pid`] finds the quickstart process listening on an address (the harness
//!   runs it under a `/bin/sh` supervisor, whose pid is not the quickstart's), and
//!   [`rss_kib`] reads its resident set size (`VmRSS`).
//! * [`Rng`] is a small xorshift generator for the load mix and the random `kid`s.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;

use crate::jwt_header;
use crate::user_agent::UserAgent;

/// The quickstart's session cookie (its app URL is `http`, so no `__Host-` prefix).
pub const SESSION_COOKIE: &str = "oidc-session";

/// Logs in `account` at the quickstart at `app_url` (`http://127.0.0.1:<port>`) with a fresh
/// user agent: `/auth/login?return_to=%2Fme`, the provider's login form (any password) and
/// consent form, then the callback. Returns the value of the session cookie.
///
/// `op_host` is the provider's host name (`localhost`): the user agent follows redirects
/// within it.
///
/// # Panics
///
/// If any step does not answer as a successful login does.
pub async fn log_in(app_url: &str, op_host: &str, account: &str) -> String {
    let mut ua = UserAgent::new();
    let app = Url::parse(app_url).unwrap_or_else(|e| panic!("bad app URL {app_url:?}: {e}"));
    let app_host = app.host_str().expect("app URL has a host").to_owned();

    let page = ua
        .navigate(&format!("{app_url}/auth/login?return_to=%2Fme"))
        .await;
    assert_eq!(page.status, 303, "{account}: login start: {page}");
    let authorize = page
        .location()
        .unwrap_or_else(|| panic!("{account}: login start without Location: {page}"));
    assert_eq!(
        authorize.host_str(),
        Some(op_host),
        "{account}: login start: {page}"
    );

    let (callback, _) = ua
        .log_in_through_op(&authorize, op_host, &app_host, account)
        .await;

    let page = ua.navigate(callback.as_str()).await;
    assert_eq!(page.status, 303, "{account}: callback: {page}");
    assert_eq!(page.raw_location(), Some("/me"), "{account}: {page}");
    ua.cookie(&app_host, SESSION_COOKIE)
        .unwrap_or_else(|| panic!("{account}: no session cookie after the callback: {page}"))
        .to_owned()
}

/// `token` with the `kid` of its JOSE header replaced by `kid`; the claims and the signature
/// are kept, so the signature no longer matches (and no published key has that `kid`).
///
/// # Panics
///
/// If `token` is not a compact JWS with a JSON header.
pub fn with_header_kid(token: &str, kid: &str) -> String {
    let (_, rest) = token.split_once('.').expect("compact JWS expected");
    let mut header = jwt_header(token);
    header["kid"] = kid.into();
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("JSON header"));
    format!("{header}.{rest}")
}

/// The sum of the samples of the metric `name` (all label sets) in a Prometheus text
/// exposition; 0 when there are none.
///
/// # Panics
///
/// If a sample of `name` has no numeric value.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    metric_samples(text, name).iter().map(|(_, v)| v).sum()
}

/// The samples of the metric `name` in a Prometheus text exposition: each with its label set
/// as written (`outcome="ok"`, empty without labels) and its value.
///
/// # Panics
///
/// If a sample of `name` has no numeric value.
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(labelled) = rest.strip_prefix('{') {
                let (labels, value) = labelled.split_once('}')?;
                (labels, value)
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                // Another metric whose name starts with `name`.
                return None;
            };
            let value = value.split_whitespace().next().unwrap_or_default();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("bad value in metric line {line:?}: {e}"));
            Some((labels.to_owned(), value))
        })
        .collect()
}

/// The pid of the `quickstart` process started with `BIND=<bind>` (`127.0.0.1:<port>`),
/// found through `/proc`: its `comm` is `quickstart` and its environment holds that `BIND`.
/// `None` when there is none (or not exactly one).
///
/// The harness runs the quickstart under a `/bin/sh` supervisor, so the pid of the child it
/// spawned is the supervisor's; this finds the quickstart itself.
pub fn find_quickstart_pid(bind: &str) -> Option<u32> {
    let wanted = format!("BIND={bind}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let is_quickstart = std::fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| comm.trim_end() == "quickstart");
        if is_quickstart && environ_has(&dir, &wanted) {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Some(*pid),
        _ => None,
    }
}

fn environ_has(dir: &Path, entry: &str) -> bool {
    std::fs::read(dir.join("environ")).is_ok_and(|environ| {
        environ
            .split(|b| *b == 0)
            .any(|var| var == entry.as_bytes())
    })
}

/// The resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`), or
/// `None` when the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS` line of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// A xorshift64* generator: enough randomness for a load mix and unguessable-looking `kid`s,
/// without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock and `stream` (distinct streams give distinct
    /// sequences).
    pub fn new(stream: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::seeded(nanos ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A generator with a fixed seed.
    pub fn seeded(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random `kid`: `storm-` and 32 hex digits.
    pub fn kid(&mut self) -> String {
        format!("storm-{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt_claims;

    #[test]
    fn forges_the_kid_only() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#);
        let token = format!("{header}.eyJzdWIiOiJhIn0.c2lnbmF0dXJl");
        let forged = with_header_kid(&token, "storm-1");
        let header = jwt_header(&forged);
        assert_eq!(header["kid"], "storm-1");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(jwt_claims(&forged)["sub"], "a");
        assert!(forged.ends_with(".eyJzdWIiOiJhIn0.c2lnbmF0dXJl"));
    }

    #[test]
    fn reads_counters() {
        let text = "# HELP oidc_jwks_fetches_total x\n\
                    # TYPE oidc_jwks_fetches_total counter\n\
                    oidc_jwks_fetches_total{outcome=\"ok\"} 3\n\
                    oidc_jwks_fetches_total{outcome=\"error\"} 1\n\
                    oidc_jwks_fetches_total_other 100\n\
                    plain 7\n";
        assert_eq!(metric_sum(text, "oidc_jwks_fetches_total"), 4.0);
        assert_eq!(
            metric_samples(text, "oidc_jwks_fetches_total"),
            [
                ("outcome=\"ok\"".to_owned(), 3.0),
                ("outcome=\"error\"".to_owned(), 1.0)
            ]
        );
        assert_eq!(metric_sum(text, "plain"), 7.0);
        assert_eq!(metric_sum(text, "missing"), 0.0);
    }

    #[test]
    fn reads_rss() {
        let status = "Name:\tquickstart\nVmPeak:\t  9000 kB\nVmRSS:\t   23456 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(23456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn rng_spreads() {
        let mut rng = Rng::seeded(42);
        let kids: std::collections::BTreeSet<String> = (0..100).map(|_| rng.kid()).collect();
        assert_eq!(kids.len(), 100);
        let mut seen = [false; 5];
        for _ in 0..200 {
            seen[rng.below(5)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
