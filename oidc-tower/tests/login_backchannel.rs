//! Back-channel logout (`POST /auth/backchannel-logout`) of `LoginLayer`, black-box against an
//! axum app and an `oidc-testing` provider: the BCL cases of `SECURITY-CASES.md`, the `jti`
//! replay and expiry rules, the transport limits (BCL-08, DOS-01), a failing session registry
//! (503 with the `jti` released), and SES-06 after a back-channel logout (an old cookie, an old
//! record written back, a request in flight).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::response::Json;
use axum::routing::get;
use oidc_axum::User;
use oidc_core::flow::OidcClient;
use oidc_core::{Algorithm, Provider};
use oidc_testing::{ClientRegistration, Failure, SigningAlg, TestProvider, TokenBuilder};
use oidc_tower::login::registry::RegistryError;
use oidc_tower::login::store::LoginStore;
use oidc_tower::login::{LoginLayer, MemoryRegistry, SessionRegistry};
use reqwest::header;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, Session, SessionStore};

use login_common::{App, Builder, CLIENT_ID, Jar, Resp, SECRET, USER, http_client, send};

/// The back-channel logout path of the layer (its default).
const BCL_PATH: &str = "/auth/backchannel-logout";
/// Another user of the provider, whose sessions must survive `USER`'s logouts.
const OTHER_USER: &str = "user-2";
/// The largest body the endpoint accepts.
const MAX_BODY: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The default app with the back-channel logout URI registered at the provider.
fn bcl_builder() -> Builder {
    Builder::new().registration(|registration| {
        let uri = registration.redirect_uris()[0].replace("/auth/callback", BCL_PATH);
        registration.with_backchannel_logout_uri(&uri)
    })
}

async fn bcl_app() -> App {
    bcl_builder().start().await
}

/// Sends a request as the provider would (no cookie at all) and reads the answer.
async fn send_plain(req: reqwest::RequestBuilder) -> Resp {
    let mut jar = Jar::default();
    let res = send(req, &mut jar).await;
    assert!(
        jar.0.is_empty(),
        "no cookie is set: {:?}",
        res.set_cookies()
    );
    res
}

/// The form body `logout_token=<token>`.
fn form(token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish()
}

/// POSTs `body` with `content_type` (none when `None`) to the back-channel endpoint of the app
/// at `base`, without any cookie.
async fn post_bcl(
    http: &reqwest::Client,
    base: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = http.post(format!("{base}{BCL_PATH}")).body(body);
    if let Some(content_type) = content_type {
        req = req.header(header::CONTENT_TYPE, content_type);
    }
    send_plain(req).await
}

/// POSTs `logout_token=<token>` as the provider does.
async fn deliver(app: &App, token: &str) -> Resp {
    post_bcl(
        &app.http,
        &app.url,
        Some("application/x-www-form-urlencoded"),
        form(token),
    )
    .await
}

/// Asserts the success answer: 200, `Cache-Control: no-store`, an empty body, no redirect.
fn assert_accepted(what: &str, res: &Resp) {
    assert_eq!(res.status, 200, "{what}: {}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
    assert!(res.body.is_empty(), "{what}: empty body: {}", res.body);
    assert!(res.location().is_none(), "{what}: never a redirect");
}

/// Asserts the refusal of a token or request: 400 `{"error":"invalid_request",…}` (JSON),
/// `Cache-Control: no-store`, no redirect.
fn assert_invalid(what: &str, res: &Resp) {
    assert_eq!(res.status, 400, "{what}: {}", res.body);
    assert_eq!(
        res.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
    assert!(res.location().is_none(), "{what}: never a redirect");
    let body: Value = serde_json::from_str(&res.body)
        .unwrap_or_else(|e| panic!("{what}: a JSON body ({e}): {}", res.body));
    assert_eq!(body["error"], "invalid_request", "{what}: {body}");
    assert!(
        body["error_description"].is_string(),
        "{what}: a description: {body}"
    );
}

/// The `sid` of the provider session a browser logged in with (from its ID token claims).
async fn sid_of(app: &App, jar: &Jar) -> String {
    let me = app.me(jar).await;
    assert_eq!(me.status, 200, "{}", me.body);
    me.json()["claims"]["sid"]
        .as_str()
        .expect("the ID token has a sid")
        .to_owned()
}

/// Logs a browser in as `user` (the provider's auto-login user is set back to `USER`).
async fn login_as(app: &App, user: &str) -> Jar {
    app.op.set_auto_login(Some(user));
    let jar = app.login().await;
    app.op.set_auto_login(Some(USER));
    let me = app.me(&jar).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], user);
    jar
}

/// Asserts that `jar` has no session any more, both ways a browser asks: an API request gets
/// 401, a navigation a 303 to the provider (a new login), and the store has no session for
/// the cookie.
async fn assert_logged_out(app: &App, jar: &Jar, what: &str) {
    let me = app.me(jar).await;
    assert_eq!(me.status, 401, "{what}: /me must be unauthenticated");
    assert!(me.location().is_none(), "{what}");
    let mut copy = jar.clone();
    let nav = app.nav("/app", &mut copy).await;
    assert_eq!(nav.status, 303, "{what}: navigation → login: {}", nav.body);
    assert!(
        nav.location()
            .unwrap()
            .starts_with(&format!("{}?", app.op.authorization_endpoint())),
        "{what}: {:?}",
        nav.location()
    );
    assert!(
        !app.store_has(jar.session().unwrap()).await,
        "{what}: the server-side session is gone"
    );
}

/// Two browsers of `USER` (two provider sessions, so two `sid`s) and one of `OTHER_USER`.
struct Scene {
    first: Jar,
    first_sid: String,
    second: Jar,
    second_sid: String,
    other: Jar,
}

impl Scene {
    async fn new(app: &App) -> Self {
        let first = login_as(app, USER).await;
        let second = login_as(app, USER).await;
        let other = login_as(app, OTHER_USER).await;
        let first_sid = sid_of(app, &first).await;
        let second_sid = sid_of(app, &second).await;
        assert_ne!(first_sid, second_sid, "two provider sessions");
        assert_ne!(first.session(), second.session());
        Self {
            first,
            first_sid,
            second,
            second_sid,
            other,
        }
    }

    /// Every session is still logged in.
    async fn assert_untouched(&self, app: &App, what: &str) {
        for (name, jar) in [
            ("first", &self.first),
            ("second", &self.second),
            ("other", &self.other),
        ] {
            let me = app.me(jar).await;
            assert_eq!(me.status, 200, "{what}: the {name} session is kept");
        }
    }

    /// A genuine logout token for the first browser's session (`sub` and `sid`): what each
    /// hostile variant starts from, so that accepting one would end that session.
    fn token(&self, app: &App) -> TokenBuilder {
        app.op
            .logout_token(CLIENT_ID, Some(USER), Some(&self.first_sid))
    }
}

/// Delivers each hostile token and asserts 400 `invalid_request` with every session kept.
async fn assert_all_refused(app: &App, scene: &Scene, cases: Vec<(&str, String)>) {
    for (what, token) in cases {
        let res = deliver(app, &token).await;
        assert_invalid(what, &res);
        scene.assert_untouched(app, what).await;
    }
}

/// The stored record of the session of `jar`.
async fn record_of(store: &LoginStore, jar: &Jar) -> Record {
    let id = Id::from_str(jar.session().unwrap()).unwrap();
    store.load(&id).await.unwrap().expect("a stored session")
}

// ---------------------------------------------------------------------------------------------
// BCL-01: valid logout tokens

#[tokio::test]
async fn bcl_01_sid_token_ends_exactly_that_session() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;

    // With an unknown claim of each JSON type: ignored.
    let token = scene
        .token(&app)
        .claim("ignored_claim", "x")
        .claim("ignored_object", json!({ "a": [1, 2, { "b": null }] }))
        .sign();
    let res = deliver(&app, &token).await;
    assert_accepted("sid token", &res);

    assert_logged_out(&app, &scene.first, "the session with that sid").await;
    let me = app.me(&scene.second).await;
    assert_eq!(
        me.status, 200,
        "the same user's other provider session is kept"
    );
    assert_eq!(me.json()["claims"]["sid"], scene.second_sid);
    assert_eq!(
        app.me(&scene.other).await.status,
        200,
        "another user is kept"
    );
}

#[tokio::test]
async fn bcl_01_sid_token_without_sub_ends_that_session() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let token = app
        .op
        .logout_token(CLIENT_ID, None, Some(&scene.second_sid))
        .sign();
    assert_accepted("sid only", &deliver(&app, &token).await);
    assert_logged_out(&app, &scene.second, "sid only").await;
    app.assert_logged_in(&scene.first).await;
    assert_eq!(app.me(&scene.other).await.status, 200);
}

#[tokio::test]
async fn bcl_01_sub_only_token_ends_every_session_of_the_user() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let token = app.op.logout_token(CLIENT_ID, Some(USER), None).sign();
    let res = deliver(&app, &token).await;
    assert_accepted("sub token", &res);

    assert_logged_out(&app, &scene.first, "first session of the user").await;
    assert_logged_out(&app, &scene.second, "second session of the user").await;
    let me = app.me(&scene.other).await;
    assert_eq!(me.status, 200, "another user is kept");
    assert_eq!(me.json()["sub"], OTHER_USER);

    // The user logs in again: the new session is not ended by what came before, and a second
    // sub-only token ends it too (the index is rebuilt at each login).
    let again = login_as(&app, USER).await;
    let token = app.op.logout_token(CLIENT_ID, Some(USER), None).sign();
    assert_accepted("second sub token", &deliver(&app, &token).await);
    assert_logged_out(&app, &again, "new session of the user").await;
    assert_eq!(app.me(&scene.other).await.status, 200);
}

#[tokio::test]
async fn bcl_01_unknown_sid_or_sub_is_a_no_op() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let cases = [
        ("unknown sid", None, Some("no-such-provider-session")),
        // `sid` wins over `sub`: the user's other sessions are not ended.
        (
            "unknown sid with the user's sub",
            Some(USER),
            Some("no-such-provider-session"),
        ),
        ("unknown sub", Some("nobody"), None),
    ];
    for (what, sub, sid) in cases {
        let token = app.op.logout_token(CLIENT_ID, sub, sid).sign();
        assert_accepted(what, &deliver(&app, &token).await);
        scene.assert_untouched(&app, what).await;
    }
}

#[tokio::test]
async fn bcl_01_provider_end_session_delivers_to_the_backchannel_uri() {
    let app = bcl_app().await;

    // Two browsers of the same user, each keeping its provider cookie (its own provider
    // session, so its own sid).
    let mut browsers = Vec::new();
    for _ in 0..2 {
        let mut jar = Jar::default();
        let mut op_jar = Jar::default();
        let authorize = app.begin(&mut jar, None).await;
        let at_op = send(app.http.get(&authorize), &mut op_jar).await;
        assert_eq!(at_op.status, 303, "{}", at_op.body);
        assert!(op_jar.0.contains_key("op_session"), "{op_jar:?}");
        let res = app.callback(at_op.location().unwrap(), &mut jar).await;
        assert_eq!(res.status, 303, "{}", res.body);
        app.assert_logged_in(&jar).await;
        browsers.push((jar, op_jar));
    }
    let sid = sid_of(&app, &browsers[0].0).await;
    assert!(app.op.session_ids(USER).contains(&sid));

    // The user logs out at the provider in the first browser: the provider tells the app.
    let mut op_jar = browsers[0].1.clone();
    let res = send(app.http.get(app.op.end_session_endpoint()), &mut op_jar).await;
    assert_eq!(
        res.status, 200,
        "the provider's logged-out page: {}",
        res.body
    );
    let deliveries = app.op.backchannel_deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = &deliveries[0];
    assert_eq!(delivery.client_id, CLIENT_ID);
    assert_eq!(delivery.uri, format!("{}{BCL_PATH}", app.url));
    assert_eq!(delivery.sid.as_deref(), Some(sid.as_str()));
    assert_eq!(delivery.sub.as_deref(), Some(USER));
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    assert_eq!(delivery.header("cache-control"), Some("no-store"));
    assert_eq!(delivery.error, None);

    assert_logged_out(&app, &browsers[0].0, "logged out at the provider").await;
    app.assert_logged_in(&browsers[1].0).await;

    // The second browser logs out at the app (RP-initiated): the provider's end-session
    // endpoint then delivers a logout token for a session the app already ended → 200.
    let mut jar = browsers[1].0.clone();
    let logout = app.logout(&mut jar).await;
    assert_eq!(logout.status, 303, "{}", logout.body);
    let end_session = logout.location().unwrap().to_owned();
    assert!(end_session.starts_with(&app.op.end_session_endpoint()));
    let mut op_jar = browsers[1].1.clone();
    let res = send(app.http.get(&end_session), &mut op_jar).await;
    assert_eq!(res.status, 303, "back to the app: {}", res.body);
    let deliveries = app.op.backchannel_deliveries();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[1].status, Some(200), "{:?}", deliveries[1]);
    assert_logged_out(&app, &browsers[1].0, "logged out at the app").await;
}

#[tokio::test]
async fn bcl_01_send_backchannel_logout_of_the_provider_is_accepted() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let delivery = app
        .op
        .send_backchannel_logout(CLIENT_ID, Some(USER), Some(&scene.first_sid))
        .await;
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    assert_eq!(delivery.header("cache-control"), Some("no-store"));
    assert!(delivery.body.is_empty());
    assert_logged_out(&app, &scene.first, "delivered by the provider").await;
    app.assert_logged_in(&scene.second).await;
}

// ---------------------------------------------------------------------------------------------
// BCL-02 … BCL-06: hostile logout tokens → 400, sessions untouched

#[tokio::test]
async fn bcl_02_unsigned_wrongly_signed_or_foreign_key_tokens_are_refused() {
    // The client expects RS256 only (as the OIDF suite registers it): a valid ES256 or PS256
    // signature by the provider is the wrong algorithm.
    let app = bcl_builder()
        .client(|client| client.with_id_token_algorithms([Algorithm::RS256]).unwrap())
        .start()
        .await;
    let scene = Scene::new(&app).await;
    let base = scene.token(&app);
    let cases = vec![
        ("alg none", base.sign_none("none", "")),
        ("alg NONE", base.sign_none("NONE", "")),
        (
            "alg none with a signature",
            base.sign_none("none", "c2lnbmF0dXJl"),
        ),
        (
            "wrong alg ES256",
            base.clone().alg(SigningAlg::ES256).sign(),
        ),
        (
            "wrong alg PS256",
            base.clone().alg(SigningAlg::PS256).sign(),
        ),
        (
            "wrong alg EdDSA",
            base.clone().alg(SigningAlg::EdDSA).sign(),
        ),
        (
            "HS256 keyed with the RSA public key",
            base.sign_hs256(&app.op.rsa_public_key_pem()),
        ),
        (
            "HS256 keyed with the client secret",
            base.sign_hs256(SECRET.as_bytes()),
        ),
        ("tampered signature", base.sign_tampered_signature()),
        (
            "tampered payload",
            base.sign_then_replace_claim("sub", OTHER_USER),
        ),
        ("foreign key, published kid", base.sign_with_foreign_key()),
        (
            "foreign key, unknown kid",
            base.clone()
                .header("kid", "no-such-kid")
                .sign_with_foreign_key(),
        ),
        (
            "the provider's key under an unknown kid",
            base.clone().header("kid", "no-such-kid").sign(),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("two segments", "eyJhbGciOiJub25lIn0.e30".to_owned()),
    ];
    assert_all_refused(&app, &scene, cases).await;

    // A refused token does not use up its jti: the genuine token with the same jti is accepted.
    let genuine = base.sign();
    assert_accepted("the genuine token", &deliver(&app, &genuine).await);
    assert_logged_out(&app, &scene.first, "the genuine token").await;
    app.assert_logged_in(&scene.second).await;
}

#[tokio::test]
async fn bcl_02_es256_is_accepted_when_the_client_allows_it() {
    // The control of the wrong-alg case: with the default algorithms (RS256, ES256) the same
    // ES256 token is genuine.
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let token = scene.token(&app).alg(SigningAlg::ES256).sign();
    assert_accepted("ES256", &deliver(&app, &token).await);
    assert_logged_out(&app, &scene.first, "ES256").await;
}

#[tokio::test]
async fn bcl_03_wrong_iss_or_aud_is_refused() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let base = scene.token(&app);
    let issuer = app.op.issuer();
    let cases = vec![
        (
            "another issuer",
            base.clone().claim("iss", "https://evil.example").sign(),
        ),
        (
            "issuer with a trailing slash",
            base.clone().claim("iss", format!("{issuer}/")).sign(),
        ),
        ("no iss", base.clone().without_claim("iss").sign()),
        (
            "another audience",
            base.clone().audience("other-client").sign(),
        ),
        (
            "an untrusted extra audience",
            base.clone()
                .audience(json!([CLIENT_ID, "other-client"]))
                .sign(),
        ),
        ("no aud", base.clone().without_claim("aud").sign()),
        ("aud a number", base.clone().audience(7).sign()),
    ];
    assert_all_refused(&app, &scene, cases).await;
}

#[tokio::test]
async fn bcl_04_missing_or_wrong_events_are_refused() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let base = scene.token(&app);
    let cases = vec![
        ("no events", base.clone().without_claim("events").sign()),
        (
            "another event",
            base.clone()
                .claim(
                    "events",
                    json!({ "http://schemas.openid.net/event/foobar": {} }),
                )
                .sign(),
        ),
        ("events a string", base.clone().claim("events", "x").sign()),
        (
            "events an array",
            base.clone()
                .claim(
                    "events",
                    json!(["http://schemas.openid.net/event/backchannel-logout"]),
                )
                .sign(),
        ),
        (
            "the event not an object",
            base.clone()
                .claim(
                    "events",
                    json!({ "http://schemas.openid.net/event/backchannel-logout": "x" }),
                )
                .sign(),
        ),
    ];
    assert_all_refused(&app, &scene, cases).await;
}

#[tokio::test]
async fn bcl_05_nonce_id_token_or_access_token_type_is_refused() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let base = scene.token(&app);

    // The first browser's real ID token (from its stored session), posted as a logout token.
    let record = record_of(&app.store, &scene.first).await;
    let id_token = record.data["oidc.login"]["tokens"]["id_token"]
        .as_str()
        .expect("the stored ID token")
        .to_owned();
    assert_eq!(
        login_common::jwt_claims(&id_token)["sid"],
        scene.first_sid.as_str()
    );

    let cases = vec![
        ("nonce", base.clone().claim("nonce", "n-1").sign()),
        ("the user's ID token", id_token),
        (
            "an ID token shape (typ JWT, nonce, no events)",
            base.clone()
                .header("typ", "JWT")
                .claim("nonce", "n-1")
                .without_claim("events")
                .sign(),
        ),
        ("typ at+jwt", base.clone().header("typ", "at+jwt").sign()),
        (
            "typ application/at+jwt",
            base.clone().header("typ", "application/at+jwt").sign(),
        ),
        (
            "an access token",
            app.op
                .token()
                .audience(CLIENT_ID)
                .claim("sid", scene.first_sid.as_str())
                .sign(),
        ),
    ];
    assert_all_refused(&app, &scene, cases).await;

    // The `typ` values a logout token may have.
    for (what, typ) in [
        ("no typ", None),
        ("typ JWT", Some("JWT")),
        ("typ application/logout+jwt", Some("application/logout+jwt")),
    ] {
        let builder = app.op.logout_token(CLIENT_ID, Some(OTHER_USER), None);
        let token = match typ {
            Some(typ) => builder.header("typ", typ).sign(),
            None => builder.without_header("typ").sign(),
        };
        assert_accepted(what, &deliver(&app, &token).await);
    }
    assert_logged_out(&app, &scene.other, "ended by the accepted tokens").await;
    app.assert_logged_in(&scene.first).await;
}

#[tokio::test]
async fn bcl_06_neither_sub_nor_sid_is_refused() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let cases = vec![
        (
            "neither sub nor sid",
            app.op.logout_token(CLIENT_ID, None, None).sign(),
        ),
        (
            "empty sid, no sub",
            app.op.logout_token(CLIENT_ID, None, Some("")).sign(),
        ),
        (
            "sid not a string",
            scene.token(&app).claim("sid", 42).sign(),
        ),
        (
            "empty sub, no sid",
            app.op.logout_token(CLIENT_ID, Some(""), None).sign(),
        ),
    ];
    assert_all_refused(&app, &scene, cases).await;
}

// ---------------------------------------------------------------------------------------------
// jti and time

#[tokio::test]
async fn bcl_jti_replay_is_refused() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    // A sub-only token ends every session of the user; its replay must end none.
    let token = app.op.logout_token(CLIENT_ID, Some(USER), None).sign();
    assert_accepted("first delivery", &deliver(&app, &token).await);
    assert_logged_out(&app, &scene.first, "first delivery").await;
    assert_logged_out(&app, &scene.second, "first delivery").await;

    let again = login_as(&app, USER).await;
    let res = deliver(&app, &token).await;
    assert_invalid("replayed jti", &res);
    app.assert_logged_in(&again).await;
    assert_eq!(app.me(&scene.other).await.status, 200);

    // The same jti in another, validly signed token is a replay too.
    let same_jti = app
        .op
        .logout_token(CLIENT_ID, Some(USER), None)
        .claim("jti", login_common::jwt_claims(&token)["jti"].clone())
        .sign();
    assert_invalid(
        "another token with a used jti",
        &deliver(&app, &same_jti).await,
    );
    app.assert_logged_in(&again).await;

    // No or an empty jti is no token at all.
    let scene_token = app.op.logout_token(CLIENT_ID, Some(USER), None);
    for (what, token) in [
        ("no jti", scene_token.clone().without_claim("jti").sign()),
        ("empty jti", scene_token.clone().claim("jti", "").sign()),
        ("jti a number", scene_token.claim("jti", 1).sign()),
    ] {
        assert_invalid(what, &deliver(&app, &token).await);
        app.assert_logged_in(&again).await;
    }
}

#[tokio::test]
async fn bcl_expired_or_undated_token_is_refused() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let base = scene.token(&app);
    let cases = vec![
        (
            "expired 10 minutes ago",
            base.clone().expires_in(-600).sign(),
        ),
        ("no exp", base.clone().without_claim("exp").sign()),
        ("exp a string", base.clone().claim("exp", "tomorrow").sign()),
        ("no iat", base.clone().without_claim("iat").sign()),
        (
            "issued an hour from now",
            base.clone()
                .claim("iat", login_common::now() + 3600)
                .claim("exp", login_common::now() + 7200)
                .sign(),
        ),
        (
            "not before an hour from now",
            base.clone().claim("nbf", login_common::now() + 3600).sign(),
        ),
    ];
    assert_all_refused(&app, &scene, cases).await;
}

#[tokio::test]
async fn bcl_provider_keys_unavailable_is_503_and_nothing_is_used_up() {
    // Nobody logged in yet: the app has neither the discovery document nor the keys.
    let app = bcl_app().await;
    let token = app.op.logout_token(CLIENT_ID, Some(USER), None).sign();
    for (what, discovery, jwks) in [
        ("JWKS 503", Failure::None, Failure::Status(503)),
        ("JWKS not JSON", Failure::None, Failure::Garbage),
        ("discovery 500", Failure::Status(500), Failure::None),
    ] {
        app.op.fail_discovery(discovery);
        app.op.fail_jwks(jwks);
        let res = deliver(&app, &token).await;
        assert_eq!(res.status, 503, "{what}: {}", res.body);
        assert!(
            res.header("retry-after")
                .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)),
            "{what}: Retry-After: {:?}",
            res.headers
        );
        assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
    }
    app.op.fail_discovery(Failure::None);
    app.op.fail_jwks(Failure::None);
    // A provider that failed is asked again only after a backoff (50–100 ms in the harness).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Once the provider is back, the same token (its jti never recorded) ends the session of
    // a user who logged in meanwhile.
    let jar = app.login().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = deliver(&app, &token).await;
        if res.status == 200 {
            assert_accepted("after recovery", &res);
            break;
        }
        assert_eq!(res.status, 503, "{}", res.body);
        assert!(std::time::Instant::now() < deadline, "still 503");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_logged_out(&app, &jar, "after recovery").await;
}

// ---------------------------------------------------------------------------------------------
// BCL-08 and DOS-01: transport

#[tokio::test]
async fn bcl_08_only_post_is_allowed() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let url = format!("{}{BCL_PATH}", app.url);
    let token = scene.token(&app).sign();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        // Even with a genuine token in the query (GET) or the body.
        let req = app
            .http
            .request(method.clone(), format!("{url}?{}", form(&token)))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&token));
        let res = send_plain(req).await;
        assert_eq!(res.status, 405, "{method}: {}", res.body);
        assert_eq!(res.header("allow"), Some("POST"), "{method}");
        assert!(res.location().is_none(), "{method}: never a redirect");
        scene.assert_untouched(&app, method.as_str()).await;
    }
    // A browser navigation (with its cookie) gets the same: no login redirect.
    let mut jar = scene.first.clone();
    let res = app.nav(BCL_PATH, &mut jar).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("POST"));

    // The token was never used: it is still accepted, without any cookie.
    assert_accepted("POST", &deliver(&app, &token).await);
    assert_logged_out(&app, &scene.first, "POST").await;
}

#[tokio::test]
async fn bcl_08_malformed_requests_are_400() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let token = scene.token(&app).sign();
    let encoded = form(&token);
    let urlencoded = Some("application/x-www-form-urlencoded");
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        ("empty body", urlencoded, String::new()),
        ("no logout_token", urlencoded, "foo=bar".to_owned()),
        (
            "a similar name",
            urlencoded,
            encoded.replace("logout_token", "logout_token_"),
        ),
        (
            "an empty logout_token",
            urlencoded,
            "logout_token=".to_owned(),
        ),
        (
            "two logout_token, both genuine",
            urlencoded,
            format!("{encoded}&{encoded}"),
        ),
        (
            "two logout_token, one empty",
            urlencoded,
            format!("{encoded}&logout_token="),
        ),
        (
            "a JSON body",
            Some("application/json"),
            json!({ "logout_token": token }).to_string(),
        ),
        (
            "a form body as text/plain",
            Some("text/plain"),
            encoded.clone(),
        ),
        (
            "a form body as multipart",
            Some("multipart/form-data; boundary=x"),
            encoded.clone(),
        ),
        ("a form body without a content type", None, encoded.clone()),
    ];
    for (what, content_type, body) in cases {
        let res = post_bcl(&app.http, &app.url, content_type, body).await;
        assert_invalid(what, &res);
        scene.assert_untouched(&app, what).await;
    }

    // A content type with parameters, in another case, is still a form; the token was never
    // used by the refused requests above.
    let res = post_bcl(
        &app.http,
        &app.url,
        Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        format!("foo=bar&{encoded}"),
    )
    .await;
    assert_accepted("form with parameters and another field", &res);
    assert_logged_out(&app, &scene.first, "accepted").await;
}

#[tokio::test]
async fn bcl_08_no_cookie_or_csrf_token_is_needed_and_a_cookie_is_no_credential() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;

    // The browser's own cookie and a same-origin Origin do not make a bad token good.
    let mut jar = scene.first.clone();
    let req = app
        .http
        .post(format!("{}{BCL_PATH}", app.url))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, &app.url)
        .body(form(&scene.token(&app).sign_tampered_signature()));
    assert_invalid("a bad token with the cookie", &send(req, &mut jar).await);
    scene
        .assert_untouched(&app, "a bad token with the cookie")
        .await;

    // A cross-site Origin and no cookie: the genuine token is all it takes.
    let req = app
        .http
        .post(format!("{}{BCL_PATH}", app.url))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "https://op.example")
        .header("sec-fetch-site", "cross-site")
        .body(form(&scene.token(&app).sign()));
    assert_accepted("no cookie, cross-site", &send_plain(req).await);
    assert_logged_out(&app, &scene.first, "no cookie").await;
}

/// A request written by hand on a TCP connection (so that the body may be chunked, or shorter
/// than its declared length): returns the status and the head of the answer. The body is
/// written from another task and write errors are ignored, as the server may answer and close
/// before reading it all.
async fn raw_post(base: &str, head: String, body: Vec<Vec<u8>>) -> (u16, String) {
    let addr = base.strip_prefix("http://").unwrap().to_owned();
    let stream = Arc::new(TcpStream::connect(&addr).await.unwrap());
    let writer = {
        let stream = Arc::clone(&stream);
        tokio::spawn(async move {
            for piece in std::iter::once(head.into_bytes()).chain(body) {
                let mut rest = piece.as_slice();
                while !rest.is_empty() {
                    if stream.writable().await.is_err() {
                        return;
                    }
                    match stream.try_write(rest) {
                        Ok(0) => return,
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            }
        })
    };
    let mut data = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                return String::from_utf8_lossy(&data[..end]).into_owned();
            }
            stream.readable().await.unwrap();
            match stream.try_read(&mut chunk) {
                Ok(0) => panic!(
                    "the connection closed before an answer: {:?}",
                    String::from_utf8_lossy(&data)
                ),
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("reading the answer failed: {e}"),
            }
        }
    })
    .await
    .expect("an answer in time");
    writer.abort();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    (status, head)
}

fn head_of(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

#[tokio::test]
async fn bcl_08_dos_01_bodies_over_64_kib_are_413() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let token = scene.token(&app).sign();
    let host = app.url.strip_prefix("http://").unwrap().to_owned();
    let head = |framing: &str| {
        format!(
            "POST {BCL_PATH} HTTP/1.1\r\nHost: {host}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n"
        )
    };
    // A genuine token padded beyond the limit: refused for its size alone.
    let oversized = |len: usize| {
        let mut body = format!("{}&pad=", form(&token));
        let pad = len - body.len();
        body.push_str(&"a".repeat(pad));
        assert_eq!(body.len(), len);
        body.into_bytes()
    };

    // With a Content-Length: 64 KiB + 1, 70 000 bytes, and 10 MB declared (only 1 KiB sent:
    // the answer comes from the header, before the body is read).
    for (what, declared, body) in [
        ("64 KiB + 1", MAX_BODY + 1, oversized(MAX_BODY + 1)),
        ("70 000 bytes", 70_000, oversized(70_000)),
        ("10 MB declared", 10_000_000, vec![b'a'; 1024]),
    ] {
        let (status, answer) = raw_post(
            &app.url,
            head(&format!("Content-Length: {declared}\r\n")),
            vec![body],
        )
        .await;
        assert_eq!(status, 413, "{what}: {answer}");
        assert_eq!(head_of(&answer, "location"), None, "{what}");
        assert_eq!(head_of(&answer, "set-cookie"), None, "{what}");
        scene.assert_untouched(&app, what).await;
    }

    // Chunked, without a Content-Length: the limit is counted as the body arrives.
    for (what, total) in [
        ("chunked 64 KiB + 1", MAX_BODY + 1),
        ("chunked 1 MiB", 1024 * 1024),
    ] {
        let body = oversized(total);
        let mut pieces: Vec<Vec<u8>> = body
            .chunks(8 * 1024)
            .map(|piece| {
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(piece);
                framed.extend_from_slice(b"\r\n");
                framed
            })
            .collect();
        pieces.push(b"0\r\n\r\n".to_vec());
        let (status, answer) =
            raw_post(&app.url, head("Transfer-Encoding: chunked\r\n"), pieces).await;
        assert_eq!(status, 413, "{what}: {answer}");
        assert_eq!(
            head_of(&answer, "content-length").as_deref(),
            Some("0"),
            "{what}"
        );
        scene.assert_untouched(&app, what).await;
    }

    // Exactly 64 KiB is accepted, chunked too.
    let body = oversized(MAX_BODY);
    let pieces = vec![
        format!("{:x}\r\n", body.len()).into_bytes(),
        body,
        b"\r\n0\r\n\r\n".to_vec(),
    ];
    let (status, answer) = raw_post(&app.url, head("Transfer-Encoding: chunked\r\n"), pieces).await;
    assert_eq!(status, 200, "exactly 64 KiB: {answer}");
    assert_eq!(
        head_of(&answer, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_logged_out(&app, &scene.first, "exactly 64 KiB").await;
    app.assert_logged_in(&scene.second).await;
}

// ---------------------------------------------------------------------------------------------
// SES-06 with back-channel logout (and RP-initiated logout): the ended mark

#[tokio::test]
async fn ses_06_old_cookie_after_backchannel_logout_is_unauthenticated() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let old = scene.first.clone();
    let token = scene.token(&app).sign();
    assert_accepted("sid token", &deliver(&app, &token).await);
    // Replayed, both ways, several times.
    for _ in 0..2 {
        assert_logged_out(&app, &old, "old cookie").await;
    }
    let mut copy = old.clone();
    let res = app.api("/api/x", &mut copy).await;
    assert_eq!(res.status, 401);
    let mut copy = old.clone();
    let res = app
        .send(
            app.http
                .post(format!("{}/api/x", app.url))
                .header(header::ACCEPT, "application/json"),
            &mut copy,
        )
        .await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn ses_06_old_record_written_back_after_backchannel_logout_stays_ended() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    // What a request in flight holds: the session's record as loaded before the logout.
    let record = record_of(&app.store, &scene.first).await;
    let token = scene.token(&app).sign();
    assert_accepted("sid token", &deliver(&app, &token).await);
    assert!(!app.store_has(scene.first.session().unwrap()).await);

    // The request in flight saves it back (as tower-sessions does for a modified session).
    app.store.save(&record).await.unwrap();
    assert!(app.store_has(scene.first.session().unwrap()).await);
    app.assert_not_logged_in(&scene.first).await;
    assert!(
        !app.store_has(scene.first.session().unwrap()).await,
        "the resurrected record is deleted when found"
    );
    assert_logged_out(&app, &scene.first, "after the write-back").await;
    app.assert_logged_in(&scene.second).await;
}

#[tokio::test]
async fn ses_06_old_record_written_back_after_a_sub_logout_stays_ended() {
    let app = bcl_app().await;
    let scene = Scene::new(&app).await;
    let first = record_of(&app.store, &scene.first).await;
    let second = record_of(&app.store, &scene.second).await;
    let token = app.op.logout_token(CLIENT_ID, Some(USER), None).sign();
    assert_accepted("sub token", &deliver(&app, &token).await);
    app.store.save(&first).await.unwrap();
    app.store.save(&second).await.unwrap();
    app.assert_not_logged_in(&scene.first).await;
    app.assert_not_logged_in(&scene.second).await;
    assert_eq!(app.me(&scene.other).await.status, 200);
}

#[tokio::test]
async fn ses_06_old_record_written_back_after_rp_initiated_logout_stays_ended() {
    let app = bcl_app().await;
    let mut jar = app.login().await;
    let old = jar.clone();
    let record = record_of(&app.store, &jar).await;
    let res = app.logout(&mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(!app.store_has(old.session().unwrap()).await);
    app.store.save(&record).await.unwrap();
    app.assert_not_logged_in(&old).await;
    assert!(!app.store_has(old.session().unwrap()).await);
}

#[tokio::test]
async fn ses_06_old_cookie_after_a_second_login_in_the_same_browser_is_unauthenticated() {
    // The id is cycled at every login (SES-01): the id of the first login is deleted from the
    // store, and its cookie must not be a login any more, even right after it was used.
    let app = bcl_app().await;
    let mut jar = app.login().await;
    let old = jar.clone();
    app.assert_logged_in(&old).await;
    let authorize = app.begin(&mut jar, None).await;
    let callback = app.authorize(&authorize).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_ne!(jar.session(), old.session(), "a new id");
    assert!(!app.store_has(old.session().unwrap()).await);
    app.assert_logged_in(&jar).await;
    app.assert_not_logged_in(&old).await;
}

#[tokio::test]
async fn bcl_01_logout_of_the_provider_session_during_the_login_wins() {
    // The provider session is logged out after the browser authenticated at the provider and
    // before the app finished the callback: no session of the app knew that sid yet, and the
    // login that finishes afterwards must not survive the logout.
    let app = bcl_app().await;
    let (mut jar, callback) = app.until_callback(None).await;
    let sids = app.op.session_ids(USER);
    assert_eq!(sids.len(), 1, "one provider session: {sids:?}");
    let token = app
        .op
        .logout_token(CLIENT_ID, Some(USER), Some(&sids[0]))
        .sign();
    assert_accepted("a logout before the callback", &deliver(&app, &token).await);
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 401, "{}", res.body);
    assert!(res.body.contains("signed out at the identity provider"));
    app.assert_not_logged_in(&jar).await;
    // A fresh login (a new provider session, a new sid) works.
    let again = app.login().await;
    app.assert_logged_in(&again).await;
}

// ---------------------------------------------------------------------------------------------
// An app of its own: a session store and registry that fail on demand, and a route that holds
// a request in flight.

/// What [`FlakyStore`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Fail {
    #[default]
    Nothing,
    /// Every registry operation.
    Registry,
    /// `take_members` (after the `jti` is recorded).
    TakeMembers,
    /// Marking a session ended.
    EndedMark,
    /// Deleting a session from the store.
    SessionDelete,
}

/// A `MemoryStore` and a `MemoryRegistry` behind one shared store, failing on demand.
#[derive(Debug, Clone, Default)]
struct FlakyStore {
    sessions: MemoryStore,
    registry: MemoryRegistry,
    fail: Arc<Mutex<Fail>>,
}

#[derive(Debug)]
struct Down(&'static str);

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is down (test)", self.0)
    }
}

impl std::error::Error for Down {}

impl FlakyStore {
    fn set(&self, fail: Fail) {
        *self.fail.lock().unwrap() = fail;
    }

    fn fails(&self, fail: Fail) -> bool {
        let current = *self.fail.lock().unwrap();
        current == fail || (current == Fail::Registry && fail != Fail::SessionDelete)
    }

    fn registry_error(&self) -> RegistryError {
        RegistryError::new(Down("the registry"))
    }
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn create(&self, record: &mut Record) -> tower_sessions::session_store::Result<()> {
        self.sessions.create(record).await
    }

    async fn save(&self, record: &Record) -> tower_sessions::session_store::Result<()> {
        self.sessions.save(record).await
    }

    async fn load(&self, id: &Id) -> tower_sessions::session_store::Result<Option<Record>> {
        self.sessions.load(id).await
    }

    async fn delete(&self, id: &Id) -> tower_sessions::session_store::Result<()> {
        if self.fails(Fail::SessionDelete) {
            return Err(tower_sessions::session_store::Error::Backend(
                "the session store is down (test)".to_owned(),
            ));
        }
        self.sessions.delete(id).await
    }
}

#[async_trait]
impl SessionRegistry for FlakyStore {
    async fn insert(&self, key: &str, ttl: Duration) -> Result<bool, RegistryError> {
        if self.fails(Fail::Registry)
            || (self.fails(Fail::EndedMark) && key.contains("oidc:ended:"))
        {
            return Err(self.registry_error());
        }
        self.registry.insert(key, ttl).await
    }

    async fn contains(&self, key: &str) -> Result<bool, RegistryError> {
        if self.fails(Fail::Registry) {
            return Err(self.registry_error());
        }
        self.registry.contains(key).await
    }

    async fn remove(&self, key: &str) -> Result<(), RegistryError> {
        if self.fails(Fail::Registry) {
            return Err(self.registry_error());
        }
        self.registry.remove(key).await
    }

    async fn add_member(
        &self,
        set: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<(), RegistryError> {
        if self.fails(Fail::Registry) {
            return Err(self.registry_error());
        }
        self.registry.add_member(set, member, ttl).await
    }

    async fn take_members(&self, set: &str) -> Result<Vec<String>, RegistryError> {
        if self.fails(Fail::Registry) || self.fails(Fail::TakeMembers) {
            return Err(self.registry_error());
        }
        self.registry.take_members(set).await
    }
}

/// Holds a request in flight: `/slow` reads its session (which loads the record), signals
/// `entered`, waits for `release`, then writes to its session (so tower-sessions saves the
/// record it loaded before).
#[derive(Debug, Default)]
struct Gate {
    entered: Notify,
    release: Notify,
}

/// An app on a [`FlakyStore`], with its provider.
struct Site {
    op: TestProvider,
    url: String,
    http: reqwest::Client,
    store: FlakyStore,
    /// The layer's view of `store` (records by cookie id).
    view: LoginStore,
    gate: Arc<Gate>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn me(user: User) -> Json<Value> {
    Json(json!({ "sub": user.subject(), "claims": user.claims() }))
}

impl Site {
    async fn start() -> Self {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let redirect_uri = format!("{url}/auth/callback");
        op.register_client(
            ClientRegistration::confidential(CLIENT_ID, SECRET, &redirect_uri)
                .with_backchannel_logout_uri(&format!("{url}{BCL_PATH}")),
        );
        let provider = Provider::builder(op.issuer())
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
            .build()
            .unwrap();
        let client = OidcClient::new(provider, CLIENT_ID, redirect_uri)
            .unwrap()
            .with_client_secret(SECRET);
        let store = FlakyStore::default();
        let layer = LoginLayer::new(client, &url)
            .unwrap()
            .with_shared_store(store.clone());
        let view = layer.store().clone();
        let gate = Arc::new(Gate::default());
        let slow_gate = Arc::clone(&gate);
        let router = Router::new()
            .route("/me", get(me))
            .route("/app", get(|| async { "app" }))
            .route(
                "/slow",
                get(move |session: Session| {
                    let gate = Arc::clone(&slow_gate);
                    async move {
                        // Reading the session loads its whole record (the login included).
                        let flash: Option<String> = session.get("flash").await.unwrap();
                        assert_eq!(flash, None);
                        gate.entered.notify_one();
                        gate.release.notified().await;
                        session.insert("touched", true).await.unwrap();
                        "slow"
                    }
                }),
            )
            .layer(layer);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            op,
            url,
            http: http_client(),
            store,
            view,
            gate,
            server,
        }
    }

    async fn nav(&self, path: &str, jar: &mut Jar) -> Resp {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        send(
            self.http
                .get(url)
                .header(header::ACCEPT, "text/html,application/xhtml+xml"),
            jar,
        )
        .await
    }

    async fn me(&self, jar: &Jar) -> Resp {
        let mut copy = jar.clone();
        send(
            self.http
                .get(format!("{}/me", self.url))
                .header(header::ACCEPT, "application/json"),
            &mut copy,
        )
        .await
    }

    async fn login(&self) -> Jar {
        let mut jar = Jar::default();
        let res = self.nav("/auth/login", &mut jar).await;
        assert_eq!(res.status, 303, "{}", res.body);
        let at_op = send(self.http.get(res.location().unwrap()), &mut Jar::default()).await;
        assert_eq!(at_op.status, 303, "{}", at_op.body);
        let res = self.nav(at_op.location().unwrap(), &mut jar).await;
        assert_eq!(res.status, 303, "callback: {}", res.body);
        assert_eq!(self.me(&jar).await.status, 200);
        jar
    }

    async fn sid_of(&self, jar: &Jar) -> String {
        let me = self.me(jar).await;
        assert_eq!(me.status, 200, "{}", me.body);
        me.json()["claims"]["sid"].as_str().unwrap().to_owned()
    }

    async fn deliver(&self, token: &str) -> Resp {
        post_bcl(
            &self.http,
            &self.url,
            Some("application/x-www-form-urlencoded"),
            form(token),
        )
        .await
    }

    async fn has(&self, jar: &Jar) -> bool {
        let id = Id::from_str(jar.session().unwrap()).unwrap();
        self.view.load(&id).await.unwrap().is_some()
    }
}

fn assert_unavailable(what: &str, res: &Resp) {
    assert_eq!(res.status, 503, "{what}: {}", res.body);
    let retry = res
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: Retry-After"));
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s > 0),
        "{what}: Retry-After in seconds: {retry}"
    );
    assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
    assert!(res.location().is_none(), "{what}");
}

#[tokio::test]
async fn bcl_registry_failure_is_503_and_releases_the_jti() {
    let site = Site::start().await;
    let first = site.login().await;
    let second = site.login().await;
    let sid = site.sid_of(&first).await;
    let other_sid = site.sid_of(&second).await;

    // Each failure after the jti is recorded: 503 + Retry-After, and the same token is
    // accepted once the backend is back (the jti was released, nothing was lost).
    for (what, fail, browser, sid) in [
        ("take_members fails", Fail::TakeMembers, &first, &sid),
        ("marking ended fails", Fail::EndedMark, &second, &other_sid),
    ] {
        let token = site
            .op
            .logout_token(CLIENT_ID, Some(USER), Some(sid))
            .sign();
        site.store.set(fail);
        assert_unavailable(what, &site.deliver(&token).await);
        site.store.set(Fail::Nothing);
        assert_eq!(
            site.me(browser).await.status,
            200,
            "{what}: nothing was ended"
        );
        assert!(site.has(browser).await, "{what}");

        let res = site.deliver(&token).await;
        assert_accepted(&format!("{what}, redelivered"), &res);
        let me = site.me(browser).await;
        assert_eq!(me.status, 401, "{what}: ended by the redelivery");
        assert!(!site.has(browser).await, "{what}");
        // And now it is used.
        assert_invalid(&format!("{what}, replayed"), &site.deliver(&token).await);
    }
}

#[tokio::test]
async fn bcl_session_store_failure_is_503_and_a_redelivery_ends_the_session() {
    let site = Site::start().await;
    let browser = site.login().await;
    let other = site.login().await;
    let sid = site.sid_of(&browser).await;
    let token = site
        .op
        .logout_token(CLIENT_ID, Some(USER), Some(&sid))
        .sign();

    site.store.set(Fail::SessionDelete);
    assert_unavailable("the store cannot delete", &site.deliver(&token).await);
    site.store.set(Fail::Nothing);
    // The session was marked ended before the store failed: it is already over.
    assert_eq!(site.me(&browser).await.status, 401);
    assert_accepted("redelivered", &site.deliver(&token).await);
    assert_eq!(site.me(&browser).await.status, 401);
    assert_eq!(site.me(&other).await.status, 200);
}

#[tokio::test]
async fn bcl_registry_down_is_503_everywhere_then_recovers() {
    let site = Site::start().await;
    let browser = site.login().await;
    let sid = site.sid_of(&browser).await;
    let token = site
        .op
        .logout_token(CLIENT_ID, Some(USER), Some(&sid))
        .sign();

    site.store.set(Fail::Registry);
    assert_unavailable("registry down", &site.deliver(&token).await);
    // Fail closed for the browser too: not logged in, not logged out, but 503.
    let me = site.me(&browser).await;
    assert_eq!(me.status, 503, "{}", me.body);
    // The transport checks come first and need no backend.
    let res = post_bcl(
        &site.http,
        &site.url,
        Some("application/x-www-form-urlencoded"),
        "",
    )
    .await;
    assert_invalid("no token while down", &res);

    site.store.set(Fail::Nothing);
    assert_eq!(site.me(&browser).await.status, 200);
    assert_accepted("after recovery", &site.deliver(&token).await);
    assert_eq!(site.me(&browser).await.status, 401);
}

#[tokio::test]
async fn ses_06_request_in_flight_cannot_resurrect_a_backchannel_ended_session() {
    let site = Site::start().await;
    let browser = site.login().await;
    let other = site.login().await;
    let sid = site.sid_of(&browser).await;

    // A request of the browser loads the session, then waits inside the app.
    let in_flight = {
        let http = site.http.clone();
        let url = format!("{}/slow", site.url);
        let mut jar = browser.clone();
        tokio::spawn(async move {
            send(
                http.get(url).header(header::ACCEPT, "application/json"),
                &mut jar,
            )
            .await
        })
    };
    tokio::time::timeout(Duration::from_secs(20), site.gate.entered.notified())
        .await
        .expect("the request reached the app");

    // The provider logs the session out meanwhile.
    let token = site
        .op
        .logout_token(CLIENT_ID, Some(USER), Some(&sid))
        .sign();
    assert_accepted("while a request is in flight", &site.deliver(&token).await);
    assert!(!site.has(&browser).await, "deleted by the logout");

    // The request finishes and writes the record it loaded back into the store.
    site.gate.release.notify_one();
    let res = in_flight.await.unwrap();
    assert_eq!(res.status, 200, "it was authenticated when it started");
    assert_eq!(res.body, "slow");
    // The race this test is about: tower-sessions saved the record it had loaded (if the layer
    // ever refuses that write itself, this assertion can go).
    assert!(
        site.has(&browser).await,
        "the request in flight wrote its record back"
    );

    // Whatever it wrote, the session stays ended.
    let me = site.me(&browser).await;
    assert_eq!(me.status, 401, "the written-back record is not a login");
    assert!(
        !site.has(&browser).await,
        "the written-back record is deleted"
    );
    let mut copy = browser.clone();
    let nav = site.nav("/app", &mut copy).await;
    assert_eq!(nav.status, 303);
    assert!(
        nav.location()
            .unwrap()
            .starts_with(&site.op.authorization_endpoint())
    );
    assert_eq!(site.me(&other).await.status, 200);
}
