//! `oidc-proxy` end to end: the real provider (npm `oidc-provider`), the proxy
//! binary, and nginx from Debian as the upstream, echoing the identity headers it receives.
//!
//! The proxy runs as `http://127.0.0.1:<port>`, the provider as `http://localhost:<port>`;
//! the browser is the scripted user agent of [`oidc_e2e::user_agent`] (a cookie jar per host,
//! every redirect followed by hand, the provider's login and consent forms filled in).

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_e2e::proxy::{AuthProxy, Nginx, NginxEcho};
use oidc_e2e::user_agent::{NAVIGATION_ACCEPT, Page, UserAgent};
use oidc_e2e::{LoginProvider, OpLogsOnPanic, clients, jwt_claims};

/// The proxy's session cookie (its public URL is `http`, so no `__Host-` prefix).
const COOKIE: &str = "oidc-proxy";
/// The proxy's host; the provider's is `localhost`.
const PROXY_HOST: &str = "127.0.0.1";

/// Spoofed copies of the identity headers a client might send, in odd spellings.
const SPOOFED: [(&str, &str); 7] = [
    ("X-Forwarded-User", "mallory"),
    ("x-forwarded-email", "mallory@evil.example"),
    ("X-FORWARDED-GROUPS", "admins"),
    ("X-Forwarded-Preferred-Username", "mallory"),
    ("X-Forwarded-Access-Token", "forged-token"),
    ("X_Forwarded_User", "mallory"),
    ("X_Forwarded_Groups", "admins"),
];

/// A browser navigation to `path` on the proxy, with the spoofed headers.
async fn navigate_spoofed(ua: &mut UserAgent, proxy: &AuthProxy, path: &str) -> Page {
    let mut headers = vec![("accept", NAVIGATION_ACCEPT)];
    headers.extend_from_slice(&SPOOFED);
    ua.get(&proxy.url(path), &headers).await
}

fn counter(metrics: &std::collections::BTreeMap<String, f64>, outcome: &str) -> f64 {
    metrics
        .get(&format!(
            "oidc_proxy_requests_total{{outcome=\"{outcome}\"}}"
        ))
        .copied()
        .unwrap_or_else(|| panic!("no requests counter for {outcome}: {metrics:?}"))
}

/// One test, so that the provider, nginx and the proxy binary start once: the login through
/// the proxy, spoofed headers, API routes, bearer tokens, `/ready`, `/metrics` and logout.
#[tokio::test]
async fn proxy_in_front_of_nginx_with_the_real_provider() {
    let login = LoginProvider::start(1, &[]).await;
    let op = login.op();
    let _logs = OpLogsOnPanic(op);
    let nginx = Nginx::start().await;
    // nginx reads both spellings of a spoofed header: the echo would show one that passed.
    let direct = oidc_e2e::http_client()
        .get(nginx.url())
        .header("X_Forwarded_User", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(
        NginxEcho::parse(&direct.text().await.unwrap()).get("user"),
        "mallory"
    );
    let proxy = login
        .start_auth_proxy(
            &nginx.url(),
            "",
            r#"
[headers]
pass_access_token = true
pass_authorization_header = true

[routes]
skip_auth = ["/public/"]
api = ["/api/"]
bearer = ["/api/"]
"#,
        )
        .await;
    let op_host = op.host();
    assert_ne!(op_host, PROXY_HOST);

    let ready = reqwest::get(proxy.url("/ready")).await.unwrap();
    assert_eq!(ready.status(), 200, "/ready once the provider's keys load");
    let before = proxy.metrics().await;

    // Nothing reaches nginx without a login: a navigation is sent to the provider…
    let mut ua = UserAgent::new();
    let page = navigate_spoofed(&mut ua, &proxy, "/dashboard?tab=2").await;
    assert_eq!(page.status, 303, "{page}");
    let authorize = page.location().unwrap();
    assert_eq!(authorize.host_str(), Some(op_host.as_str()), "{page}");
    // … and an API route answers 401, without a redirect.
    let page = ua
        .get(
            &proxy.url("/api/items"),
            &[
                ("accept", NAVIGATION_ACCEPT),
                ("x-forwarded-user", "mallory"),
            ],
        )
        .await;
    assert_eq!(page.status, 401, "{page}");
    assert!(page.location().is_none(), "{page}");
    let page = ua
        .get(&proxy.url("/api/items"), &[("accept", "application/json")])
        .await;
    assert_eq!(page.status, 401, "{page}");

    // The login at the real provider, back through the proxy's callback.
    let (callback, _) = ua
        .log_in_through_op(&authorize, &op_host, PROXY_HOST, "alice")
        .await;
    assert_eq!(callback.path(), "/auth/callback");
    let page = ua.navigate(callback.as_str()).await;
    assert_eq!(page.status, 303, "callback: {page}");
    assert_eq!(page.raw_location(), Some("/dashboard?tab=2"), "{page}");
    assert!(ua.cookie(PROXY_HOST, COOKIE).is_some(), "session cookie");

    // nginx gets the user, never the spoofed headers, nor the proxy's cookie.
    let page = navigate_spoofed(&mut ua, &proxy, "/dashboard?tab=2").await;
    assert_eq!(page.status, 200, "{page}");
    let seen = NginxEcho::parse(&page.body);
    assert_eq!(seen.get("uri"), "/dashboard?tab=2");
    assert_eq!(seen.get("user"), "alice");
    assert_eq!(seen.get("email"), "alice@example.com");
    assert_eq!(seen.get("preferred_username"), "alice");
    assert_eq!(seen.get("groups"), "", "the provider gives no groups");
    let token = seen.get("access_token");
    assert_ne!(token, "forged-token");
    assert_eq!(
        jwt_claims(token)["sub"],
        "alice",
        "the session's access token"
    );
    assert_eq!(seen.get("authorization"), format!("Bearer {token}"));
    assert!(!seen.get("cookie").contains(COOKIE), "{seen:?}");
    assert_eq!(seen.get("forwarded_for"), "127.0.0.1");
    assert_eq!(seen.get("forwarded_proto"), "http");
    assert_eq!(
        seen.get("forwarded_host"),
        proxy.base_url().trim_start_matches("http://")
    );
    assert!(
        !page.body.contains("mallory") && !page.body.contains("admins"),
        "{page}"
    );

    // A skip-auth route: no identity at all, spoofed or not.
    let page = navigate_spoofed(&mut ua, &proxy, "/public/logo.svg").await;
    assert_eq!(page.status, 200, "{page}");
    let seen = NginxEcho::parse(&page.body);
    for name in [
        "user",
        "email",
        "groups",
        "preferred_username",
        "access_token",
    ] {
        assert_eq!(seen.get(name), "", "{name} on a skip-auth route: {seen:?}");
    }

    // The proxy's own userinfo.
    let page = ua
        .get(
            &proxy.url("/oauth2/userinfo"),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(page.status, 200, "{page}");
    let info: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(info["user"], "alice");
    assert_eq!(info["email"], "alice@example.com");

    // A bearer token of the provider on the API route; a tampered one is refused.
    let (id, secret) = clients::READER;
    let bearer = op
        .client_credentials_token(id, secret, "api:read", Some(op.api_resource()))
        .await;
    // oidc-provider issues RFC 9068 JWT access tokens: `require_at_jwt` would accept it.
    assert_eq!(oidc_e2e::jwt_header(&bearer)["typ"], "at+jwt");
    let http = oidc_e2e::http_client();
    let res = http
        .get(proxy.url("/api/items"))
        .bearer_auth(&bearer)
        .header("x-forwarded-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = NginxEcho::parse(&res.text().await.unwrap());
    assert_eq!(
        seen.get("user"),
        id,
        "a client_credentials token's sub is the client"
    );
    assert_eq!(seen.get("access_token"), bearer);
    let tampered = oidc_e2e::flip_char_in_segment(&bearer, 2);
    let res = http
        .get(proxy.url("/api/items"))
        .bearer_auth(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let (scheme, params) = oidc_e2e::www_authenticate(&res);
    assert_eq!(scheme, "Bearer");
    assert_eq!(params["error"], "invalid_token");

    // /metrics is Prometheus text, and its counters moved.
    let after = proxy.metrics().await;
    for (outcome, at_least) in [
        ("redirected", 1.0),
        ("rejected", 3.0),
        ("authenticated", 2.0),
        ("skipped", 1.0),
        ("oauth2", 2.0),
    ] {
        let moved = counter(&after, outcome) - counter(&before, outcome);
        assert!(
            moved >= at_least,
            "{outcome} moved by {moved}, expected {at_least}+"
        );
    }
    let ok = "oidc_proxy_upstream_responses_total{upstream=\"/\",class=\"2xx\"}";
    assert!(after[ok] >= 3.0, "{after:?}");
    assert!(after.contains_key(
        "oidc_proxy_request_duration_seconds_bucket{outcome=\"authenticated\",le=\"+Inf\"}"
    ));

    // Sign out: the library's logout (POST, same-origin), then to the provider.
    let page = ua
        .post_form(
            &proxy.url("/oauth2/sign_out"),
            &[],
            &[("origin", proxy.base_url()), ("accept", NAVIGATION_ACCEPT)],
        )
        .await;
    assert_eq!(page.status, 303, "{page}");
    assert_eq!(page.location().unwrap().host_str(), Some(op_host.as_str()));
    let page = ua
        .get(&proxy.url("/dashboard"), &[("accept", "application/json")])
        .await;
    assert_eq!(page.status, 401, "signed out: {page}");

    drop(nginx);
}
