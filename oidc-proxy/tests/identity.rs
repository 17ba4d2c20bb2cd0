//! What the upstream is told about the user, and what a client or an upstream cannot make it
//! believe: verified e-mail only, the issuer and provider of every identity, every well-known
//! identity or rewrite header of the client removed, no ID token as a bearer token, exact route
//! rules, and no session cookie planted by an upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use oidc_proxy::config::ProviderConfig;
use oidc_proxy::identity::STRIPPED_HEADERS;
use oidc_testing::TestProvider;
use serde_json::{Value, json};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn unverified_email_is_not_forwarded() {
    let w = World::start(|_| {}).await;
    for verified in [json!(false), json!("true"), Value::Null] {
        w.op.clear_mutations();
        let claim = verified.clone();
        w.op.mutate_id_token(move |claims, _| {
            if claim.is_null() {
                claims.remove("email_verified");
            } else {
                claims.insert("email_verified".into(), claim.clone());
            }
        });
        let cookie = w.login().await;
        let got = echo(w.get("/app", Some(&cookie), &[]).await).await;
        assert_eq!(seen(&got, "x-forwarded-user"), [USER]);
        assert!(
            seen(&got, "x-forwarded-email").is_empty(),
            "email_verified {verified}: {got}"
        );
        let info: Value = w
            .get("/oauth2/userinfo", Some(&cookie), &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(info["user"], USER);
        assert_eq!(info["email"], Value::Null, "email_verified {verified}");
    }
    // Bearer tokens: the same rule.
    let token =
        w.op.token()
            .claim("email", "svc@example.test")
            .audience(AUDIENCE)
            .sign();
    let got = echo(
        w.get("/api/x", None, &[("authorization", &bearer(&token))])
            .await,
    )
    .await;
    assert!(seen(&got, "x-forwarded-email").is_empty(), "{got}");
    let token =
        w.op.token()
            .claim("email", "svc@example.test")
            .claim("email_verified", true)
            .audience(AUDIENCE)
            .sign();
    let got = echo(
        w.get("/api/x", None, &[("authorization", &bearer(&token))])
            .await,
    )
    .await;
    assert_eq!(seen(&got, "x-forwarded-email"), ["svc@example.test"]);
}

#[tokio::test]
async fn unverified_email_passes_only_when_allowed_insecurely() {
    let w = World::start(|c| c.headers.insecure_allow_unverified_email = Some(true)).await;
    w.op.mutate_id_token(|claims, _| {
        claims.insert("email_verified".into(), json!(false));
    });
    let cookie = w.login().await;
    let got = echo(w.get("/app", Some(&cookie), &[]).await).await;
    assert_eq!(
        seen(&got, "x-forwarded-email"),
        [format!("{USER}@example.test")]
    );
}

#[tokio::test]
async fn unverified_email_as_the_user_is_refused() {
    let w = World::start(|c| c.headers.user_claim = Some("email".to_owned())).await;
    w.op.mutate_id_token(|claims, _| {
        claims.insert("email_verified".into(), json!(false));
    });
    let cookie = w.login().await;
    // Not the address, not the sub instead: no request without its user.
    let res = w.get("/app", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 403);
    let res = w.get("/oauth2/userinfo", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 403);
    assert!(!res.text().await.unwrap().contains("@example.test"));
    // A bearer token with an unverified address, or none: refused too.
    for token in [
        w.op.token()
            .claim("email", "svc@example.test")
            .audience(AUDIENCE)
            .sign(),
        w.op.token().audience(AUDIENCE).sign(),
    ] {
        let res = w
            .get("/api/x", None, &[("authorization", &bearer(&token))])
            .await;
        assert_eq!(res.status(), 403);
    }
    assert_eq!(w.upstream_requests(), 0);
    // A verified one is the user.
    let token =
        w.op.token()
            .claim("email", "svc@example.test")
            .claim("email_verified", true)
            .audience(AUDIENCE)
            .sign();
    let got = echo(
        w.get("/api/x", None, &[("authorization", &bearer(&token))])
            .await,
    )
    .await;
    assert_eq!(seen(&got, "x-forwarded-user"), ["svc@example.test"]);
}

#[tokio::test]
async fn two_providers_are_told_apart() {
    let staff = TestProvider::start().await;
    let partners = TestProvider::start().await;
    // The same subject at both: only the issuer tells the two users apart.
    staff.set_auto_login(Some(USER));
    partners.set_auto_login(Some(USER));
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut config = base_config(&staff, &a, &b);
    config.providers[0].name = Some("staff".to_owned());
    config.providers.push(ProviderConfig {
        name: Some("partners".to_owned()),
        issuer: Some(partners.issuer()),
        client_id: Some(CLIENT_ID.to_owned()),
        client_secret: Some(oidc_proxy::config::SecretString::new(SECRET)),
        audience: Some(AUDIENCE.to_owned()),
        ..ProviderConfig::default()
    });
    let w = World::start_with_providers(vec![staff, partners], config, vec![a, b]).await;
    let spoofed = [
        ("X-Forwarded-Issuer", "https://evil.example"),
        ("x_forwarded_provider", "evil"),
    ];
    for (op, name) in [(&w.op, "staff"), (&w.more_ops[0], "partners")] {
        let cookie = w.login_at(op, name).await;
        let got = echo(w.get("/app", Some(&cookie), &spoofed).await).await;
        assert_eq!(seen(&got, "x-forwarded-user"), [USER]);
        assert_eq!(seen(&got, "x-forwarded-issuer"), [op.issuer()]);
        assert_eq!(seen(&got, "x-forwarded-provider"), [name]);
        assert!(!got.to_string().contains("evil"), "{got}");
        let info: Value = w
            .get("/oauth2/userinfo", Some(&cookie), &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(info["issuer"], op.issuer());
        assert_eq!(info["provider"], name);
        // A bearer token of the same provider: the same two headers.
        let token = op.token().claim("sub", USER).audience(AUDIENCE).sign();
        let mut headers = spoofed.to_vec();
        let auth = bearer(&token);
        headers.push(("authorization", &auth));
        let got = echo(w.get("/api/x", None, &headers).await).await;
        assert_eq!(seen(&got, "x-forwarded-issuer"), [op.issuer()]);
        assert_eq!(seen(&got, "x-forwarded-provider"), [name]);
    }
    // A skip route: neither header, spoofed or not.
    let got = echo(w.get("/public/x", None, &spoofed).await).await;
    assert!(seen(&got, "x-forwarded-issuer").is_empty());
    assert!(seen(&got, "x-forwarded-provider").is_empty());
}

/// A header name for each entry of the list: the prefixes with something after them, in
/// mixed case and with `_` for every other one.
fn spoofed_names() -> Vec<String> {
    let mut names = Vec::new();
    for (i, entry) in STRIPPED_HEADERS
        .iter()
        .chain(&["x-my-user", "x-corp-*"])
        .enumerate()
    {
        let name = match entry.strip_suffix('*') {
            Some(prefix) => format!("{prefix}Spoofed"),
            None => (*entry).to_owned(),
        };
        let name = if i % 2 == 0 {
            name.to_ascii_uppercase()
        } else {
            name.replace('-', "_")
        };
        names.push(name);
    }
    // The headers named in the issue, as they are usually written.
    for name in [
        "X-Auth-Request-User",
        "X-Auth-Request-Email",
        "Remote-User",
        "X-Remote-User",
        "X-WEBAUTH-USER",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Original-URI",
        "X-Forwarded-Prefix",
        "X-Forwarded-Username",
        "X_Forwarded_User",
    ] {
        names.push(name.to_owned());
    }
    names
}

#[tokio::test]
async fn every_well_known_identity_header_is_stripped() {
    let w = World::start(|c| {
        c.headers.strip = Some(vec!["X-My-User".to_owned(), "X-Corp-*".to_owned()]);
    })
    .await;
    let names = spoofed_names();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "spoofed")).collect();
    let cookie = w.login().await;
    let token = w.op.token().audience(AUDIENCE).sign();
    let auth = bearer(&token);
    let mut with_token = headers.clone();
    with_token.push(("authorization", &auth));
    for (what, path, cookie, headers) in [
        ("skip-auth route", "/public/x", None, &headers),
        ("method-bound skip-auth route", "/health", None, &headers),
        ("session", "/app", Some(cookie.as_str()), &headers),
        ("bearer route", "/api/x", None, &with_token),
    ] {
        let got = echo(w.get(path, cookie, headers).await).await;
        for (name, values) in got["headers"].as_object().unwrap() {
            assert!(
                !values.to_string().contains("spoofed"),
                "{what}: {name} reached the upstream"
            );
        }
        // The rest of the request is intact.
        assert_eq!(seen(&got, "accept"), ["application/json"], "{what}");
    }
    // The method is what the rule saw.
    let got = echo(
        w.get("/health", None, &[("X-HTTP-Method-Override", "DELETE")])
            .await,
    )
    .await;
    assert!(seen(&got, "x-http-method-override").is_empty());
}

/// A real ID token of the provider for [`CLIENT_ID`] (`aud` = the client id, `typ: JWT`), from
/// its token endpoint. Issued without `nonce` and, as Core allows for the code flow, without
/// `at_hash`: only its `typ` tells it from an access token.
async fn id_token_of(w: &World) -> String {
    w.op.mutate_id_token(|claims, _| {
        claims.remove("at_hash");
    });
    let redirect_uri = w.url("/oauth2/callback");
    let code = w.op.issue_code(CLIENT_ID, &redirect_uri, USER, None, "");
    let res = w
        .http
        .post(w.op.token_endpoint())
        .basic_auth(CLIENT_ID, Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "authorization_code")
                .append_pair("code", &code)
                .append_pair("redirect_uri", &redirect_uri)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let id_token = body["id_token"].as_str().unwrap().to_owned();
    w.op.clear_mutations();
    id_token
}

fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn id_token_is_refused_on_bearer_routes() {
    // No `audience`: bearer tokens must be for the client id, as an ID token is.
    let w = World::start(|c| c.providers[0].audience = None).await;
    let id_token = id_token_of(&w).await;
    assert_eq!(jwt_part(&id_token, 0)["typ"], "JWT");
    let claims = jwt_part(&id_token, 1);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert!(claims.get("nonce").is_none() && claims.get("at_hash").is_none());
    for path in ["/api/x", "/oauth2/userinfo"] {
        let res = w
            .get(path, None, &[("authorization", &bearer(&id_token))])
            .await;
        assert_eq!(res.status(), 401, "{path}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
    }
    assert_eq!(w.upstream_requests(), 0);
    // An RFC 9068 access token for the same audience passes.
    let token = w.op.token().claim("sub", "svc").audience(CLIENT_ID).sign();
    assert_eq!(jwt_part(&token, 0)["typ"], "at+jwt");
    let got = echo(
        w.get("/api/x", None, &[("authorization", &bearer(&token))])
            .await,
    )
    .await;
    assert_eq!(seen(&got, "x-forwarded-user"), ["svc"]);
    // The same token without `typ: at+jwt` does not.
    let legacy = w.op.token().header("typ", "JWT").audience(CLIENT_ID).sign();
    let res = w
        .get("/api/x", None, &[("authorization", &bearer(&legacy))])
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_rule_without_trailing_slash_is_one_path() {
    let w = World::start(|c| {
        c.routes.skip_auth = Some(vec!["/public/".to_owned(), "GET=/favicon.ico".to_owned()]);
        c.routes.api = Some(vec!["/api/".to_owned(), "/status".to_owned()]);
        c.routes.bearer = Some(vec!["/token".to_owned()]);
    })
    .await;
    // The exact path is skipped; a prefix rule still covers what lies below it.
    let echo_body = echo(w.get("/favicon.ico", None, &[]).await).await;
    assert_eq!(echo_body["path"], "/favicon.ico");
    let _ = echo(w.get("/public/a/b.css", None, &[]).await).await;
    let before = w.upstream_requests();
    // Below it, or beside it, is not: a login is needed, nothing reaches the upstream.
    for path in [
        "/favicon.ico/secret",
        "/favicon.ico/",
        "/favicon.ico;x",
        "/favicon.ico%2fsecret",
        "/favicon%2eico",
    ] {
        let res = w.get(path, None, &[]).await;
        assert_eq!(res.status(), 401, "{path}");
        let res = w.navigate(path, None).await;
        assert_eq!(res.status(), 303, "{path}");
    }
    // Nor can dot segments climb out of the exact path.
    for path in ["/favicon.ico/../admin", "/favicon.ico/%2e%2e/admin"] {
        let status = raw_status(w.addr, &format!("GET {path} HTTP/1.1\r\nHost: {}", w.addr)).await;
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(w.upstream_requests(), before);
    // An API rule without a slash: /status answers 401, /status/x is an ordinary page.
    assert_eq!(w.navigate("/status", None).await.status(), 401);
    assert_eq!(w.navigate("/status/x", None).await.status(), 303);
    // A bearer rule without a slash: a token is accepted at /token only.
    let token = w.op.token().audience(AUDIENCE).sign();
    let auth = bearer(&token);
    let _ = echo(w.get("/token", None, &[("authorization", &auth)]).await).await;
    let res = w.get("/token/x", None, &[("authorization", &auth)]).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn upstream_cannot_set_the_proxy_cookie() {
    let w = World::start(|_| {}).await;
    let key = "oidc_proxy_upstream_own_cookie_dropped_total{upstream=\"a\"}";
    let before = sample(&w.metrics().await, key);
    let res = w.get("/public/set-cookie", None, &[]).await;
    assert_eq!(res.status(), 200);
    let cookies: Vec<&str> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["theme=dark; Path=/"]);
    assert_eq!(sample(&w.metrics().await, key) - before, 4.0);

    // With a session: the planted cookie never replaces it, the session goes on.
    let cookie = w.login().await;
    let res = w.get("/app/set-cookie", Some(&cookie), &[]).await;
    assert_eq!(res.status(), 200);
    assert!(session_cookie(&res).is_none_or(|c| c == cookie));
    for value in res.headers().get_all("set-cookie") {
        assert!(!value.to_str().unwrap().contains("planted"), "{value:?}");
    }
    let got = echo(w.get("/app", Some(&cookie), &[]).await).await;
    assert_eq!(seen(&got, "x-forwarded-user"), [USER]);
    assert!(
        w.upstreams[0].state.requests.load(Ordering::Relaxed) >= 3,
        "the upstream was asked"
    );
}
