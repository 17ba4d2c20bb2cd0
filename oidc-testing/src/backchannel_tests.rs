//! Back-channel logout: the logout tokens the provider mints, their delivery
//! by the end-session endpoint and on demand, and the delivery recording.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};
use url::Url;

use crate::{BackchannelDelivery, ClientRegistration, SigningAlg, TestProvider, find_param};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// A loopback port nothing listens on (discard): connections are refused.
const DEAD_URI: &str = "http://127.0.0.1:9/backchannel";

/// What the relying party's back-channel endpoint received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    content_type: Option<String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A relying party whose `/ok` answers 200 with `Cache-Control: no-store`
/// and `/bad` 400 `invalid_request`; every request is logged.
async fn relying_party() -> (SocketAddr, Log) {
    async fn ok(State(log): State<Log>, headers: HeaderMap, body: String) -> impl IntoResponse {
        record(&log, "/ok", &headers, body);
        ([(header::CACHE_CONTROL, "no-store")], StatusCode::OK)
    }
    async fn bad(State(log): State<Log>, headers: HeaderMap, body: String) -> impl IntoResponse {
        record(&log, "/bad", &headers, body);
        (
            StatusCode::BAD_REQUEST,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({"error": "invalid_request"})),
        )
    }
    fn record(log: &Log, path: &str, headers: &HeaderMap, body: String) {
        log.lock().unwrap().push(Received {
            path: path.to_owned(),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned()),
            body,
        });
    }
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/ok", post(ok))
        .route("/bad", post(bad))
        .with_state(Arc::clone(&log));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, log)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn claims_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies `token` with the provider's JWKS (signature, `iss`, `aud`,
/// `exp`) and returns its claims.
async fn verify(provider: &TestProvider, token: &str, alg: Algorithm, aud: &str) -> Value {
    let set: JwkSet = http()
        .get(provider.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = decode_header(token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[provider.issuer()]);
    validation.set_audience(&[aud]);
    decode::<Value>(token, &key, &validation).unwrap().claims
}

/// The logout token's `logout_token` form value as the relying party got it.
fn form_token(received: &Received) -> String {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(received.body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(params.len(), 1, "{params:?}");
    find_param(&params, "logout_token").unwrap().to_owned()
}

/// Logs `client_id` in with auto-login (reusing the browser's `op_session`
/// when `cookie` is given), redeems the code and returns the ID token and
/// the `op_session` cookie.
async fn login(
    provider: &TestProvider,
    client_id: &str,
    redirect: &str,
    cookie: Option<&str>,
) -> (String, String) {
    let mut authorize = Url::parse(&provider.authorization_endpoint()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    let mut request = http().get(authorize.as_str());
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("op_session={cookie}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 303);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find_map(|v| v.strip_prefix("op_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .or_else(|| cookie.map(str::to_owned))
        .unwrap();
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_verifier", VERIFIER)
        .append_pair("client_id", client_id)
        .finish();
    let tokens: Value = http()
        .post(provider.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (tokens["id_token"].as_str().unwrap().to_owned(), session)
}

async fn end_session(provider: &TestProvider, cookie: &str) -> reqwest::Response {
    http()
        .get(provider.end_session_endpoint())
        .header("cookie", format!("op_session={cookie}"))
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn logout_token_builder_defaults() {
    let provider = TestProvider::start().await;
    provider.register_client(
        ClientRegistration::public("ec-app", "http://127.0.0.1:9/cb")
            .with_id_token_alg(SigningAlg::ES256),
    );

    let builder = provider.logout_token("app", Some("alice"), Some("sid-1"));
    let header = builder.header_json();
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "logout+jwt", "kid": provider.kid(SigningAlg::RS256)})
    );
    let claims = builder.claims_json();
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["aud", "events", "exp", "iat", "iss", "jti", "sid", "sub"]
    );
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], "sid-1");
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    let token = builder.sign();
    let verified = verify(&provider, &token, Algorithm::RS256, "app").await;
    assert_eq!(verified, claims);

    // sub only, sid only; the client's ID token algorithm.
    let sub_only = provider
        .logout_token("app", Some("bob"), None)
        .claims_json();
    assert_eq!(
        (sub_only["sub"].as_str(), sub_only.get("sid")),
        (Some("bob"), None)
    );
    let sid_only = provider.logout_token("app", None, Some("s")).claims_json();
    assert_eq!(
        (sid_only.get("sub"), sid_only["sid"].as_str()),
        (None, Some("s"))
    );
    let ec = provider.logout_token("ec-app", None, Some("s"));
    assert_eq!(ec.header_json()["alg"], "ES256");
    assert_eq!(ec.header_json()["kid"], "ec1-ES256");
    verify(&provider, &ec.sign(), Algorithm::ES256, "ec-app").await;

    // Two tokens never share a jti.
    let a = provider.logout_token("app", Some("a"), None).claims_json();
    let b = provider.logout_token("app", Some("a"), None).claims_json();
    assert_ne!(a["jti"], b["jti"]);
}

#[tokio::test]
async fn end_session_delivers_to_the_clients_of_the_session() {
    let provider = TestProvider::start().await;
    let (rp, log) = relying_party().await;
    let ok = format!("http://{rp}/ok");
    // "web" and "web2" take part in the session; "other" has a URI but no
    // tokens from it; "quiet" takes part but has no URI.
    for (id, uri) in [
        ("web", Some(ok.as_str())),
        ("web2", Some(ok.as_str())),
        ("other", Some(ok.as_str())),
        ("quiet", None),
    ] {
        let mut client = ClientRegistration::public(id, "http://127.0.0.1:9/cb");
        if let Some(uri) = uri {
            client = client.with_backchannel_logout_uri(uri);
        }
        provider.register_client(client);
    }
    provider.set_auto_login(Some("alice"));
    let (id_token, cookie) = login(&provider, "web", "http://127.0.0.1:9/cb", None).await;
    let (id_token2, _) = login(&provider, "web2", "http://127.0.0.1:9/cb", Some(&cookie)).await;
    login(&provider, "quiet", "http://127.0.0.1:9/cb", Some(&cookie)).await;
    // A second login of "web" in the same session: still one delivery.
    login(&provider, "web", "http://127.0.0.1:9/cb", Some(&cookie)).await;

    let sid = claims_of(&id_token)["sid"].as_str().unwrap().to_owned();
    assert!(!sid.is_empty(), "ID tokens carry the session's sid");
    assert_eq!(claims_of(&id_token2)["sid"], sid.as_str(), "single sign-on");
    assert_eq!(provider.session_ids("alice"), vec![sid.clone()]);
    assert!(provider.backchannel_deliveries().is_empty());

    let response = end_session(&provider, &cookie).await;
    assert_eq!(response.status(), 200, "the logged-out page");

    // Delivered before the browser got its answer.
    let deliveries = provider.backchannel_deliveries();
    let to: Vec<&str> = deliveries.iter().map(|d| d.client_id.as_str()).collect();
    assert_eq!(to, ["web", "web2"]);
    let received = log.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    for (delivery, received) in deliveries.iter().zip(&received) {
        assert_eq!(delivery.uri, ok);
        assert_eq!(delivery.status, Some(200));
        assert_eq!(delivery.header("Cache-Control"), Some("no-store"));
        assert_eq!(delivery.error, None);
        assert_eq!(delivery.sub.as_deref(), Some("alice"));
        assert_eq!(delivery.sid.as_deref(), Some(sid.as_str()));
        assert_eq!(received.path, "/ok");
        assert_eq!(
            received.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(form_token(received), delivery.logout_token);

        let token = &delivery.logout_token;
        assert_eq!(header_of(token)["typ"], "logout+jwt");
        let claims = verify(&provider, token, Algorithm::RS256, &delivery.client_id).await;
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["sid"], sid.as_str());
        assert_eq!(claims["events"], json!({ EVENT: {} }));
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        assert!(claims["iat"].is_i64() && claims.get("nonce").is_none());
    }
    assert_ne!(
        claims_of(&deliveries[0].logout_token)["jti"],
        claims_of(&deliveries[1].logout_token)["jti"]
    );
    assert!(provider.session_ids("alice").is_empty());

    // A second logout with the ended session's cookie ends nothing.
    end_session(&provider, &cookie).await;
    assert_eq!(provider.backchannel_deliveries().len(), 2);
}

#[tokio::test]
async fn end_session_without_a_session_delivers_nothing() {
    let provider = TestProvider::start().await;
    let (rp, log) = relying_party().await;
    provider.register_client(
        ClientRegistration::public("web", "http://127.0.0.1:9/cb")
            .with_backchannel_logout_uri(&format!("http://{rp}/ok")),
    );
    provider.set_auto_login(Some("alice"));
    login(&provider, "web", "http://127.0.0.1:9/cb", None).await;
    let response = http()
        .get(provider.end_session_endpoint())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(provider.backchannel_deliveries().is_empty());
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn failed_deliveries_are_recorded_and_logout_still_answers() {
    let provider = TestProvider::start().await;
    let (rp, _log) = relying_party().await;
    for (id, uri) in [
        ("dead", DEAD_URI.to_owned()),
        ("tls", "https://127.0.0.1:9/backchannel".to_owned()),
        ("refusing", format!("http://{rp}/bad")),
        ("missing", format!("http://{rp}/nowhere")),
    ] {
        provider.register_client(
            ClientRegistration::public(id, "http://127.0.0.1:9/cb")
                .with_backchannel_logout_uri(&uri),
        );
    }
    provider.set_auto_login(Some("alice"));
    let (_, cookie) = login(&provider, "dead", "http://127.0.0.1:9/cb", None).await;
    for id in ["tls", "refusing", "missing"] {
        login(&provider, id, "http://127.0.0.1:9/cb", Some(&cookie)).await;
    }
    assert_eq!(end_session(&provider, &cookie).await.status(), 200);

    let deliveries = provider.backchannel_deliveries();
    assert_eq!(deliveries.len(), 4);
    let dead = &deliveries[0];
    assert_eq!((dead.client_id.as_str(), dead.status), ("dead", None));
    assert!(dead.error.as_deref().unwrap().contains("connection failed"));
    assert!(
        !dead.logout_token.is_empty(),
        "the token is recorded anyway"
    );
    let tls = &deliveries[1];
    assert_eq!(tls.status, None);
    assert!(tls.error.as_deref().unwrap().contains("only http"));
    let refusing = &deliveries[2];
    assert_eq!(refusing.status, Some(400));
    assert_eq!(refusing.error, None);
    let body: Value = serde_json::from_str(&refusing.body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(deliveries[3].status, Some(404));
}

#[tokio::test]
async fn on_demand_and_hostile_deliveries() {
    let provider = TestProvider::start().await;
    let (rp, log) = relying_party().await;
    provider.register_client(
        ClientRegistration::public("web", "http://127.0.0.1:9/cb")
            .with_backchannel_logout_uri(&format!("http://{rp}/ok?tenant=a")),
    );

    let by_sub = provider
        .send_backchannel_logout("web", Some("alice"), None)
        .await;
    assert_eq!(by_sub.status, Some(200));
    assert_eq!(
        (by_sub.sub.as_deref(), by_sub.sid.as_deref()),
        (Some("alice"), None)
    );
    let claims = verify(&provider, &by_sub.logout_token, Algorithm::RS256, "web").await;
    assert_eq!(claims["sub"], "alice");
    assert!(claims.get("sid").is_none());

    let by_sid = provider
        .send_backchannel_logout("web", None, Some("s-1"))
        .await;
    assert_eq!(
        (by_sid.sub.as_deref(), by_sid.sid.as_deref()),
        (None, Some("s-1"))
    );

    // Any string, as is: an unsigned token, garbage, an empty value.
    let none = provider
        .logout_token("web", Some("alice"), None)
        .sign_none("none", "");
    for raw in [none.as_str(), "not a jwt & = +", ""] {
        let delivery = provider.deliver_logout_token("web", raw).await;
        assert_eq!(delivery.logout_token, raw);
        assert_eq!(delivery.status, Some(200));
    }

    let received = log.lock().unwrap().clone();
    assert_eq!(received.len(), 5);
    assert_eq!(form_token(&received[0]), by_sub.logout_token);
    assert_eq!(form_token(&received[3]), "not a jwt & = +");
    assert_eq!(form_token(&received[4]), "");
    let recorded: Vec<BackchannelDelivery> = provider.backchannel_deliveries();
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[0], by_sub);
}

#[tokio::test]
#[should_panic(expected = "backchannel_logout_uri")]
async fn delivering_to_a_client_without_uri_panics() {
    let provider = TestProvider::start().await;
    provider.register_client(ClientRegistration::public("web", "http://127.0.0.1:9/cb"));
    provider.deliver_logout_token("web", "x").await;
}
