//! End-to-end tests of the authorization server over real HTTP: the code
//! flow with PKCE, tokens, UserInfo, refresh rotation, logout and the knobs.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};
use url::Url;

use crate::{
    CallbackIss, ClientRegistration, Failure, IdTokenSigning, LogoutState, SigningAlg,
    TestProvider, TokenEndpointAuth, find_param,
};

const CLIENT: &str = "app";
const SECRET: &str = "s3cret";
const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";
const LOGGED_OUT: &str = "http://127.0.0.1:9/bye";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn provider() -> TestProvider {
    let provider = TestProvider::start().await;
    provider.register_client(
        ClientRegistration::confidential(CLIENT, SECRET, REDIRECT)
            .add_post_logout_redirect_uri(LOGGED_OUT),
    );
    provider
}

fn authorize_params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid profile email api:read"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (name, value) in extra {
        params.retain(|(k, _)| k != name);
        if !value.is_empty() {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    params
}

fn authorize_url(provider: &TestProvider, params: &[(String, String)]) -> String {
    let mut url = Url::parse(&provider.authorization_endpoint()).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

/// A browser without redirects that keeps the `op_session` cookie by hand.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, cookie) = pair.split_once('=').unwrap();
            if name == "op_session" {
                self.cookie = (!cookie.is_empty()).then(|| cookie.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut request = client().get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("op_session={cookie}"));
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        response
    }

    async fn post_form(&mut self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("op_session={cookie}"));
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        response
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the login form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"").unwrap();
            let (value, _) = rest.split_once('"').unwrap();
            (unescape(name), unescape(value))
        })
        .collect()
}

fn location(response: &reqwest::Response) -> Url {
    assert_eq!(response.status(), 303, "expected a 303");
    Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(url: &Url) -> Vec<(String, String)> {
    url.query_pairs().into_owned().collect()
}

fn q(url: &Url, name: &str) -> Option<String> {
    find_param(&query(url), name).map(str::to_owned)
}

/// Logs in through the HTML form and returns the callback URL.
async fn login_via_form(
    provider: &TestProvider,
    browser: &mut Browser,
    params: &[(String, String)],
    username: &str,
) -> Url {
    let response = browser.get(&authorize_url(provider, params)).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"sign-in\""));
    assert!(html.contains("value=\"user-1\""));
    let mut form = hidden_fields(&html);
    form.push(("username".to_owned(), username.to_owned()));
    let response = browser
        .post_form(&format!("{}/login", provider.issuer()), &form)
        .await;
    location(&response)
}

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

async fn token_request(
    provider: &TestProvider,
    authorization: Option<String>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = client()
        .post(provider.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    )
}

async fn redeem(provider: &TestProvider, code: &str, verifier: &str) -> (u16, Value) {
    let (status, body, _) = token_request(
        provider,
        Some(basic(CLIENT, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (status, body)
}

async fn refresh(provider: &TestProvider, refresh_token: &str) -> (u16, Value) {
    let (status, body, _) = token_request(
        provider,
        Some(basic(CLIENT, SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await;
    (status, body)
}

async fn userinfo(provider: &TestProvider, access_token: Option<&str>) -> reqwest::Response {
    let mut request = client().get(provider.userinfo_endpoint());
    if let Some(token) = access_token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn jwks(provider: &TestProvider) -> JwkSet {
    client()
        .get(provider.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn verify_jwt(
    provider: &TestProvider,
    token: &str,
    alg: Algorithm,
    aud: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let set = jwks(provider).await;
    let kid = decode_header(token)?.kid.unwrap();
    let key = DecodingKey::from_jwk(set.find(&kid).unwrap())?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[provider.issuer()]);
    validation.set_audience(&[aud]);
    decode::<Value>(token, &key, &validation).map(|data| data.claims)
}

fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn claims_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn expected_at_hash(access_token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// Auto-login flow: authorize → code, redeemed with the right verifier.
async fn quick_tokens(provider: &TestProvider, user: &str) -> Value {
    provider.set_auto_login(Some(user));
    let response = Browser::default()
        .get(&authorize_url(provider, &authorize_params(&[])))
        .await;
    let code = q(&location(&response), "code").unwrap();
    let (status, body) = redeem(provider, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn full_code_flow_over_http() {
    let provider = provider().await;
    let issuer = provider.issuer();
    let mut browser = Browser::default();

    // Authorization request → login form → POST /login → callback.
    let callback = login_via_form(&provider, &mut browser, &authorize_params(&[]), "alice").await;
    assert!(callback.as_str().starts_with(REDIRECT));
    assert_eq!(q(&callback, "state").as_deref(), Some("st-123"));
    assert_eq!(q(&callback, "iss").as_deref(), Some(issuer.as_str()));
    let code = q(&callback, "code").unwrap();
    let cookie = browser.cookie.clone().unwrap();
    assert_eq!(provider.authorization_requests().len(), 1);
    assert_eq!(
        find_param(&provider.authorization_requests()[0], "code_challenge"),
        Some(CHALLENGE)
    );

    // Token request with Basic auth and PKCE.
    let (status, tokens) = redeem(&provider, &code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["scope"], "openid profile email api:read");
    let recorded = provider.token_requests();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].basic_auth);
    assert_eq!(recorded[0].basic_client_id.as_deref(), Some(CLIENT));
    assert_eq!(recorded[0].basic_client_secret.as_deref(), Some(SECRET));
    assert_eq!(recorded[0].param("code_verifier"), Some(VERIFIER));

    // The ID token verifies against the JWKS and binds nonce and at_hash.
    let access_token = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(header_of(id_token)["typ"], "JWT");
    assert_eq!(header_of(id_token)["kid"], "rsa1-RS256");
    let claims = verify_jwt(&provider, id_token, Algorithm::RS256, CLIENT)
        .await
        .unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(claims["at_hash"], expected_at_hash(access_token));
    assert_eq!(claims["email"], "alice@example.test");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["preferred_username"], "alice");
    assert!(claims["auth_time"].is_i64());
    assert!(claims["iat"].is_i64());
    let sid = claims["sid"].as_str().unwrap().to_owned();

    // The access token is an RFC 9068 JWT for the default audience.
    assert_eq!(header_of(access_token)["typ"], "at+jwt");
    let at = verify_jwt(&provider, access_token, Algorithm::RS256, "api://default")
        .await
        .unwrap();
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["client_id"], CLIENT);
    assert_eq!(at["scope"], "openid profile email api:read");

    // UserInfo.
    let response = userinfo(&provider, Some(access_token)).await;
    assert_eq!(response.status(), 200);
    let info: Value = response.json().await.unwrap();
    assert_eq!(
        info,
        json!({"sub": "alice", "email": "alice@example.test", "email_verified": true,
               "name": "alice", "preferred_username": "alice"})
    );
    let response = userinfo(&provider, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"oidc-testing\""
    );
    let response = userinfo(&provider, Some("not-a-token")).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(provider.userinfo_request_count(), 3);

    // Refresh with rotation: a new ID token without nonce, same sid.
    let first_refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = refresh(&provider, first_refresh).await;
    assert_eq!(status, 200, "{refreshed}");
    let second_refresh = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(first_refresh, second_refresh);
    let new_access = refreshed["access_token"].as_str().unwrap();
    assert_ne!(new_access, access_token);
    let new_id = verify_jwt(
        &provider,
        refreshed["id_token"].as_str().unwrap(),
        Algorithm::RS256,
        CLIENT,
    )
    .await
    .unwrap();
    assert!(new_id.get("nonce").is_none());
    assert_eq!(new_id["sid"], sid.as_str());
    assert_eq!(new_id["sub"], "alice");
    assert_eq!(new_id["auth_time"], claims["auth_time"]);
    assert_eq!(new_id["at_hash"], expected_at_hash(new_access));
    assert_eq!(userinfo(&provider, Some(new_access)).await.status(), 200);

    // Reusing the old refresh token revokes the whole grant.
    let (status, error) = refresh(&provider, first_refresh).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_grant");
    let (status, error) = refresh(&provider, second_refresh).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_grant");
    assert_eq!(userinfo(&provider, Some(new_access)).await.status(), 401);

    // SSO: the op_session skips the form; prompt=login shows it again.
    let response = browser
        .get(&authorize_url(
            &provider,
            &authorize_params(&[("state", "st-2")]),
        ))
        .await;
    let again = location(&response);
    assert_eq!(q(&again, "state").as_deref(), Some("st-2"));
    assert!(q(&again, "code").is_some());
    let response = browser
        .get(&authorize_url(
            &provider,
            &authorize_params(&[("prompt", "login")]),
        ))
        .await;
    assert_eq!(response.status(), 200);

    // RP-initiated logout.
    let mut logout = Url::parse(&provider.end_session_endpoint()).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("client_id", CLIENT)
        .append_pair("post_logout_redirect_uri", LOGGED_OUT)
        .append_pair("state", "bye-1");
    let response = browser.get(logout.as_str()).await;
    let back = location(&response);
    assert!(back.as_str().starts_with(LOGGED_OUT));
    assert_eq!(q(&back, "state").as_deref(), Some("bye-1"));
    assert!(browser.cookie.is_none(), "op_session cleared");
    let recorded = provider.end_session_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(find_param(&recorded[0], "state"), Some("bye-1"));

    // The old session is gone at the provider, too.
    browser.cookie = Some(cookie);
    let response = browser
        .get(&authorize_url(&provider, &authorize_params(&[])))
        .await;
    assert_eq!(response.status(), 200, "login form again");
    let response = browser
        .get(&authorize_url(
            &provider,
            &authorize_params(&[("prompt", "none")]),
        ))
        .await;
    assert_eq!(
        q(&location(&response), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn login_sets_the_session_cookie_attributes() {
    let provider = provider().await;
    let response = Browser::default()
        .get(&authorize_url(&provider, &authorize_params(&[])))
        .await;
    let html = response.text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("username".to_owned(), "bob".to_owned()));
    let response = Browser::default()
        .post_form(&format!("{}/login", provider.issuer()), &form)
        .await;
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("op_session="));
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn pkce_and_code_errors() {
    let provider = provider().await;
    provider.set_auto_login(Some("alice"));
    let mut browser = Browser::default();
    let code = q(
        &location(
            &browser
                .get(&authorize_url(&provider, &authorize_params(&[])))
                .await,
        ),
        "code",
    )
    .unwrap();

    // Wrong verifier → invalid_grant (the code is not consumed).
    let (status, error) = redeem(&provider, &code, &"x".repeat(43)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Missing verifier → invalid_grant.
    let (status, error, _) = token_request(
        &provider,
        Some(basic(CLIENT, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Wrong redirect_uri → invalid_grant.
    let (status, error, _) = token_request(
        &provider,
        Some(basic(CLIENT, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Right verifier → tokens; reuse → invalid_grant and the tokens revoked.
    let (status, tokens) = redeem(&provider, &code, VERIFIER).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&provider, Some(access)).await.status(), 200);
    let (status, error) = redeem(&provider, &code, VERIFIER).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(userinfo(&provider, Some(access)).await.status(), 401);
    let (status, _) = refresh(&provider, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);

    // Expired code.
    provider.set_code_lifetime(-1);
    let code = provider.issue_code(CLIENT, REDIRECT, "alice", None, CHALLENGE);
    let (status, error) = redeem(&provider, &code, VERIFIER).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    provider.set_code_lifetime(60);

    // A code without challenge rejects a verifier (PKCE downgrade).
    let code = provider.issue_code(CLIENT, REDIRECT, "alice", None, "");
    let (status, _) = redeem(&provider, &code, VERIFIER).await;
    assert_eq!(status, 400);

    // Unknown code, unknown grant type, repeated parameter.
    let (status, error) = redeem(&provider, "nope", VERIFIER).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, error, _) = token_request(
        &provider,
        Some(basic(CLIENT, SECRET)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, error, _) = token_request(
        &provider,
        Some(basic(CLIENT, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", "a"),
            ("code", "b"),
        ],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn authorization_request_validation() {
    let provider = provider().await;
    let mut browser = Browser::default();

    // Unregistered redirect_uri or client → 400 page, never a redirect.
    for extra in [
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ("redirect_uri", "https://evil.example/cb"),
        ("redirect_uri", ""),
        ("client_id", "unknown"),
    ] {
        let response = browser
            .get(&authorize_url(&provider, &authorize_params(&[extra])))
            .await;
        assert_eq!(response.status(), 400, "{extra:?}");
        assert!(response.headers().get("location").is_none());
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    // Errors with a valid redirect_uri → error redirect with state and iss.
    for (extra, error) in [
        (("code_challenge_method", "plain"), "invalid_request"),
        (("code_challenge_method", ""), "invalid_request"),
        (("code_challenge", ""), "invalid_request"),
        (("response_type", "token"), "unsupported_response_type"),
        (("scope", "profile"), "invalid_scope"),
        (("prompt", "none"), "login_required"),
    ] {
        let response = browser
            .get(&authorize_url(&provider, &authorize_params(&[extra])))
            .await;
        let url = location(&response);
        assert!(url.as_str().starts_with(REDIRECT), "{extra:?}");
        assert_eq!(q(&url, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(q(&url, "state").as_deref(), Some("st-123"));
        assert_eq!(q(&url, "iss"), Some(provider.issuer()));
        assert!(q(&url, "code").is_none());
    }

    // Repeated parameters → invalid_request.
    let mut params = authorize_params(&[]);
    params.push(("state".to_owned(), "other".to_owned()));
    let response = browser.get(&authorize_url(&provider, &params)).await;
    assert_eq!(
        q(&location(&response), "error").as_deref(),
        Some("invalid_request")
    );

    // Every request is recorded, rejected ones included.
    assert_eq!(provider.authorization_requests().len(), 11);
    assert_eq!(provider.token_requests().len(), 0);
}

#[tokio::test]
async fn login_form_escapes_what_it_echoes() {
    let provider = provider().await;
    let evil = "\"><script>alert(1)</script>";
    let response = Browser::default()
        .get(&authorize_url(
            &provider,
            &authorize_params(&[("state", evil), ("login_hint", evil)]),
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    assert_eq!(find_param(&hidden_fields(&html), "state"), Some(evil));

    // The 400 page escapes the redirect_uri it mentions.
    let response = Browser::default()
        .get(&authorize_url(
            &provider,
            &authorize_params(&[("redirect_uri", "http://x/<script>")]),
        ))
        .await;
    assert_eq!(response.status(), 400);
    assert!(!response.text().await.unwrap().contains("<script>"));
}

#[tokio::test]
async fn client_authentication_methods() {
    let provider = provider().await;
    provider.register_client(
        ClientRegistration::confidential("post", "p@ss:w rd%", REDIRECT)
            .with_auth_method(TokenEndpointAuth::ClientSecretPost),
    );
    provider.register_client(ClientRegistration::public("spa", REDIRECT));
    provider.register_client(ClientRegistration::confidential(
        "odd:id",
        "p@ss:w rd%",
        REDIRECT,
    ));
    provider.set_auto_login(Some("alice"));

    let code_for = |client: &'static str| {
        let provider = provider.clone();
        async move {
            let response = Browser::default()
                .get(&authorize_url(
                    &provider,
                    &authorize_params(&[("client_id", client)]),
                ))
                .await;
            q(&location(&response), "code").unwrap()
        }
    };
    let form = |code: &str, extra: &[(&'static str, &'static str)]| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        form
    };
    let send = |authorization: Option<String>, form: Vec<(&'static str, String)>| {
        let provider = provider.clone();
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(&provider, authorization, &form).await
        }
    };

    // Wrong Basic secret → 401 invalid_client with a Basic challenge.
    let code = code_for(CLIENT).await;
    let (status, error, headers) = send(Some(basic(CLIENT, "wrong")), form(&code, &[])).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // client_secret_post for a client_secret_basic client → invalid_client.
    let (status, _, _) = send(
        None,
        form(&code, &[("client_id", CLIENT), ("client_secret", SECRET)]),
    )
    .await;
    assert_eq!(status, 401);

    // Form-urlencoded Basic credentials (RFC 6749 §2.3.1).
    let code = code_for("odd:id").await;
    let (status, body, _) = send(Some(basic("odd:id", "p@ss:w rd%")), form(&code, &[])).await;
    assert_eq!(status, 200, "{body}");
    let recorded = provider.token_requests().pop().unwrap();
    assert_eq!(recorded.basic_client_id.as_deref(), Some("odd:id"));
    assert_eq!(recorded.basic_client_secret.as_deref(), Some("p@ss:w rd%"));

    // client_secret_post.
    let code = code_for("post").await;
    let (status, _, _) = send(Some(basic("post", "p@ss:w rd%")), form(&code, &[])).await;
    assert_eq!(status, 401, "Basic is not the registered method");
    let (status, body, _) = send(
        None,
        form(
            &code,
            &[("client_id", "post"), ("client_secret", "p@ss:w rd%")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let recorded = provider.token_requests().pop().unwrap();
    assert!(!recorded.basic_auth);

    // Public client: client_id only; a secret is refused.
    let code = code_for("spa").await;
    let (status, _, _) = send(
        None,
        form(&code, &[("client_id", "spa"), ("client_secret", "x")]),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body, _) = send(None, form(&code, &[("client_id", "spa")])).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = send(None, form(&code, &[])).await;
    assert_eq!(status, 401, "no client_id at all");
}

#[tokio::test]
async fn id_token_alg_audience_and_lifetime_per_client() {
    let provider = provider().await;
    provider.register_client(
        ClientRegistration::confidential(CLIENT, SECRET, REDIRECT)
            .with_id_token_alg(SigningAlg::ES256)
            .with_access_token_audience("https://api.example.test"),
    );
    provider.set_access_token_lifetime(60);
    let tokens = quick_tokens(&provider, "carol").await;
    assert_eq!(tokens["expires_in"], 60);
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(header_of(id_token)["kid"], "ec1-ES256");
    let claims = verify_jwt(&provider, id_token, Algorithm::ES256, CLIENT)
        .await
        .unwrap();
    assert_eq!(
        claims["at_hash"],
        expected_at_hash(tokens["access_token"].as_str().unwrap())
    );
    let access = tokens["access_token"].as_str().unwrap();
    let at = verify_jwt(
        &provider,
        access,
        Algorithm::RS256,
        "https://api.example.test",
    )
    .await
    .unwrap();
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        60
    );

    // Expired access tokens fail at UserInfo.
    provider.set_access_token_lifetime(-10);
    let tokens = quick_tokens(&provider, "carol").await;
    let response = userinfo(&provider, tokens["access_token"].as_str()).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn id_token_mutations_and_signing_knobs() {
    let provider = provider().await;
    provider.mutate_id_token(|claims, header| {
        claims.insert("iss".into(), "https://evil.example".into());
        claims.insert("extra".into(), json!({"x": 1}));
        header.insert("typ".into(), "at+jwt".into());
        header.remove("kid");
    });
    let tokens = quick_tokens(&provider, "dave").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(claims_of(id_token)["iss"], "https://evil.example");
    assert_eq!(claims_of(id_token)["extra"], json!({"x": 1}));
    assert_eq!(header_of(id_token)["typ"], "at+jwt");
    assert!(header_of(id_token).get("kid").is_none());
    // Mutations apply to refresh ID tokens too.
    let (_, refreshed) = refresh(&provider, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        claims_of(refreshed["id_token"].as_str().unwrap())["iss"],
        "https://evil.example"
    );
    provider.clear_mutations();
    let tokens = quick_tokens(&provider, "dave").await;
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["iss"],
        provider.issuer()
    );

    // Foreign key and tampered signature: do not verify against the JWKS.
    for how in [
        IdTokenSigning::ForeignKey,
        IdTokenSigning::TamperedSignature,
    ] {
        provider.sign_id_token_with(how.clone());
        let tokens = quick_tokens(&provider, "dave").await;
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(header_of(id_token)["kid"], "rsa1-RS256");
        assert!(
            verify_jwt(&provider, id_token, Algorithm::RS256, CLIENT)
                .await
                .is_err(),
            "{how:?}"
        );
    }

    // alg none, with and without a signature part.
    provider.sign_id_token_with(IdTokenSigning::None("NONE".to_owned()));
    let id_token = quick_tokens(&provider, "dave").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header_of(&id_token)["alg"], "NONE");
    assert!(id_token.ends_with('.'));
    provider.sign_id_token_with(IdTokenSigning::NoneWithSignature("none".to_owned()));
    let id_token = quick_tokens(&provider, "dave").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header_of(&id_token)["alg"], "none");
    assert!(!id_token.ends_with('.'));

    // HS256 with a given secret (key confusion uses the RSA public key).
    let pem = provider.rsa_public_key_pem();
    provider.sign_id_token_with(IdTokenSigning::Hs256(pem.clone()));
    let id_token = quick_tokens(&provider, "dave").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header_of(&id_token)["alg"], "HS256");
    assert_eq!(header_of(&id_token)["kid"], "rsa1-RS256");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[CLIENT]);
    decode::<Value>(&id_token, &DecodingKey::from_secret(&pem), &validation).unwrap();

    provider.sign_id_token_with(IdTokenSigning::Normal);
    let id_token = quick_tokens(&provider, "dave").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    verify_jwt(&provider, &id_token, Algorithm::RS256, CLIENT)
        .await
        .unwrap();
}

#[tokio::test]
async fn nonce_override_and_ignore_pkce() {
    let provider = provider().await;
    provider.set_nonce_override(Some("attacker-nonce".to_owned()));
    let tokens = quick_tokens(&provider, "eve").await;
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["nonce"],
        "attacker-nonce"
    );
    provider.set_nonce_override(None);

    // Downgrade: no PKCE at all is accepted, and any verifier too.
    provider.ignore_pkce(true);
    let response = Browser::default()
        .get(&authorize_url(
            &provider,
            &authorize_params(&[("code_challenge", ""), ("code_challenge_method", "")]),
        ))
        .await;
    let code = q(&location(&response), "code").unwrap();
    let (status, _) = redeem(&provider, &code, &"z".repeat(50)).await;
    assert_eq!(status, 200);

    // An attacker's code, injected: redeemed without PKCE checks.
    let code = provider.issue_code(CLIENT, REDIRECT, "attacker", Some("their-nonce"), CHALLENGE);
    let (status, tokens) = redeem(&provider, &code, &"q".repeat(43)).await;
    assert_eq!(status, 200);
    let claims = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "attacker");
    assert_eq!(claims["nonce"], "their-nonce");

    // Honest again: the attacker's code fails PKCE.
    provider.ignore_pkce(false);
    let code = provider.issue_code(CLIENT, REDIRECT, "attacker", None, CHALLENGE);
    let (status, error) = redeem(&provider, &code, &"q".repeat(43)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn token_response_knobs() {
    let provider = provider().await;
    provider.mutate_token_response(|body| {
        body.remove("id_token");
        body.insert("token_type".into(), "mac".into());
        body.insert("error".into(), "server_error".into());
    });
    let tokens = quick_tokens(&provider, "frank").await;
    assert!(tokens.get("id_token").is_none());
    assert_eq!(tokens["token_type"], "mac");
    assert_eq!(tokens["error"], "server_error");
    provider.clear_mutations();

    provider.set_auto_login(Some("frank"));
    let code = || {
        let provider = provider.clone();
        async move {
            let response = Browser::default()
                .get(&authorize_url(&provider, &authorize_params(&[])))
                .await;
            q(&location(&response), "code").unwrap()
        }
    };

    provider.fail_token(Failure::Status(503));
    let code1 = code().await;
    let (status, _) = redeem(&provider, &code1, VERIFIER).await;
    assert_eq!(status, 503);

    provider.fail_token(Failure::Garbage);
    let (status, body) = redeem(&provider, &code1, VERIFIER).await;
    assert_eq!((status, body), (200, Value::Null));

    provider.fail_token(Failure::Redirect("http://127.0.0.1:9/x".to_owned()));
    let (status, _) = redeem(&provider, &code1, VERIFIER).await;
    assert_eq!(status, 302);

    // Huge pads the real answer (the code is consumed).
    provider.fail_token(Failure::Huge(2 * 1024 * 1024));
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code1.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .finish();
    let response = client()
        .post(provider.token_endpoint())
        .header("authorization", basic(CLIENT, SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), 2 * 1024 * 1024);
    let padded: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(padded["access_token"].is_string());

    // Hang: never answers (until shutdown).
    provider.fail_token(Failure::Hang);
    let code2 = code().await;
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        redeem(&provider, &code2, VERIFIER),
    )
    .await;
    assert!(hung.is_err());

    provider.fail_token(Failure::None);
    let (status, _) = redeem(&provider, &code2, VERIFIER).await;
    assert_eq!(status, 200);
    assert_eq!(provider.token_requests().len(), 7);
}

#[tokio::test]
async fn userinfo_knobs_and_revocation() {
    let provider = provider().await;
    let tokens = quick_tokens(&provider, "grace").await;
    let access = tokens["access_token"].as_str().unwrap();
    provider.mutate_userinfo(|claims| {
        claims.insert("sub".into(), "someone-else".into());
    });
    let info: Value = userinfo(&provider, Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], "someone-else");
    provider.clear_mutations();

    provider.fail_userinfo(Failure::Status(500));
    assert_eq!(userinfo(&provider, Some(access)).await.status(), 500);
    provider.fail_userinfo(Failure::None);
    assert_eq!(userinfo(&provider, Some(access)).await.status(), 200);

    // revoke_user: refresh and UserInfo fail; a new login works again.
    provider.revoke_user("grace");
    assert_eq!(userinfo(&provider, Some(access)).await.status(), 401);
    let (status, error) = refresh(&provider, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let tokens = quick_tokens(&provider, "grace").await;
    assert_eq!(
        userinfo(&provider, tokens["access_token"].as_str())
            .await
            .status(),
        200
    );
    assert_eq!(provider.userinfo_request_count(), 5);
}

#[tokio::test]
async fn callback_knobs() {
    let provider = provider().await;
    provider.set_auto_login(Some("heidi"));
    let callback = |params: Vec<(String, String)>| {
        let provider = provider.clone();
        async move {
            let response = Browser::default()
                .get(&authorize_url(&provider, &params))
                .await;
            location(&response)
        }
    };

    provider.set_callback_iss(CallbackIss::Omit);
    assert!(q(&callback(authorize_params(&[])).await, "iss").is_none());
    provider.set_callback_iss(CallbackIss::Value("https://other.example".to_owned()));
    assert_eq!(
        q(&callback(authorize_params(&[])).await, "iss").as_deref(),
        Some("https://other.example")
    );
    provider.set_callback_iss(CallbackIss::Correct);

    provider.set_callback_extra(vec![("state".to_owned(), "injected".to_owned())]);
    let url = callback(authorize_params(&[])).await;
    let states: Vec<String> = query(&url)
        .into_iter()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(states, ["st-123", "injected"]);
    provider.set_callback_extra(Vec::new());

    provider.set_authorization_error(Some("access_denied"), Some("<script>alert(1)</script>"));
    let url = callback(authorize_params(&[])).await;
    assert_eq!(q(&url, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        q(&url, "error_description").as_deref(),
        Some("<script>alert(1)</script>")
    );
    assert_eq!(q(&url, "state").as_deref(), Some("st-123"));
    assert!(q(&url, "code").is_none());
    provider.set_authorization_error(None, None);
    assert!(q(&callback(authorize_params(&[])).await, "code").is_some());

    // A redirect_uri with its own query keeps it.
    provider.register_client(ClientRegistration::public(
        "q",
        "http://127.0.0.1:9/cb?tenant=a",
    ));
    let url = callback(authorize_params(&[
        ("client_id", "q"),
        ("redirect_uri", "http://127.0.0.1:9/cb?tenant=a"),
    ]))
    .await;
    assert_eq!(q(&url, "tenant").as_deref(), Some("a"));
    assert!(q(&url, "code").is_some());
}

#[tokio::test]
async fn loopback_leniency_and_prompt_none_with_session() {
    let provider = TestProvider::start().await;
    provider.register_client(
        ClientRegistration::public("quickstart", "http://127.0.0.1:3000/auth/callback")
            .allow_any_loopback_redirect(true),
    );
    let mut browser = Browser::default();
    let params = authorize_params(&[
        ("client_id", "quickstart"),
        ("redirect_uri", "http://localhost:41234/auth/callback"),
    ]);
    let callback = login_via_form(&provider, &mut browser, &params, "user-1").await;
    assert!(
        callback
            .as_str()
            .starts_with("http://localhost:41234/auth/callback?code=")
    );
    // With the session, prompt=none succeeds silently.
    let mut silent = params.clone();
    silent.push(("prompt".to_owned(), "none".to_owned()));
    let url = location(&browser.get(&authorize_url(&provider, &silent)).await);
    assert!(q(&url, "code").is_some());
    // The public client redeems with client_id only.
    let (status, body, _) = token_request(
        &provider,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q(&callback, "code").unwrap()),
            ("redirect_uri", "http://localhost:41234/auth/callback"),
            ("code_verifier", VERIFIER),
            ("client_id", "quickstart"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Non-loopback hosts are still refused.
    let response = browser
        .get(&authorize_url(
            &provider,
            &authorize_params(&[
                ("client_id", "quickstart"),
                ("redirect_uri", "http://evil.example/auth/callback"),
            ]),
        ))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn end_session_variants() {
    let provider = provider().await;
    let endpoint = provider.end_session_endpoint();
    let get = |params: &[(&str, &str)]| {
        let mut url = Url::parse(&endpoint).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        async move { client().get(url.as_str()).send().await.unwrap() }
    };

    // No post_logout_redirect_uri → logged-out page, cookie cleared.
    let response = get(&[]).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(response.text().await.unwrap().contains("logged out"));

    // Unregistered post_logout_redirect_uri, or no client → 400.
    let response = get(&[
        ("client_id", CLIENT),
        ("post_logout_redirect_uri", "https://evil.example/"),
    ])
    .await;
    assert_eq!(response.status(), 400);
    let response = get(&[("post_logout_redirect_uri", LOGGED_OUT)]).await;
    assert_eq!(response.status(), 400);

    // LO-03 knobs.
    let logout = [
        ("client_id", CLIENT),
        ("post_logout_redirect_uri", LOGGED_OUT),
        ("state", "s1"),
    ];
    provider.set_logout_state(LogoutState::Omit);
    assert!(q(&location(&get(&logout).await), "state").is_none());
    provider.set_logout_state(LogoutState::Value("other".to_owned()));
    assert_eq!(
        q(&location(&get(&logout).await), "state").as_deref(),
        Some("other")
    );
    provider.set_logout_state(LogoutState::Echo);
    assert_eq!(
        q(&location(&get(&logout).await), "state").as_deref(),
        Some("s1")
    );

    // POST works too; the client can come from id_token_hint alone.
    let tokens = quick_tokens(&provider, "ivan").await;
    let form = [
        ("id_token_hint", tokens["id_token"].as_str().unwrap()),
        ("post_logout_redirect_uri", LOGGED_OUT),
    ];
    let response = Browser::default().post_form(&endpoint, &owned(&form)).await;
    assert!(location(&response).as_str().starts_with(LOGGED_OUT));
    // A hint for another client than client_id → 400.
    let form = [
        ("id_token_hint", tokens["id_token"].as_str().unwrap()),
        ("client_id", "someone-else"),
    ];
    let response = Browser::default().post_form(&endpoint, &owned(&form)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(provider.end_session_requests().len(), 8);
}

#[tokio::test]
async fn discovery_advertises_the_authorization_server() {
    let provider = TestProvider::start().await;
    let doc = provider.discovery_document();
    let issuer = provider.issuer();
    assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/userinfo"));
    assert_eq!(doc["end_session_endpoint"], format!("{issuer}/logout"));
    assert_eq!(
        doc["authorization_endpoint"],
        provider.authorization_endpoint()
    );
    assert_eq!(doc["token_endpoint"], provider.token_endpoint());
    assert_eq!(
        doc["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        provider.device_authorization_endpoint()
    );
    assert_eq!(doc["revocation_endpoint"], provider.revocation_endpoint());
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    let served: HashMap<String, Value> = client()
        .get(provider.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["userinfo_endpoint"], doc["userinfo_endpoint"]);
}
