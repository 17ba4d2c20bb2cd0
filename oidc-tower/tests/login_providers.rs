//! Several providers behind one `LoginLayer`, black-box against an axum app and two
//! `oidc-testing` providers: the login page and its links, starting a login at a named
//! provider, the provider a session belongs to, the mix-up defence (CB-06), back-channel
//! logout per provider (BCL-01), and the configuration errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::time::Duration;

use axum::Router;
use axum::response::Json;
use axum::routing::get;
use oidc_axum::User;
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_testing::{CallbackIss, ClientRegistration, SigningAlg, TestProvider};
use oidc_tower::login::{LoginLayer, LoginProvider};
use reqwest::header;
use serde_json::{Value, json};
use tower_sessions::MemoryStore;

use login_common::{Jar, Resp, SECRET, USER, http_client, param, query_params, send};

/// The client ids registered at provider A and provider B.
const CLIENT_A: &str = "app-a";
const CLIENT_B: &str = "app-b";
/// Display names that need HTML escaping.
const DISPLAY_A: &str = "Provider <A> & Co";
const DISPLAY_B: &str = "B's \"ID\"";
const DISPLAY_A_HTML: &str = "Provider &lt;A&gt; &amp; Co";
const DISPLAY_B_HTML: &str = "B&#x27;s &quot;ID&quot;";
const BCL_PATH: &str = "/auth/backchannel-logout";

// ---------------------------------------------------------------------------------------------
// The app: providers "a" and "b", each with its own redirect URI

struct Site {
    a: TestProvider,
    b: TestProvider,
    url: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn me(user: User) -> Json<Value> {
    Json(json!({
        "sub": user.subject(),
        "iss": user.issuer(),
        "provider": user.provider(),
        "claims": user.claims(),
    }))
}

fn client_for(op: &TestProvider, client_id: &str, redirect_uri: &str) -> OidcClient {
    let provider = Provider::builder(op.issuer())
        .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .unwrap();
    OidcClient::new(provider, client_id, redirect_uri)
        .unwrap()
        .with_client_secret(SECRET)
}

impl Site {
    async fn start() -> Self {
        Self::start_with(|layer| layer).await
    }

    /// Providers `a` (redirect URI `/auth/callback/a`) and `b` (`/auth/callback/b`); `edit`
    /// changes the layer before the app starts.
    async fn start_with(edit: impl FnOnce(LoginLayer) -> LoginLayer) -> Self {
        Self::start_with_ops(|layer, _, _| edit(layer)).await
    }

    /// As [`start_with`](Self::start_with), `edit` also getting provider A and the app URL.
    async fn start_with_ops(
        edit: impl FnOnce(LoginLayer, &TestProvider, &str) -> LoginLayer,
    ) -> Self {
        let a = TestProvider::start().await;
        let b = TestProvider::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut providers = Vec::new();
        for (name, display, op, client_id) in [
            ("a", DISPLAY_A, &a, CLIENT_A),
            ("b", DISPLAY_B, &b, CLIENT_B),
        ] {
            op.set_auto_login(Some(USER));
            let redirect_uri = format!("{url}/auth/callback/{name}");
            op.register_client(
                ClientRegistration::confidential(client_id, SECRET, &redirect_uri)
                    .add_post_logout_redirect_uri(&format!("{url}/"))
                    .with_backchannel_logout_uri(&format!("{url}{BCL_PATH}")),
            );
            providers.push(LoginProvider::new(
                name,
                display,
                client_for(op, client_id, &redirect_uri),
            ));
        }
        let layer = edit(
            LoginLayer::with_providers(&url, providers)
                .unwrap()
                .with_store(MemoryStore::default()),
            &a,
            &url,
        );
        let router = Router::new()
            .route("/", get(|| async { "home" }))
            .route("/app", get(|| async { "app" }))
            .route("/me", get(me))
            .layer(layer);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            a,
            b,
            url,
            http: http_client(),
            server,
        }
    }

    fn op(&self, name: &str) -> &TestProvider {
        match name {
            "a" | "a2" => &self.a,
            "b" => &self.b,
            _ => panic!("no provider {name}"),
        }
    }

    fn abs(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        }
    }

    /// A top-level browser navigation.
    async fn nav(&self, path: &str, jar: &mut Jar) -> Resp {
        send(
            self.http
                .get(self.abs(path))
                .header(header::ACCEPT, "text/html,application/xhtml+xml"),
            jar,
        )
        .await
    }

    /// A JSON API request (the jar is not changed).
    async fn api(&self, path: &str, jar: &Jar) -> Resp {
        let mut copy = jar.clone();
        send(
            self.http
                .get(self.abs(path))
                .header(header::ACCEPT, "application/json"),
            &mut copy,
        )
        .await
    }

    /// `/auth/login/{name}`: asserts 303 to that provider's authorization endpoint.
    async fn begin(&self, name: &str, jar: &mut Jar) -> String {
        let res = self.nav(&format!("/auth/login/{name}"), jar).await;
        assert_eq!(res.status, 303, "{}", res.body);
        let location = res.location().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}?", self.op(name).authorization_endpoint())),
            "{location}"
        );
        location
    }

    /// The provider's auto-login answer: asserts 303 to `/auth/callback/{name}`.
    async fn authorize(&self, name: &str, authorize_url: &str) -> String {
        let res = send(self.http.get(authorize_url), &mut Jar::default()).await;
        assert_eq!(res.status, 303, "{}", res.body);
        let location = res.location().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}/auth/callback/{name}?", self.url)),
            "{location}"
        );
        location
    }

    /// A full login at provider `name`.
    async fn login_at(&self, name: &str) -> Jar {
        let mut jar = Jar::default();
        let authorize = self.begin(name, &mut jar).await;
        let callback = self.authorize(name, &authorize).await;
        let res = self.nav(&callback, &mut jar).await;
        assert_eq!(res.status, 303, "callback: {}", res.body);
        assert_eq!(res.location(), Some("/"));
        jar
    }

    /// `/me` of `jar`: asserts a login at provider `name`.
    async fn assert_logged_in_at(&self, jar: &Jar, name: &str) -> Value {
        let me = self.api("/me", jar).await;
        assert_eq!(me.status, 200, "{}", me.body);
        let body = me.json();
        assert_eq!(body["provider"], name);
        assert_eq!(body["iss"], self.op(name).issuer());
        assert_eq!(body["sub"], USER);
        body
    }

    async fn assert_not_logged_in(&self, jar: &Jar) {
        let me = self.api("/me", jar).await;
        assert_eq!(me.status, 401, "{}", me.body);
    }

    fn token_requests(&self) -> usize {
        self.a.token_requests().len() + self.b.token_requests().len()
    }

    async fn deliver(&self, token: &str) -> Resp {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", token)
            .finish();
        send(
            self.http
                .post(format!("{}{BCL_PATH}", self.url))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body),
            &mut Jar::default(),
        )
        .await
    }
}

/// The `href`s of the page's links, HTML-unescaped.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| {
            let raw = &rest[..rest.find('"').unwrap()];
            assert!(!raw.contains('<') && !raw.contains('>'), "escaped: {raw}");
            raw.replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The path and decoded query of a relative link.
fn split_link(href: &str) -> (String, Vec<(String, String)>) {
    let absolute = format!("http://app.test{href}");
    let parsed = url::Url::parse(&absolute).unwrap();
    (parsed.path().to_owned(), query_params(&absolute))
}

// ---------------------------------------------------------------------------------------------
// The login page

#[tokio::test]
async fn providers_login_page_lists_every_provider_with_escaped_links() {
    let site = Site::start().await;
    let hint = "al&ice\"<x>";
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", "/app?x=1")
        .append_pair("login_hint", hint)
        .append_pair("prompt", "login")
        .append_pair("foo", "bar")
        .finish();
    let mut jar = Jar::default();
    let res = site.nav(&format!("/auth/login?{query}"), &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(jar.0.is_empty(), "the page stores nothing: {jar:?}");

    // Both display names, escaped.
    assert!(res.body.contains(DISPLAY_A_HTML), "{}", res.body);
    assert!(res.body.contains(DISPLAY_B_HTML), "{}", res.body);
    assert!(!res.body.contains("<A>"), "{}", res.body);
    assert!(!res.body.contains(DISPLAY_B), "{}", res.body);
    // The separators of the links' queries are escaped in the attribute.
    assert!(res.body.contains("&amp;login_hint="), "{}", res.body);

    let links = hrefs(&res.body);
    assert_eq!(links.len(), 2, "{links:?}");
    for (href, name) in links.iter().zip(["a", "b"]) {
        let (path, params) = split_link(href);
        assert_eq!(path, format!("/auth/login/{name}"));
        assert_eq!(
            params,
            vec![
                ("return_to".to_owned(), "/app?x=1".to_owned()),
                ("login_hint".to_owned(), hint.to_owned()),
                ("prompt".to_owned(), "login".to_owned()),
            ],
            "{href}: only return_to, login_hint and prompt are kept"
        );
    }

    // Following the link of B: to B with the hint and prompt, and back to /app?x=1.
    let res = site.nav(&links[1], &mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let authorize = res.location().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}?", site.b.authorization_endpoint())));
    assert_eq!(param(&authorize, "login_hint").as_deref(), Some(hint));
    assert_eq!(param(&authorize, "prompt").as_deref(), Some("login"));
    let callback = site.authorize("b", &authorize).await;
    let res = site.nav(&callback, &mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/app?x=1"));
    site.assert_logged_in_at(&jar, "b").await;
    assert!(site.a.authorization_requests().is_empty());
    assert!(site.a.token_requests().is_empty());
}

#[tokio::test]
async fn providers_login_page_without_parameters_has_bare_links() {
    let site = Site::start().await;
    let res = site.nav("/auth/login", &mut Jar::default()).await;
    assert_eq!(res.status, 200);
    assert_eq!(hrefs(&res.body), ["/auth/login/a", "/auth/login/b"]);
    // HEAD is a GET without a body; other methods are refused.
    let res = send(site.http.head(site.abs("/auth/login")), &mut Jar::default()).await;
    assert_eq!(res.status, 200);
    let res = send(site.http.post(site.abs("/auth/login")), &mut Jar::default()).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn providers_login_page_can_be_replaced() {
    let site = Site::start_with(|layer| {
        layer.with_login_page(|links| {
            json!(
                links
                    .iter()
                    .map(|l| json!({ "name": l.name, "display": l.display_name, "href": l.href }))
                    .collect::<Vec<_>>()
            )
            .to_string()
        })
    })
    .await;
    let res = site
        .nav(
            "/auth/login?return_to=%2Fapp&login_hint=x%20y",
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let page: Value = serde_json::from_str(&res.body).expect("exactly the replacement's text");
    assert_eq!(
        page,
        json!([
            { "name": "a", "display": DISPLAY_A, "href": "/auth/login/a?return_to=%2Fapp&login_hint=x+y" },
            { "name": "b", "display": DISPLAY_B, "href": "/auth/login/b?return_to=%2Fapp&login_hint=x+y" },
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Starting a login at a named provider

#[tokio::test]
async fn providers_login_at_a_named_provider_goes_there() {
    let site = Site::start().await;
    for (name, client_id) in [("b", CLIENT_B), ("a", CLIENT_A)] {
        let mut jar = Jar::default();
        let res = site
            .nav(
                &format!("/auth/login/{name}?login_hint=x&prompt=login&return_to=%2Fapp"),
                &mut jar,
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.body);
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let location = res.location().unwrap();
        assert!(
            location.starts_with(&format!("{}?", site.op(name).authorization_endpoint())),
            "{location}"
        );
        assert_eq!(param(location, "login_hint").as_deref(), Some("x"));
        assert_eq!(param(location, "prompt").as_deref(), Some("login"));
        assert_eq!(param(location, "client_id").as_deref(), Some(client_id));
        assert_eq!(
            param(location, "redirect_uri"),
            Some(format!("{}/auth/callback/{name}", site.url))
        );
        assert!(jar.session().is_some(), "a transaction is stored");
    }
    // A bad prompt and an over-long hint are dropped, not passed on.
    let res = site
        .nav(
            &format!("/auth/login/b?prompt=evil&login_hint={}", "h".repeat(300)),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(param(res.location().unwrap(), "prompt"), None);
    assert_eq!(param(res.location().unwrap(), "login_hint"), None);
}

#[tokio::test]
async fn providers_unknown_provider_is_404() {
    let site = Site::start().await;
    for path in [
        "/auth/login/c",
        "/auth/login/",
        "/auth/login/A",
        "/auth/login/a/b",
        "/auth/login/%61",
        "/auth/login/default",
        "/auth/login/c?return_to=%2Fapp",
    ] {
        let mut jar = Jar::default();
        let res = site.nav(path, &mut jar).await;
        assert_eq!(res.status, 404, "{path}: {}", res.body);
        assert!(res.location().is_none(), "{path}");
        assert!(jar.0.is_empty(), "{path}: no transaction stored: {jar:?}");
    }
    let res = send(
        site.http.post(site.abs("/auth/login/a")),
        &mut Jar::default(),
    )
    .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
    assert!(site.a.authorization_requests().is_empty());
    assert!(site.b.authorization_requests().is_empty());
}

#[tokio::test]
async fn providers_session_names_its_provider() {
    let site = Site::start().await;
    let at_b = site.login_at("b").await;
    let at_a = site.login_at("a").await;
    site.assert_logged_in_at(&at_b, "b").await;
    site.assert_logged_in_at(&at_a, "a").await;
    // Each code was redeemed at its own provider, by its own client.
    let (a, b) = (site.a.token_requests(), site.b.token_requests());
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a[0].basic_client_id.as_deref(), Some(CLIENT_A));
    assert_eq!(b[0].basic_client_id.as_deref(), Some(CLIENT_B));
}

#[tokio::test]
async fn providers_single_provider_is_named_default() {
    let op = TestProvider::start().await;
    let client = client_for(&op, CLIENT_A, "http://127.0.0.1:1/auth/callback");
    let layer = LoginLayer::new(client, "http://127.0.0.1:1").unwrap();
    assert_eq!(layer.providers().len(), 1);
    assert_eq!(layer.providers()[0].name(), "default");
    assert_eq!(layer.providers()[0].display_name(), "127.0.0.1");
}

#[tokio::test]
async fn providers_navigation_without_session_goes_to_the_login_page() {
    let site = Site::start().await;
    let mut jar = Jar::default();
    let res = site.nav("/app?x=1&y=%2F", &mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let location = res.location().unwrap().to_owned();
    let (path, params) = split_link(&location);
    assert_eq!(path, "/auth/login");
    assert_eq!(
        params,
        vec![("return_to".to_owned(), "/app?x=1&y=%2F".to_owned())]
    );
    assert!(
        jar.0.is_empty(),
        "no transaction before a provider is chosen"
    );
    assert!(site.a.authorization_requests().is_empty());
    assert!(site.b.authorization_requests().is_empty());

    // An API request is answered 401, never redirected.
    let res = site.api("/app", &Jar::default()).await;
    assert_eq!(res.status, 401);
    assert!(res.location().is_none());

    // The page keeps the way back; logging in at A returns there.
    let page = site.nav(&location, &mut jar).await;
    assert_eq!(page.status, 200);
    let links = hrefs(&page.body);
    let (_, params) = split_link(&links[0]);
    assert_eq!(param_of(&params, "return_to"), Some("/app?x=1&y=%2F"));
    let res = site.nav(&links[0], &mut jar).await;
    assert_eq!(res.status, 303);
    let callback = site.authorize("a", res.location().unwrap()).await;
    let res = site.nav(&callback, &mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/app?x=1&y=%2F"));
    site.assert_logged_in_at(&jar, "a").await;
}

fn param_of<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// CB-06: mix-up

/// `callback` with its path replaced by `/auth/callback/{name}` (query kept).
fn at_callback_of(site: &Site, callback: &str, name: &str) -> String {
    let mut url = url::Url::parse(callback).unwrap();
    url.set_path(&format!("/auth/callback/{name}"));
    let moved: String = url.into();
    assert!(moved.starts_with(&site.url));
    moved
}

#[tokio::test]
async fn cb_06_response_at_another_providers_callback_is_refused() {
    let site = Site::start().await;
    let mut jar = Jar::default();
    let authorize = site.begin("a", &mut jar).await;
    let callback = site.authorize("a", &authorize).await;
    let pre = jar.clone();

    let res = site
        .nav(&at_callback_of(&site, &callback, "b"), &mut jar)
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.location().is_none());
    assert_eq!(site.token_requests(), 0, "no code redeemed anywhere");
    assert!(
        res.new_session_values()
            .iter()
            .all(|v| Some(v.as_str()) == pre.session()),
        "no new session: {:?}",
        res.set_cookies()
    );
    site.assert_not_logged_in(&jar).await;

    // The transaction was consumed: the genuine callback no longer works either.
    let res = site.nav(&callback, &mut jar).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(site.token_requests(), 0);
    site.assert_not_logged_in(&jar).await;
}

#[tokio::test]
async fn cb_06_crossed_responses_of_two_logins_are_refused() {
    let site = Site::start().await;
    // One browser starts a login at both providers.
    let mut jar = Jar::default();
    let to_a = site.begin("a", &mut jar).await;
    let to_b = site.begin("b", &mut jar).await;
    let from_a = site.authorize("a", &to_a).await;
    let from_b = site.authorize("b", &to_b).await;

    // A's response at B's callback and B's response at A's callback.
    for (what, moved) in [
        ("A's response at B", at_callback_of(&site, &from_a, "b")),
        ("B's response at A", at_callback_of(&site, &from_b, "a")),
    ] {
        let res = site.nav(&moved, &mut jar).await;
        assert_eq!(res.status, 400, "{what}: {}", res.body);
        assert_eq!(site.token_requests(), 0, "{what}");
        site.assert_not_logged_in(&jar).await;
    }
}

#[tokio::test]
async fn cb_06_iss_of_another_provider_is_refused() {
    let site = Site::start().await;
    // A's response claims to come from B (RFC 9207), at A's callback.
    site.a.set_callback_iss(CallbackIss::Value(site.b.issuer()));
    let mut jar = Jar::default();
    let authorize = site.begin("a", &mut jar).await;
    let callback = site.authorize("a", &authorize).await;
    assert_eq!(param(&callback, "iss"), Some(site.b.issuer()));
    let res = site.nav(&callback, &mut jar).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(site.token_requests(), 0, "no code redeemed anywhere");
    site.assert_not_logged_in(&jar).await;

    // And at B's callback.
    let mut jar = Jar::default();
    let authorize = site.begin("a", &mut jar).await;
    let callback = site.authorize("a", &authorize).await;
    let res = site
        .nav(&at_callback_of(&site, &callback, "b"), &mut jar)
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(site.token_requests(), 0);
    site.assert_not_logged_in(&jar).await;
}

// ---------------------------------------------------------------------------------------------
// BCL-01 with several providers: a logout token ends only its provider's sessions

#[tokio::test]
async fn bcl_01_logout_token_ends_only_its_providers_sessions() {
    let site = Site::start().await;
    // Every TestProvider signs with the same committed keys: B moves to another RSA key and
    // stops publishing A's, so that A's signature is foreign to B.
    let shared = site.b.kid(SigningAlg::RS256);
    assert_eq!(shared, site.a.kid(SigningAlg::RS256));
    site.b.rotate_key(SigningAlg::RS256);
    site.b.remove_key(&shared);
    let at_a = site.login_at("a").await;
    let at_b = site.login_at("b").await;
    let at_b_too = site.login_at("b").await;
    let sid_b = site.assert_logged_in_at(&at_b, "b").await["claims"]["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Hostile: A's key under B's issuer, A's token for B's client, an unknown issuer.
    for (what, token) in [
        (
            "B's issuer signed by A",
            site.a
                .logout_token(CLIENT_B, Some(USER), None)
                .claim("iss", site.b.issuer())
                .sign(),
        ),
        (
            "A's token for B's client",
            site.a.logout_token(CLIENT_B, Some(USER), None).sign(),
        ),
        (
            "an unknown issuer",
            site.a
                .logout_token(CLIENT_A, Some(USER), None)
                .claim("iss", "https://evil.example")
                .sign(),
        ),
        ("not a JWT", "x.y.z".to_owned()),
    ] {
        let res = site.deliver(&token).await;
        assert_eq!(res.status, 400, "{what}: {}", res.body);
        assert_eq!(res.json()["error"], "invalid_request", "{what}");
        site.assert_logged_in_at(&at_a, "a").await;
        site.assert_logged_in_at(&at_b, "b").await;
        site.assert_logged_in_at(&at_b_too, "b").await;
    }

    // The same user (same sub) at both: A's sub-only token ends only the session at A.
    let token = site.a.logout_token(CLIENT_A, Some(USER), None).sign();
    let res = site.deliver(&token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    site.assert_not_logged_in(&at_a).await;
    site.assert_logged_in_at(&at_b, "b").await;
    site.assert_logged_in_at(&at_b_too, "b").await;

    // B's sid token ends that session at B only.
    let delivery = site
        .b
        .send_backchannel_logout(CLIENT_B, Some(USER), Some(&sid_b))
        .await;
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    site.assert_not_logged_in(&at_b).await;
    site.assert_logged_in_at(&at_b_too, "b").await;
}

#[tokio::test]
async fn bcl_01_two_providers_at_one_issuer_each_get_their_logout_tokens() {
    // A second client registered at provider A, as its own provider "a2" with its own
    // redirect URI (the configuration `with_provider` accepts for one issuer).
    let site = Site::start_with_ops(|layer, a, url| {
        let redirect_uri = format!("{url}/auth/callback/a2");
        a.register_client(
            ClientRegistration::confidential("app-a2", SECRET, &redirect_uri)
                .with_backchannel_logout_uri(&format!("{url}{BCL_PATH}")),
        );
        layer
            .with_provider(LoginProvider::new(
                "a2",
                "A, second client",
                client_for(a, "app-a2", &redirect_uri),
            ))
            .unwrap()
    })
    .await;
    let at_a = site.login_at("a").await;
    let at_a2 = site.login_at("a2").await;
    site.assert_logged_in_at(&at_a, "a").await;
    let sid_a2 = site.assert_logged_in_at(&at_a2, "a2").await["claims"]["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Provider A logs out the provider session of the second client's login: the logout
    // token is addressed to that client (aud = app-a2), as BCL §2.4 requires.
    let token = site
        .a
        .logout_token("app-a2", Some(USER), Some(&sid_a2))
        .sign();
    let res = site.deliver(&token).await;
    assert_eq!(
        res.status, 200,
        "a genuine logout token for the second client of one issuer: {}",
        res.body
    );
    site.assert_not_logged_in(&at_a2).await;
    site.assert_logged_in_at(&at_a, "a").await;
}

#[tokio::test]
async fn bcl_01_logout_token_of_one_issuer_cannot_end_sessions_at_another() {
    // Provider "c" has the issuer `http://127.0.0.1` (port 80), a prefix of provider B's
    // issuer `http://127.0.0.1:PORT`: as `https://idp.example.com` and
    // `https://idp.example.com:8443` would be. Its keys are served by A's JWKS endpoint
    // (and its login endpoints are A's: a provider configured by hand needs them to be
    // accepted by `LoginLayer`; no login happens at "c").
    let site = Site::start_with_ops(|layer, a, url| {
        let provider = Provider::builder("http://127.0.0.1")
            .with_jwks_uri(a.jwks_uri())
            .with_authorization_endpoint(a.authorization_endpoint())
            .with_token_endpoint(a.token_endpoint())
            .build()
            .unwrap();
        let client = OidcClient::new(provider, "app-c", format!("{url}/auth/callback/c"))
            .unwrap()
            .with_client_secret(SECRET);
        layer
            .with_provider(LoginProvider::new("c", "C", client))
            .unwrap()
    })
    .await;
    let at_b = site.login_at("b").await;
    let sid_b = site.assert_logged_in_at(&at_b, "b").await["claims"]["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let port_b = site.b.addr().port();
    assert_eq!(site.b.issuer(), format!("http://127.0.0.1:{port_b}"));

    // Genuine logout tokens of provider C, for users and sessions of C that happen to be
    // spelled "PORT:user-1" and "PORT:<sid>": they must not touch anything at B.
    for (what, sub, sid) in [
        ("sub", Some(format!("{port_b}:{USER}")), None),
        ("sid", None, Some(format!("{port_b}:{sid_b}"))),
    ] {
        let token = site
            .a
            .logout_token("app-c", sub.as_deref(), sid.as_deref())
            .claim("iss", "http://127.0.0.1")
            .sign();
        let res = site.deliver(&token).await;
        assert_eq!(res.status, 200, "C's {what} token is genuine: {}", res.body);
        site.assert_logged_in_at(&at_b, "b").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration errors

fn offline_client(issuer: &str, client_id: &str, redirect_uri: &str) -> OidcClient {
    let provider = Provider::builder(issuer).build().unwrap();
    OidcClient::new(provider, client_id, redirect_uri).unwrap()
}

#[test]
fn providers_configuration_errors() {
    let app = "https://app.example.com";
    let cb = |path: &str| format!("{app}{path}");
    let one = |name: &str, issuer: &str, redirect: &str| {
        LoginProvider::new(name, name, offline_client(issuer, "app", redirect))
    };
    let idp1 = "https://id1.example.com";
    let idp2 = "https://id2.example.com";

    // Accepted: distinct names; one issuer with two redirect URIs; two issuers sharing one.
    for (what, providers) in [
        (
            "two providers",
            vec![
                one("a", idp1, &cb("/auth/callback/a")),
                one("b", idp2, &cb("/auth/callback/b")),
            ],
        ),
        (
            "one issuer, two redirect uris",
            vec![
                one("a", idp1, &cb("/auth/callback/a")),
                one("b", idp1, &cb("/auth/callback/b")),
            ],
        ),
        (
            "two issuers, one redirect uri",
            vec![
                one("a", idp1, &cb("/auth/callback")),
                one("b", idp2, &cb("/auth/callback")),
            ],
        ),
        (
            "every name character",
            vec![one("Az09-_.", idp1, &cb("/auth/callback"))],
        ),
    ] {
        let layer = LoginLayer::with_providers(app, providers);
        assert!(layer.is_ok(), "{what}: {layer:?}");
    }

    // Refused.
    for (what, providers) in [
        (
            "duplicate names",
            vec![
                one("a", idp1, &cb("/auth/callback/a")),
                one("a", idp2, &cb("/auth/callback/b")),
            ],
        ),
        (
            "same issuer and redirect uri",
            vec![
                one("a", idp1, &cb("/auth/callback")),
                one("b", idp1, &cb("/auth/callback")),
            ],
        ),
        ("no provider", vec![]),
        (
            "callback on the login path",
            vec![one("a", idp1, &cb("/auth/login"))],
        ),
        (
            "callback under the login path",
            vec![one("a", idp1, &cb("/auth/login/a"))],
        ),
        (
            "callback on the logout path",
            vec![one("a", idp1, &cb("/auth/logout"))],
        ),
        (
            "callback on the back-channel logout path",
            vec![one("a", idp1, &cb("/auth/backchannel-logout"))],
        ),
        ("empty name", vec![one("", idp1, &cb("/auth/callback"))]),
        (
            "name with a slash",
            vec![one("a/b", idp1, &cb("/auth/callback"))],
        ),
        (
            "name with a space",
            vec![one("a b", idp1, &cb("/auth/callback"))],
        ),
        (
            "name not ascii",
            vec![one("é", idp1, &cb("/auth/callback"))],
        ),
        (
            "name of 65 characters",
            vec![one(&"a".repeat(65), idp1, &cb("/auth/callback"))],
        ),
        (
            "redirect uri on another origin",
            vec![one("a", idp1, "https://other.example.com/auth/callback")],
        ),
    ] {
        let layer = LoginLayer::with_providers(app, providers);
        assert!(layer.is_err(), "{what}: must be refused");
    }

    // The app's path prefix: a redirect URI outside it is refused.
    let layer = LoginLayer::with_providers(
        "https://app.example.com/app",
        [one("a", idp1, "https://app.example.com/auth/callback")],
    );
    assert!(layer.is_err(), "redirect uri outside the app's path");

    // with_provider on a built layer checks the same.
    let layer = LoginLayer::with_providers(app, [one("a", idp1, &cb("/auth/callback/a"))]).unwrap();
    assert!(
        layer
            .clone()
            .with_provider(one("a", idp2, &cb("/auth/callback/x")))
            .is_err()
    );
    assert!(
        layer
            .clone()
            .with_provider(one("b", idp1, &cb("/auth/callback/a")))
            .is_err()
    );
    let layer = layer
        .with_provider(one("b", idp2, &cb("/auth/callback/b")))
        .unwrap();
    let names: Vec<&str> = layer.providers().iter().map(LoginProvider::name).collect();
    assert_eq!(names, ["a", "b"]);
    // LoginLayer::new names its provider "default": a second "default" is refused.
    let single = LoginLayer::new(offline_client(idp1, "app", &cb("/auth/callback")), app).unwrap();
    assert!(
        single
            .with_provider(one("default", idp2, &cb("/auth/callback/d")))
            .is_err()
    );
}
