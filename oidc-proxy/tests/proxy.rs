//! The proxy against the in-process provider (`oidc-testing`) and echo upstreams on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::BodyExt as _;

const IDENTITY: [&str; 7] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-forwarded-issuer",
    "x-forwarded-provider",
];

/// Spoofed copies of every identity header, in odd spellings.
const SPOOFED: [(&str, &str); 7] = [
    ("X-Forwarded-User", "mallory"),
    ("x-forwarded-email", "mallory@evil.example"),
    ("X-FORWARDED-GROUPS", "admins"),
    ("X-Forwarded-Preferred-Username", "mallory"),
    ("X-Forwarded-Access-Token", "forged"),
    ("X_Forwarded_User", "mallory"),
    ("x_forwarded_groups", "admins"),
];

fn no_spoofed_values(echo: &serde_json::Value) {
    let headers = echo["headers"].as_object().unwrap();
    for (name, values) in headers {
        assert!(
            !name.contains('_') || !name.replace('_', "-").starts_with("x-forwarded"),
            "underscore copy {name} reached the upstream"
        );
        for v in values.as_array().unwrap() {
            let v = v.as_str().unwrap();
            assert!(
                !v.contains("mallory") && v != "admins" && v != "forged",
                "spoofed {name}: {v} reached the upstream"
            );
        }
    }
}

#[tokio::test]
async fn login_reaches_the_upstream_with_identity_headers() {
    let w = World::start(|_| {}).await;
    w.op.mutate_id_token(|claims, _| {
        claims.insert(
            "groups".into(),
            serde_json::json!(["admins", "devs", "a,b"]),
        );
    });
    let cookie = w.login().await;

    let mut headers: Vec<(&str, &str)> = SPOOFED.to_vec();
    headers.push(("cookie", "other=1"));
    let mut req = w
        .http
        .get(w.url("/app/page?x=1"))
        .header("accept", "text/html")
        .header("cookie", format!("theme=dark; {COOKIE}={cookie}"));
    for (name, value) in &headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    assert!(
        res.headers().get("keep-alive").is_none(),
        "hop-by-hop header passed on"
    );
    let echo = echo(res).await;
    assert_eq!(echo["upstream"], "a");
    assert_eq!(echo["path"], "/app/page");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(seen(&echo, "x-forwarded-user"), [USER]);
    assert_eq!(
        seen(&echo, "x-forwarded-email"),
        [format!("{USER}@example.test")]
    );
    // Groups come from the identity's groups; one with a comma is left out.
    assert_eq!(seen(&echo, "x-forwarded-groups"), ["admins,devs"]);
    assert_eq!(seen(&echo, "x-forwarded-preferred-username"), [USER]);
    assert_eq!(seen(&echo, "x-forwarded-issuer"), [w.op.issuer()]);
    assert_eq!(seen(&echo, "x-forwarded-provider"), ["default"]);
    // Not asked for: no access token.
    assert!(seen(&echo, "x-forwarded-access-token").is_empty());
    assert!(seen(&echo, "authorization").is_empty());
    no_spoofed_values(&echo);
    // The proxy's session cookie stays with the proxy; the app's cookies pass.
    let cookies = seen(&echo, "cookie").join("; ");
    assert!(!cookies.contains(COOKIE), "{cookies}");
    assert!(
        cookies.contains("theme=dark") && cookies.contains("other=1"),
        "{cookies}"
    );
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), [w.addr.to_string()]);
    assert_eq!(seen(&echo, "host"), [w.addr.to_string()]);

    // The same on the other upstream, with its prefix stripped.
    let echo = echo_of(w.get("/b/inner/x", Some(&cookie), &[]).await).await;
    assert_eq!(echo["upstream"], "b");
    assert_eq!(echo["path"], "/inner/x");
    assert_eq!(seen(&echo, "x-forwarded-user"), [USER]);
}

async fn echo_of(res: reqwest::Response) -> serde_json::Value {
    echo(res).await
}

#[tokio::test]
async fn access_token_headers_on_request() {
    let w = World::start(|c| {
        c.headers.pass_access_token = Some(true);
        c.headers.pass_authorization_header = Some(true);
        c.headers.user_claim = Some("email".to_owned());
    })
    .await;
    let cookie = w.login().await;
    let res = w
        .get(
            "/app",
            Some(&cookie),
            &[
                ("authorization", "Basic bWFsbG9yeTpwdw=="),
                ("x-forwarded-access-token", "forged"),
            ],
        )
        .await;
    let echo = echo(res).await;
    let token = seen(&echo, "x-forwarded-access-token");
    assert_eq!(token.len(), 1);
    let claims = oidc_e2e_like_claims(token[0]);
    assert_eq!(claims["sub"], USER);
    assert_eq!(
        seen(&echo, "authorization"),
        [format!("Bearer {}", token[0])]
    );
    assert_eq!(
        seen(&echo, "x-forwarded-user"),
        [format!("{USER}@example.test")]
    );

    // On a skip route the client's Authorization is removed too, as the proxy owns it.
    let echo = echo_of(
        w.get("/public/x", None, &[("authorization", "Bearer forged")])
            .await,
    )
    .await;
    assert!(seen(&echo, "authorization").is_empty());
}

/// The claims of a JWT, unverified.
fn oidc_e2e_like_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn spoofed_headers_never_reach_the_upstream() {
    let w = World::start(|_| {}).await;
    // A skip route, no session.
    let echo = echo_of(w.get("/public/x", None, &SPOOFED).await).await;
    for name in IDENTITY {
        assert!(seen(&echo, name).is_empty(), "{name} reached a skip route");
    }
    no_spoofed_values(&echo);
    // Authorization is the client's business when the proxy does not set it.
    let echo = echo_of(
        w.get("/health", None, &[("authorization", "Basic dTpw")])
            .await,
    )
    .await;
    assert_eq!(seen(&echo, "authorization"), ["Basic dTpw"]);
    // A skip route with a session: still no identity headers, no spoofed ones.
    let cookie = w.login().await;
    let echo = echo_of(w.get("/public/y", Some(&cookie), &SPOOFED).await).await;
    for name in IDENTITY {
        assert!(seen(&echo, name).is_empty(), "{name} reached a skip route");
    }
    // A method-bound skip rule: POST /health needs a login.
    let res = w.http.post(w.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Client X-Forwarded-For / Forwarded / X-Real-IP are replaced.
    let echo = echo_of(
        w.get(
            "/public/z",
            None,
            &[
                ("x-forwarded-for", "10.0.0.1"),
                ("forwarded", "for=10.0.0.1"),
                ("x-real-ip", "10.0.0.1"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert!(seen(&echo, "forwarded").is_empty());
    assert!(seen(&echo, "x-real-ip").is_empty());
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
}

#[tokio::test]
async fn unauthenticated_requests_are_redirected_or_refused() {
    let w = World::start(|_| {}).await;
    // A browser navigation on an ordinary route: to the provider.
    let res = w.navigate("/app", None).await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&w.op.issuer())
    );
    // The same on an API route: 401, no redirect, no transaction cookie.
    let res = w.navigate("/api/items", None).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("location").is_none());
    assert!(session_cookie(&res).is_none());
    // An XHR on an ordinary route: 401.
    let res = w.get("/app", None, &[]).await;
    assert_eq!(res.status(), 401);
    // A forged or unknown session cookie is no session.
    let res = w.get("/app", Some("not-a-session"), &[]).await;
    assert_eq!(res.status(), 401);
    // The proxy's own routes.
    let res = w.navigate("/oauth2/userinfo", None).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("location").is_none());
    // Nothing reached an upstream.
    for u in &w.upstreams {
        assert_eq!(
            u.state.requests.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}

#[tokio::test]
async fn bearer_routes_accept_tokens_and_refuse_bad_ones() {
    let w = World::start(|_| {}).await;
    let token =
        w.op.token()
            .claim("sub", "svc-1")
            .claim("roles", serde_json::json!(["reader"]))
            .audience(AUDIENCE)
            .sign();
    let echo = echo_of(
        w.get(
            "/api/items",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await,
    )
    .await;
    assert_eq!(seen(&echo, "x-forwarded-user"), ["svc-1"]);
    assert_eq!(seen(&echo, "x-forwarded-groups"), ["reader"]);
    // The client's Authorization passes (the proxy does not set its own here).
    assert_eq!(seen(&echo, "authorization"), [format!("Bearer {token}")]);

    let bad = [
        w.op.token().audience(AUDIENCE).sign_tampered_signature(),
        w.op.token().audience("api://other").sign(),
        w.op.token().audience(AUDIENCE).expires_in(-3600).sign(),
        w.op.token().audience(AUDIENCE).sign_with_foreign_key(),
        w.op.token().audience(AUDIENCE).sign_none("none", ""),
    ];
    for token in bad {
        let res = w
            .get(
                "/api/items",
                None,
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(res.status(), 401, "{token}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert!(!res.text().await.unwrap().contains(&token));
    }
    // Malformed credentials, a token in the query.
    let res = w
        .get("/api/items", None, &[("authorization", "Bearer a b")])
        .await;
    assert_eq!(res.status(), 400);
    // A token in the query is never read: without a session that is 401.
    let res = w
        .get(&format!("/api/items?access_token={token}"), None, &[])
        .await;
    assert_eq!(res.status(), 401);
    // Basic credentials on a bearer route: no bearer token.
    let res = w
        .get("/api/items", None, &[("authorization", "Basic dTpw")])
        .await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    // A bearer token on a route that is not a bearer route is no login.
    let res = w
        .get(
            "/app",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(res.status(), 401);
    // A session works on bearer routes too.
    let cookie = w.login().await;
    let echo = echo_of(w.get("/bearer/x", Some(&cookie), &[]).await).await;
    assert_eq!(seen(&echo, "x-forwarded-user"), [USER]);
}

#[tokio::test]
async fn userinfo_for_sessions_and_tokens() {
    let w = World::start(|_| {}).await;
    w.op.mutate_id_token(|claims, _| {
        claims.insert("groups".into(), serde_json::json!(["admins"]));
    });
    let cookie = w.login().await;
    let res = w.get("/oauth2/userinfo", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let info: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        info,
        serde_json::json!({
            "user": USER,
            "email": format!("{USER}@example.test"),
            "groups": ["admins"],
            "preferred_username": USER,
            "issuer": w.op.issuer(),
            "provider": "default",
        })
    );
    let token = w.op.token().claim("sub", "svc-2").audience(AUDIENCE).sign();
    let res = w
        .get(
            "/oauth2/userinfo",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let info: serde_json::Value = res.json().await.unwrap();
    assert_eq!(info["user"], "svc-2");
    let res = w
        .get(
            "/oauth2/userinfo",
            None,
            &[("authorization", "Bearer nope.nope.nope")],
        )
        .await;
    assert_eq!(res.status(), 401);
    // Unknown routes under /oauth2/ are the proxy's, never an upstream's.
    let res = w.get("/oauth2/other", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn sign_out_is_the_library_logout() {
    let w = World::start(|_| {}).await;
    let cookie = w.login().await;
    let res = w.get("/oauth2/sign_out", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 405);
    let res = w
        .http
        .post(w.url("/oauth2/sign_out"))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = w
        .http
        .post(w.url("/oauth2/sign_out"))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .header("origin", &w.url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&w.op.end_session_endpoint())
    );
    let res = w.get("/app", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn tricky_paths_are_refused() {
    let w = World::start(|_| {}).await;
    for path in [
        "/public/../app",
        "/public/%2e%2e/app",
        "/public/..%2fapp",
        "/public/..;/app",
        "/public/%5c..%5capp",
        "/public/%00",
    ] {
        let status = raw_status(w.addr, &format!("GET {path} HTTP/1.1\r\nHost: {}", w.addr)).await;
        assert_eq!(status, 400, "{path}");
    }
    // An encoded prefix does not count as the skip route.
    let status = raw_status(
        w.addr,
        &format!(
            "GET /%70ublic/x HTTP/1.1\r\nHost: {}\r\nAccept: application/json",
            w.addr
        ),
    )
    .await;
    assert_eq!(status, 401);
    for u in &w.upstreams {
        assert_eq!(
            u.state.requests.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}

#[tokio::test]
async fn large_uploads_stream_through() {
    let w = World::start(|_| {}).await;
    let token = w.op.token().audience(AUDIENCE).sign();
    let total = 50 * 1024 * 1024;
    let first = Bytes::from_static(b"first bytes of the upload\n");
    let (want_bytes, want_sum) = TestBody::expected(&first, total);
    // The client sends the rest only once the upstream saw the first bytes: a proxy that
    // buffered the body would wait forever.
    let state = w.upstreams[0].state.clone();
    let gate = Box::pin(async move { state.upload_started.notified().await });
    let body = TestBody::new(first, total, Some(gate));
    let req = Request::post(w.url("/api/upload"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::new(body))
        .unwrap();
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(120), hyper_client().request(req))
        .await
        .expect("the upload did not stream")
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got["bytes"], want_bytes);
    assert_eq!(got["sum"], want_sum);
    eprintln!("50 MiB upload through the proxy in {:?}", started.elapsed());

    // Unauthenticated: refused before the body is read, nothing reaches the upstream.
    let before = w.upstreams[0]
        .state
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let req = Request::post(w.url("/api/upload"))
        .body(Body::new(TestBody::new(Bytes::new(), 1024 * 1024, None)))
        .unwrap();
    let res = hyper_client().request(req).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        w.upstreams[0]
            .state
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
}

#[tokio::test]
async fn responses_stream_through() {
    let w = World::start(|_| {}).await;
    let token = w.op.token().audience(AUDIENCE).sign();
    let req = Request::get(w.url("/api/stream"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = hyper_client().request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    // The first chunk arrives while the upstream still holds the rest back.
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk was not streamed")
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first chunk\n");
    w.upstreams[0].state.release_stream.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest.len(), 5 * 1024 * 1024);
}

#[tokio::test]
async fn websockets_are_spliced() {
    let w = World::start(|_| {}).await;
    let token =
        w.op.token()
            .claim("sub", "ws-user")
            .audience(AUDIENCE)
            .sign();
    let (mut stream, head) =
        websocket_handshake(&w, &format!("Authorization: Bearer {token}\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(
        lower.contains(&format!(
            "sec-websocket-accept: {}",
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ==").to_ascii_lowercase()
        )),
        "{head}"
    );
    // The upstream greets with the user the proxy told it about (not the spoofed one).
    let (opcode, greeting) = read_frame(&mut stream).await.unwrap();
    assert_eq!(opcode, 0x1);
    assert_eq!(greeting, b"user=ws-user");
    for message in ["hello", "through the proxy"] {
        write_frame(&mut stream, 0x1, message.as_bytes(), Some([1, 2, 3, 4])).await;
        let (opcode, payload) = read_frame(&mut stream).await.unwrap();
        assert_eq!(opcode, 0x1);
        assert_eq!(payload, message.as_bytes());
    }
    let big = vec![b'x'; 10_000];
    write_frame(&mut stream, 0x2, &big, Some([9, 8, 7, 6])).await;
    let (opcode, payload) = read_frame(&mut stream).await.unwrap();
    assert_eq!(opcode, 0x2);
    assert_eq!(payload, big);
    write_frame(&mut stream, 0x8, &[], Some([0, 0, 0, 0])).await;
    let (opcode, _) = read_frame(&mut stream).await.unwrap();
    assert_eq!(opcode, 0x8);

    // Without credentials: 401, no upgrade.
    let (_, head) = websocket_handshake(&w, "").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

#[tokio::test]
async fn ping_ready_and_metrics() {
    let w = World::start(|_| {}).await;
    let res = w.http.get(w.url("/ping")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = w.http.post(w.url("/ping")).send().await.unwrap();
    assert_eq!(res.status(), 405);

    // Keys unavailable: not ready.
    w.op.fail_jwks(oidc_testing::Failure::Status(503));
    let res = w.http.get(w.url("/ready")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    w.op.fail_jwks(oidc_testing::Failure::None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = w.http.get(w.url("/ready")).send().await.unwrap();
        if res.status() == 200 {
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let before = w.metrics().await;
    let key = |outcome: &str| format!("oidc_proxy_requests_total{{outcome=\"{outcome}\"}}");
    for outcome in [
        "authenticated",
        "redirected",
        "rejected",
        "skipped",
        "oauth2",
    ] {
        assert!(
            before.contains_key(&key(outcome)),
            "{outcome} missing: {before:?}"
        );
    }
    assert_eq!(sample(&before, "oidc_proxy_requests_in_flight"), 0.0);

    let cookie = w.login().await; // 1 redirected, 1 oauth2 (callback)
    let _ = echo_of(w.get("/app", Some(&cookie), &[]).await).await; // authenticated
    let _ = echo_of(w.get("/public/x", None, &[]).await).await; // skipped
    let res = w.get("/api/x", None, &[]).await; // rejected
    assert_eq!(res.status(), 401);

    let after = w.metrics().await;
    for (outcome, at_least) in [
        ("authenticated", 1.0),
        ("redirected", 1.0),
        ("rejected", 1.0),
        ("skipped", 1.0),
        ("oauth2", 1.0),
    ] {
        let moved = sample(&after, &key(outcome)) - sample(&before, &key(outcome));
        assert!(moved >= at_least, "{outcome} moved by {moved}");
    }
    let count = |m: &std::collections::BTreeMap<String, f64>| {
        sample(
            m,
            "oidc_proxy_request_duration_seconds_count{outcome=\"authenticated\"}",
        )
    };
    assert!(count(&after) > count(&before));
    assert!(after.contains_key(
        "oidc_proxy_request_duration_seconds_bucket{outcome=\"authenticated\",le=\"+Inf\"}"
    ));
    let ok = "oidc_proxy_upstream_responses_total{upstream=\"a\",class=\"2xx\"}";
    assert!(sample(&after, ok) > sample(&before, ok));
}

#[tokio::test]
async fn upstream_failures_are_502_and_counted() {
    let op = oidc_testing::TestProvider::start().await;
    op.set_auto_login(Some(USER));
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut config = base_config(&op, &a, &b);
    // Upstream b's port is closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    config.upstreams[1].url = Some(format!("http://{closed}"));
    let w = World::start_with(op, config, vec![a, b]).await;
    let before = w.metrics().await;
    let res = w.get("/b/x", None, &[]).await;
    assert_eq!(res.status(), 401, "authentication comes first");
    let res = w.get("/public/../b", None, &[]).await; // cleaned by the client: /b
    assert_eq!(res.status(), 401);
    let cookie = w.login().await;
    let res = w.get("/b/x", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 502);
    assert!(!res.text().await.unwrap().contains(&cookie));
    let after = w.metrics().await;
    let key = "oidc_proxy_upstream_errors_total{upstream=\"b\",reason=\"connect\"}";
    assert_eq!(sample(&after, key) - sample(&before, key), 1.0);
}

#[tokio::test]
async fn upstream_timeouts_wrong_answers_and_unrouted_paths() {
    let w = World::start(|c| {
        c.upstream_timeout_secs = Some(1);
        // No upstream at `/`: only /a/ and /b/.
        c.upstreams[0].prefix = Some("/a/".to_owned());
    })
    .await;
    let token = w.op.token().audience(AUDIENCE).sign();
    let bearer = format!("Bearer {token}");
    let before = w.metrics().await;
    let res = w
        .get("/bearer/hang", None, &[("authorization", &bearer)])
        .await;
    assert_eq!(res.status(), 404, "no upstream serves /bearer/");
    let res = w
        .get("/b/bearer/hang", None, &[("authorization", &bearer)])
        .await;
    assert_eq!(res.status(), 401, "/b/ is not a bearer route");
    let cookie = w.login().await;
    let started = Instant::now();
    let res = w.get("/a/hang", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    let res = w.get("/a/switch", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 502);
    let after = w.metrics().await;
    let timeouts = "oidc_proxy_upstream_errors_total{upstream=\"a\",reason=\"timeout\"}";
    assert_eq!(sample(&after, timeouts) - sample(&before, timeouts), 1.0);
}

#[tokio::test]
async fn a_user_that_cannot_be_sent_is_refused() {
    let w = World::start(|c| c.headers.user_claim = Some("email".to_owned())).await;
    w.op.mutate_id_token(|claims, _| {
        claims.insert("email".into(), "evil\u{7f}@example.test".into());
        claims.insert("preferred_username".into(), "two\nlines".into());
    });
    let cookie = w.login().await;
    // The user claim has a control character: no request without its user.
    let res = w
        .get("/app", Some(&cookie), &[("x-forwarded-user", "mallory")])
        .await;
    assert_eq!(res.status(), 403);
    for u in &w.upstreams {
        assert_eq!(
            u.state.requests.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    // Userinfo: no user either; only GET and HEAD.
    let res = w.get("/oauth2/userinfo", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 403);
    let res = w
        .http
        .post(w.url("/oauth2/userinfo"))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn optional_claims_that_cannot_be_sent_are_left_out() {
    let w = World::start(|_| {}).await;
    w.op.mutate_id_token(|claims, _| {
        claims.insert("preferred_username".into(), "two\nlines".into());
    });
    let cookie = w.login().await;
    let echo = echo_of(w.get("/app", Some(&cookie), &[]).await).await;
    assert_eq!(seen(&echo, "x-forwarded-user"), [USER]);
    assert!(seen(&echo, "x-forwarded-preferred-username").is_empty());
}
