//! The quickstart API against a real OpenID Provider (npm `oidc-provider`).
//!
//! Test names carry the case ids of `SECURITY-CASES.md` (groups AT and KEY). Each test starts
//! its own quickstart against the provider shared by this file (see the `oidc_e2e` harness),
//! so they run in parallel; the rotation test has a provider of its own, which it restarts.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_e2e::{
    OTHER_RESOURCE, Quickstart, RealProvider, Stack, clients, flip_char_in_segment, free_port,
    jwt_claims, jwt_header, with_edited_claims, www_authenticate,
};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Asserts a 401 whose only challenge is `Bearer ... error="invalid_token"`.
async fn assert_invalid_token(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 401, "{what}: status");
    let (scheme, params) = www_authenticate(&res);
    assert!(
        scheme.eq_ignore_ascii_case("bearer"),
        "{what}: scheme {scheme:?}"
    );
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_token"),
        "{what}: WWW-Authenticate params {params:?}"
    );
    assert!(
        res.headers().get("location").is_none(),
        "{what}: API must not redirect"
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("eyJ"), "{what}: body echoes a token: {body}");
}

/// Asserts 200 with a JSON body and no challenge, and returns the body.
async fn assert_ok_json(res: reqwest::Response, what: &str) -> Value {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    assert_eq!(
        status, 200,
        "{what}: status, headers {headers:?}, body {text}"
    );
    assert!(
        headers.get("www-authenticate").is_none(),
        "{what}: unexpected challenge {headers:?}"
    );
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content-type {content_type:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: body {text:?} is not JSON: {e}"))
}

fn scopes(body: &Value) -> Vec<&str> {
    body["scopes"]
        .as_array()
        .unwrap_or_else(|| panic!("`scopes` is not an array in {body}"))
        .iter()
        .map(|s| s.as_str().expect("scope is a string"))
        .collect()
}

async fn reader_token(stack: &Stack) -> String {
    let (id, secret) = clients::READER;
    stack
        .op
        .client_credentials_token(id, secret, "api:read", Some(stack.op.api_resource()))
        .await
}

async fn writer_token(stack: &Stack) -> String {
    let (id, secret) = clients::WRITER;
    stack
        .op
        .client_credentials_token(
            id,
            secret,
            "api:read api:write",
            Some(stack.op.api_resource()),
        )
        .await
}

/// AT-01: a real RFC 9068 access token (`client_credentials`, `api:read`) is accepted and its
/// claims reach the handler.
#[tokio::test(flavor = "multi_thread")]
async fn at_01_real_provider_token_accepted() {
    let stack = Stack::start().await;
    let token = reader_token(&stack).await;

    // What the real provider sends (RFC 9068): typ at+jwt, RS256, aud = the resource,
    // sub = client_id for client_credentials.
    let header = jwt_header(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    let claims = jwt_claims(&token);
    assert_eq!(claims["aud"], stack.op.api_resource());
    assert_eq!(claims["iss"], stack.op.issuer());
    assert_eq!(claims["sub"], "svc-reader");
    assert_eq!(claims["client_id"], "svc-reader");
    assert_eq!(claims["scope"], "api:read");

    let body = assert_ok_json(stack.app.get("/api/me", Some(&token)).await, "/api/me").await;
    assert_eq!(body["sub"], "svc-reader", "body {body}");
    let scopes = scopes(&body);
    assert!(scopes.contains(&"api:read"), "scopes {scopes:?}");
    assert!(!scopes.contains(&"api:write"), "scopes {scopes:?}");
}

/// AT-01 / AT-10 positive: a token with `api:write` reaches the admin route.
#[tokio::test(flavor = "multi_thread")]
async fn at_01_write_scope_reaches_admin() {
    let stack = Stack::start().await;
    let token = writer_token(&stack).await;

    let res = stack.app.get("/api/admin", Some(&token)).await;
    let headers = res.headers().clone();
    assert_eq!(
        res.status(),
        200,
        "headers {headers:?}: {}",
        res.text().await.unwrap()
    );
    assert!(headers.get("www-authenticate").is_none(), "{headers:?}");

    let body = assert_ok_json(stack.app.get("/api/me", Some(&token)).await, "/api/me").await;
    assert_eq!(body["sub"], "svc-writer", "body {body}");
    let scopes = scopes(&body);
    assert!(
        scopes.contains(&"api:read") && scopes.contains(&"api:write"),
        "scopes {scopes:?}"
    );
}

/// AT-02: no credentials → 401 `Bearer realm="…"` without `error`; public routes stay public.
#[tokio::test(flavor = "multi_thread")]
async fn at_02_no_token_401_without_error() {
    let stack = Stack::start().await;

    for path in ["/api/me", "/api/admin"] {
        let res = stack.app.get(path, None).await;
        assert_eq!(res.status(), 401, "{path}");
        assert!(res.headers().get("location").is_none(), "{path}: redirect");
        let (scheme, params) = www_authenticate(&res);
        assert!(scheme.eq_ignore_ascii_case("bearer"), "{path}: {scheme:?}");
        assert!(
            params.get("realm").is_some_and(|r| !r.is_empty()),
            "{path}: realm missing in {params:?}"
        );
        assert!(
            !params.contains_key("error"),
            "{path}: no error attribute expected without credentials, got {params:?}"
        );
    }

    for path in ["/", "/healthz"] {
        let res = stack.app.get(path, None).await;
        assert_eq!(res.status(), 200, "{path} is public");
        assert!(res.headers().get("www-authenticate").is_none(), "{path}");
    }
}

/// AT-03: malformed credentials are rejected (401 `invalid_token`, or 400 `invalid_request`
/// for a syntax error); the scheme name is case-insensitive.
#[tokio::test(flavor = "multi_thread")]
async fn at_03_malformed_credentials_rejected() {
    let stack = Stack::start().await;
    let token = reader_token(&stack).await;

    // Not a JWT at all, or the wrong number of segments: an invalid token.
    let four_segments = format!("{token}.AAAA");
    let two_segments = token.rsplit_once('.').unwrap().0.to_owned();
    for (what, value) in [
        ("opaque string", "Bearer not-a-jwt".to_owned()),
        ("2 segments", format!("Bearer {two_segments}")),
        ("4 segments", format!("Bearer {four_segments}")),
    ] {
        let res = stack.app.get_with_authorization("/api/me", &value).await;
        assert_invalid_token(res, what).await;
    }

    // Syntax errors: either answer of RFC 6750 §3.1 is fine, but it must be consistent.
    for (what, value) in [("empty token", "Bearer "), ("two tokens", "Bearer a b")] {
        let res = stack.app.get_with_authorization("/api/me", value).await;
        let status = res.status();
        let (_, params) = www_authenticate(&res);
        let error = params.get("error").map(String::as_str);
        assert!(
            (status == 401 && error == Some("invalid_token"))
                || (status == 400 && error == Some("invalid_request")),
            "{what}: got {status} with {params:?}"
        );
    }

    // `bearer` in lower case is the same scheme (RFC 9110 §11.1).
    let res = stack
        .app
        .get_with_authorization("/api/me", &format!("bearer {token}"))
        .await;
    assert_ok_json(res, "lower-case scheme").await;
}

/// AT-07 (signature): a real token with a modified payload or signature is rejected as
/// `invalid_token`, including a self-granted `api:write` (never a 403 or a 200).
#[tokio::test(flavor = "multi_thread")]
async fn at_07_tampered_token_401() {
    let stack = Stack::start().await;
    let token = reader_token(&stack).await;
    // Sanity check: the untouched token works.
    assert_ok_json(stack.app.get("/api/me", Some(&token)).await, "untouched").await;

    let flipped_payload = flip_char_in_segment(&token, 1);
    let flipped_signature = flip_char_in_segment(&token, 2);
    let escalated = with_edited_claims(&token, |claims| {
        claims["scope"] = "api:read api:write".into();
    });
    let other_sub = with_edited_claims(&token, |claims| {
        claims["sub"] = "svc-writer".into();
    });
    let no_signature = format!("{}.", token.rsplit_once('.').unwrap().0);

    for (what, path, bad) in [
        ("payload char flipped", "/api/me", &flipped_payload),
        ("signature char flipped", "/api/me", &flipped_signature),
        ("scope escalated", "/api/admin", &escalated),
        ("sub changed", "/api/me", &other_sub),
        ("signature removed", "/api/me", &no_signature),
    ] {
        assert_ne!(bad, &token);
        assert_invalid_token(stack.app.get(path, Some(bad)).await, what).await;
    }
}

/// AT-07 (audience): a real token for another resource server, and the provider's opaque
/// access token, are rejected as `invalid_token`.
#[tokio::test(flavor = "multi_thread")]
async fn at_07_opaque_or_wrong_audience_token_401() {
    let stack = Stack::start().await;

    let (id, secret) = clients::READER;
    let other = stack
        .op
        .client_credentials_token(id, secret, "api:read", Some(OTHER_RESOURCE))
        .await;
    assert_eq!(jwt_header(&other)["typ"], "at+jwt");
    assert_eq!(jwt_claims(&other)["aud"], OTHER_RESOURCE);
    assert_eq!(jwt_claims(&other)["iss"], stack.op.issuer());
    assert_invalid_token(
        stack.app.get("/api/me", Some(&other)).await,
        "token for another resource",
    )
    .await;

    let (id, secret) = clients::OPAQUE;
    let opaque = stack
        .op
        .client_credentials_token(id, secret, "api:read", None)
        .await;
    assert!(
        !opaque.contains('.'),
        "the provider should issue an opaque token here, got {opaque}"
    );
    assert_invalid_token(
        stack.app.get("/api/me", Some(&opaque)).await,
        "opaque token",
    )
    .await;
}

/// AT-10: a valid token without the route's scope → 403 `insufficient_scope`, `scope="api:write"`.
#[tokio::test(flavor = "multi_thread")]
async fn at_10_missing_scope_is_403() {
    let stack = Stack::start().await;
    let token = reader_token(&stack).await;

    let res = stack.app.get("/api/admin", Some(&token)).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    let (scheme, params) = www_authenticate(&res);
    assert!(scheme.eq_ignore_ascii_case("bearer"), "{scheme:?}");
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("insufficient_scope"),
        "{params:?}"
    );
    assert_eq!(
        params.get("scope").map(String::as_str),
        Some("api:write"),
        "{params:?}"
    );

    // The same token is fine where only authentication is required.
    assert_ok_json(stack.app.get("/api/me", Some(&token)).await, "/api/me").await;
}

/// The minimum interval between two JWKS fetches that an unknown `kid` may force: the
/// oidc-core default (`Provider::with_unknown_kid_cooldown`), which the quickstart keeps.
/// It runs from the previous fetch, whatever caused it (as in panva `jose`).
const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);

/// KEY-03: the provider restarts with a new signing key (same issuer, old key still
/// published), right after the quickstart fetched its JWKS ("rotation just before
/// signing"). A token with the new `kid` may be refused as `invalid_token` while the refetch
/// cooldown runs, but the first request after it is accepted (one refetch), and tokens signed
/// before the rotation keep working. Takes about [`UNKNOWN_KID_COOLDOWN`].
#[tokio::test(flavor = "multi_thread")]
async fn key_03_real_provider_rotation() {
    // A provider of its own, since it gets restarted.
    let port = free_port();
    let app_url = format!("http://localhost:{port}");
    let mut op = RealProvider::start(&format!("{app_url}/api"), &app_url).await;
    let app = Quickstart::start(&op, port).await;
    let (id, secret) = clients::READER;
    let token = async |op: &RealProvider| {
        op.client_credentials_token(id, secret, "api:read", Some(op.api_resource()))
            .await
    };

    let old_token = token(&op).await;
    let old_kid = jwt_header(&old_token)["kid"].as_str().unwrap().to_owned();
    // The quickstart has now fetched and cached the JWKS with the old key only; that fetch
    // happened before this instant.
    assert_ok_json(app.get("/api/me", Some(&old_token)).await, "before").await;
    let last_fetch_before = Instant::now();

    op.restart_rotating_keys().await;

    let jwks = op.jwks().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "old and new key published: {kids:?}");
    assert_eq!(kids[1], old_kid);

    let new_token = token(&op).await;
    let new_kid = jwt_header(&new_token)["kid"].as_str().unwrap().to_owned();
    assert_eq!(new_kid, kids[0], "the provider signs with the new key");
    assert_ne!(new_kid, old_kid);

    // Within the cooldown: accepted, or refused as an invalid token (never 5xx).
    let res = app.get("/api/me", Some(&new_token)).await;
    if res.status() != 200 {
        assert!(
            last_fetch_before.elapsed() < UNKNOWN_KID_COOLDOWN,
            "new kid refused although the cooldown had passed"
        );
        assert_invalid_token(res, "new kid within the refetch cooldown").await;
        // After the cooldown, the very next request refetches the JWKS and is accepted.
        let wait = (last_fetch_before + UNKNOWN_KID_COOLDOWN + Duration::from_secs(1))
            .saturating_duration_since(Instant::now());
        tokio::time::sleep(wait).await;
        assert_ok_json(
            app.get("/api/me", Some(&new_token)).await,
            "token signed with the new key, after the cooldown",
        )
        .await;
    }

    assert_ok_json(
        app.get("/api/me", Some(&new_token)).await,
        "token signed with the new key",
    )
    .await;
    assert_ok_json(
        app.get("/api/me", Some(&old_token)).await,
        "token signed with the old, still published key",
    )
    .await;
}

/// The value of the Prometheus sample `name{labels}` in `text` (labels in any order), after
/// checking that every sample line of `text` parses as `name[{labels}] value`.
fn prometheus_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (
                metric,
                rest.strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}")),
            ),
            None => (series, ""),
        };
        assert!(
            !metric.is_empty()
                && metric
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut got: Vec<(String, String)> = label_text
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label {l:?}"));
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        if metric == name && got == want {
            found = Some(value);
        }
    }
    found
}

/// The quickstart exports the library's metrics at `/metrics` as Prometheus text, and the
/// counters move with the requests it served.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_endpoint_counts_bearer_outcomes_and_jwks_fetches() {
    let stack = Stack::start().await;
    let token = reader_token(&stack).await;
    assert_eq!(stack.app.get("/api/me", Some(&token)).await.status(), 200);
    assert_eq!(stack.app.get("/api/me", Some(&token)).await.status(), 200);
    let tampered = flip_char_in_segment(&token, 2);
    assert_eq!(
        stack.app.get("/api/me", Some(&tampered)).await.status(),
        401
    );
    assert_eq!(stack.app.get("/api/me", None).await.status(), 401);

    let res = stack.app.get("/metrics", None).await;
    assert_eq!(res.status(), 200);
    let content_type = oidc_e2e::content_type(&res);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    let value = |name, labels: &[(&str, &str)]| {
        prometheus_value(&text, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let requests = "oidc_requests_total";
    assert_eq!(
        value(
            requests,
            &[("outcome", "authenticated"), ("reason", "bearer")]
        ),
        2.0
    );
    assert_eq!(
        value(
            requests,
            &[("outcome", "rejected"), ("reason", "invalid_token")]
        ),
        1.0
    );
    assert_eq!(
        value(
            requests,
            &[("outcome", "rejected"), ("reason", "missing_token")]
        ),
        1.0
    );
    assert!(value("oidc_jwks_fetches_total", &[("outcome", "ok")]) >= 1.0);
    assert_eq!(
        value("oidc_requests_in_flight", &[("layer", "bearer")]),
        0.0
    );
    assert!(text.contains("oidc_request_duration_seconds"), "{text}");
}
