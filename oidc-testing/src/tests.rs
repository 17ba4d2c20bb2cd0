//! End-to-end tests of the provider over real HTTP.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

use crate::{Failure, SigningAlg, TestProvider};

/// A client that never follows redirects and never waits long.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

async fn get_json(url: &str) -> Value {
    let response = get(url).await;
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

async fn fetch_jwks(provider: &TestProvider) -> JwkSet {
    let response = get(&provider.jwks_uri()).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|jwk| jwk["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn validation(provider: &TestProvider, alg: SigningAlg) -> Validation {
    let mut validation = Validation::new(alg.algorithm());
    validation.set_issuer(&[provider.issuer()]);
    validation.set_audience(&["api://default"]);
    validation
}

/// Verifies `token` against the JWKS served over HTTP, as a relying party
/// would: kid lookup, key from the JWK, signature and claims.
async fn verify(
    provider: &TestProvider,
    token: &str,
    alg: SigningAlg,
) -> jsonwebtoken::errors::Result<Value> {
    let jwks = fetch_jwks(provider).await;
    let kid = decode_header(token)?.kid.unwrap();
    let jwk = jwks.find(&kid).unwrap();
    let key = DecodingKey::from_jwk(jwk)?;
    decode::<Value>(token, &key, &validation(provider, alg)).map(|data| data.claims)
}

fn decode_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn issuer_and_urls() {
    let provider = TestProvider::start().await;
    let addr = provider.addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    assert_eq!(
        provider.issuer(),
        format!("http://127.0.0.1:{}", addr.port())
    );
    assert_eq!(provider.jwks_uri(), format!("{}/jwks", provider.issuer()));
    assert_eq!(
        provider.discovery_url(),
        format!("{}/.well-known/openid-configuration", provider.issuer())
    );
    assert!(format!("{provider:?}").contains(&provider.issuer()));
}

#[tokio::test]
async fn discovery_is_served_on_both_paths_and_counted() {
    let provider = TestProvider::start().await;
    assert_eq!(provider.discovery_fetch_count(), 0);

    let doc = get_json(&provider.discovery_url()).await;
    let issuer = provider.issuer();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["jwks_uri"], provider.jwks_uri());
    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!([
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA"
        ])
    );
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("openid"))
    );
    assert_eq!(provider.discovery_fetch_count(), 1);

    let oauth = get_json(&format!("{issuer}/.well-known/oauth-authorization-server")).await;
    assert_eq!(oauth, doc);
    assert_eq!(provider.discovery_fetch_count(), 2);
    assert_eq!(provider.discovery_document(), doc);
    assert_eq!(provider.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn discovery_members_can_be_set_and_removed() {
    let provider = TestProvider::start().await;
    provider.set_discovery_member("issuer", Some(json!("https://evil.example")));
    provider.set_discovery_member("id_token_signing_alg_values_supported", None);
    provider.set_discovery_member("x-extra", Some(json!({"a": 1})));

    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(doc["issuer"], "https://evil.example");
    assert!(doc.get("id_token_signing_alg_values_supported").is_none());
    assert_eq!(doc["x-extra"], json!({"a": 1}));
    assert_eq!(doc["jwks_uri"], provider.jwks_uri());

    provider.set_discovery_member("issuer", Some(json!(provider.issuer())));
    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(doc["issuer"], provider.issuer());
}

#[tokio::test]
async fn oauth_metadata_only_answers_404_at_openid_configuration() {
    let provider = TestProvider::start().await;
    provider.serve_oauth_metadata_only(true);
    assert_eq!(get(&provider.discovery_url()).await.status(), 404);
    let oauth = get_json(&format!(
        "{}/.well-known/oauth-authorization-server",
        provider.issuer()
    ))
    .await;
    assert_eq!(oauth["issuer"], provider.issuer());
    assert_eq!(provider.discovery_fetch_count(), 2);

    provider.serve_oauth_metadata_only(false);
    assert_eq!(get(&provider.discovery_url()).await.status(), 200);
}

#[tokio::test]
async fn jwks_contains_the_expected_kids_and_algs() {
    let provider = TestProvider::start().await;
    let response = get(&provider.jwks_uri()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert_eq!(response.headers()["content-type"], "application/json");
    let jwks: Value = response.json().await.unwrap();
    assert_eq!(provider.jwks_fetch_count(), 1);
    assert_eq!(jwks, provider.public_jwks());

    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 8);
    for alg in SigningAlg::ALL {
        let kid = provider.kid(alg);
        let jwk = keys.iter().find(|jwk| jwk["kid"] == kid.as_str()).unwrap();
        assert_eq!(jwk["alg"], alg.as_str());
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none(), "private key material published");
    }
    assert_eq!(provider.kid(SigningAlg::RS256), "rsa1-RS256");
    assert_eq!(provider.kid(SigningAlg::PS512), "rsa1-PS512");
    assert_eq!(provider.kid(SigningAlg::ES256), "ec1-ES256");
    assert_eq!(provider.kid(SigningAlg::EdDSA), "ed1-EdDSA");

    // Every published JWK is usable by a standard library.
    let set: JwkSet = serde_json::from_value(jwks).unwrap();
    for jwk in &set.keys {
        DecodingKey::from_jwk(jwk).unwrap();
    }
}

#[tokio::test]
async fn signed_tokens_verify_with_the_served_jwk() {
    let provider = TestProvider::start().await;
    for alg in SigningAlg::ALL {
        let token = provider.token().alg(alg).claim("sub", "alice").sign();
        let header = decode_part(&token, 0);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["kid"], provider.kid(alg));
        assert_eq!(header["typ"], "at+jwt");
        let claims = verify(&provider, &token, alg)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["sub"], "alice");
    }
}

#[tokio::test]
async fn default_claims() {
    let provider = TestProvider::start().await;
    let builder = provider.token();
    let token = builder.sign();
    let claims = verify(&provider, &token, SigningAlg::RS256).await.unwrap();
    assert_eq!(claims, builder.claims_json());
    assert_eq!(decode_part(&token, 0), builder.header_json());
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["aud"], "api://default");
    assert_eq!(claims["client_id"], "client-1");
    assert_eq!(claims["scope"], "openid api:read");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
    assert!((now - iat).abs() <= 5);

    let other = decode_part(&provider.token().sign(), 1);
    assert_ne!(claims["jti"], other["jti"], "jti must be unique");
}

#[tokio::test]
async fn builder_edits_claims_and_header() {
    let provider = TestProvider::start().await;
    let token = provider
        .token()
        .claim("roles", json!(["admin"]))
        .without_claim("client_id")
        .scope("openid api:write")
        .audience(json!(["api://a", "api://b"]))
        .expires_in(-60)
        .header("typ", "JWT")
        .header("crit", json!(["exp"]))
        .without_header("kid")
        .sign();
    let header = decode_part(&token, 0);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "crit": ["exp"]})
    );
    let claims = decode_part(&token, 1);
    assert_eq!(claims["roles"], json!(["admin"]));
    assert!(claims.get("client_id").is_none());
    assert_eq!(claims["scope"], "openid api:write");
    assert_eq!(claims["aud"], json!(["api://a", "api://b"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap() - 60
    );

    // An expired token has a valid signature but fails validation.
    let expired = provider.token().expires_in(-3600).sign();
    let error = verify(&provider, &expired, SigningAlg::RS256)
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        &jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
}

#[tokio::test]
async fn alg_switches_kid_unless_the_kid_was_set_by_hand() {
    let provider = TestProvider::start().await;
    let header = provider.token().alg(SigningAlg::ES256).header_json();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], "ec1-ES256");

    let header = provider
        .token()
        .header("kid", "custom")
        .alg(SigningAlg::EdDSA)
        .header_json();
    assert_eq!(header["kid"], "custom");
    assert_eq!(header["alg"], "EdDSA");

    let header = provider
        .token()
        .without_header("kid")
        .alg(SigningAlg::PS256)
        .header_json();
    assert!(header.get("kid").is_none());

    // A hand-set header alg does not change the signing algorithm.
    let token = provider.token().header("alg", "RS512").sign();
    assert_eq!(decode_part(&token, 0)["alg"], "RS512");
    assert!(verify(&provider, &token, SigningAlg::RS512).await.is_err());
}

#[tokio::test]
async fn signing_kid_selects_a_committed_key() {
    let provider = TestProvider::start().await;
    let token = provider.token().signing_kid("rsa3-PS384").sign();
    assert_eq!(decode_part(&token, 0)["kid"], "rsa3-PS384");
    assert_eq!(decode_part(&token, 0)["alg"], "PS384");

    // Not published yet: unknown to a verifier until published.
    let jwks = fetch_jwks(&provider).await;
    assert!(jwks.find("rsa3-PS384").is_none());
    assert!(provider.publish_key("rsa3-PS384"));
    assert!(!provider.publish_key("no-such-kid"));
    verify(&provider, &token, SigningAlg::PS384).await.unwrap();
    // The current PS384 key did not change.
    assert_eq!(provider.kid(SigningAlg::PS384), "rsa1-PS384");
}

#[tokio::test]
#[should_panic(expected = "no test key has kid")]
async fn signing_kid_rejects_unknown_kids() {
    let provider = TestProvider::start().await;
    let _ = provider.token().signing_kid("rsa-foreign-RS256");
}

#[tokio::test]
async fn tampered_and_forged_tokens_fail_verification() {
    let provider = TestProvider::start().await;
    for alg in [
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ] {
        let builder = provider.token().alg(alg);
        verify(&provider, &builder.sign(), alg).await.unwrap();

        let tampered = builder.sign_tampered_signature();
        assert_ne!(tampered, builder.sign());
        assert!(verify(&provider, &tampered, alg).await.is_err(), "{alg}");

        let replaced = builder.sign_then_replace_claim("sub", "admin");
        assert_eq!(decode_part(&replaced, 1)["sub"], "admin");
        assert!(verify(&provider, &replaced, alg).await.is_err(), "{alg}");

        let foreign = builder.sign_with_foreign_key();
        assert_eq!(decode_part(&foreign, 0)["kid"], provider.kid(alg));
        assert!(verify(&provider, &foreign, alg).await.is_err(), "{alg}");

        // ...but it does verify with the foreign public key.
        let foreign_jwk: Jwk = serde_json::from_value(provider.foreign_public_jwk(alg)).unwrap();
        let key = DecodingKey::from_jwk(&foreign_jwk).unwrap();
        decode::<Value>(&foreign, &key, &validation(&provider, alg)).unwrap();
    }
}

#[tokio::test]
async fn hostile_none_and_hs256_tokens() {
    let provider = TestProvider::start().await;
    let builder = provider.token().claim("sub", "mallory");

    let none = builder.sign_none("none", "");
    assert!(none.ends_with('.'));
    assert_eq!(none.split('.').count(), 3);
    assert_eq!(decode_part(&none, 0)["alg"], "none");
    assert_eq!(decode_part(&none, 1)["sub"], "mallory");
    let upper = builder.sign_none("NONE", "c2ln");
    assert!(upper.ends_with(".c2ln"));
    assert_eq!(decode_part(&upper, 0)["alg"], "NONE");

    let pem = provider.rsa_public_key_pem();
    assert!(pem.starts_with(b"-----BEGIN PUBLIC KEY-----"));
    let confused = builder.sign_hs256(&pem);
    assert_eq!(decode_part(&confused, 0)["alg"], "HS256");
    assert_eq!(decode_part(&confused, 0)["kid"], "rsa1-RS256");
    // A naive verifier using the PEM as an HMAC secret would accept it.
    let mut naive = Validation::new(jsonwebtoken::Algorithm::HS256);
    naive.set_audience(&["api://default"]);
    decode::<Value>(&confused, &DecodingKey::from_secret(&pem), &naive).unwrap();
    // A correct RS256 verifier rejects it.
    assert!(
        verify(&provider, &confused, SigningAlg::RS256)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rotation_adds_a_kid_and_keeps_the_old_one() {
    let provider = TestProvider::start().await;
    let old_token = provider.token().sign();
    let old = provider.kid(SigningAlg::RS256);
    assert_eq!(old, "rsa1-RS256");

    let new = provider.rotate_key(SigningAlg::RS256);
    assert_eq!(new, "rsa2-RS256");
    assert_eq!(provider.kid(SigningAlg::RS256), new);
    // Only RS256 moved.
    assert_eq!(provider.kid(SigningAlg::PS256), "rsa1-PS256");

    let jwks = get_json(&provider.jwks_uri()).await;
    let published = kids(&jwks);
    assert_eq!(published.len(), 9);
    assert!(published.contains(&old) && published.contains(&new));

    let new_token = provider.token().sign();
    assert_eq!(decode_part(&new_token, 0)["kid"], new);
    verify(&provider, &new_token, SigningAlg::RS256)
        .await
        .unwrap();
    verify(&provider, &old_token, SigningAlg::RS256)
        .await
        .unwrap();
    assert_ne!(provider.rsa_public_key_pem(), keys_rsa1_pem());

    assert_eq!(provider.rotate_key(SigningAlg::RS256), "rsa3-RS256");
    assert_eq!(provider.rotate_key(SigningAlg::RS256), "rsa1-RS256");
    assert_eq!(provider.rotate_key(SigningAlg::ES256), "ec2-ES256");
    assert_eq!(provider.rotate_key(SigningAlg::EdDSA), "ed2-EdDSA");
    let published = kids(&provider.public_jwks());
    assert_eq!(published.len(), 12);
    assert_eq!(
        published.iter().collect::<HashSet<_>>().len(),
        12,
        "no duplicate kids"
    );
    let token = provider.token().alg(SigningAlg::EdDSA).sign();
    verify(&provider, &token, SigningAlg::EdDSA).await.unwrap();
}

fn keys_rsa1_pem() -> Vec<u8> {
    include_bytes!("../keys/TEST-ONLY-rsa1.public.pem").to_vec()
}

#[tokio::test]
async fn remove_key_unpublishes() {
    let provider = TestProvider::start().await;
    let token = provider.token().sign();
    provider.remove_key("rsa1-RS256");
    let jwks = fetch_jwks(&provider).await;
    assert!(jwks.find("rsa1-RS256").is_none());
    assert!(jwks.find("rsa1-PS256").is_some());
    assert_eq!(jwks.keys.len(), 7);
    // Still the current signer.
    assert_eq!(provider.kid(SigningAlg::RS256), "rsa1-RS256");
    assert_eq!(decode_part(&token, 0)["kid"], "rsa1-RS256");
    assert!(provider.publish_key("rsa1-RS256"));
    verify(&provider, &token, SigningAlg::RS256).await.unwrap();
}

#[tokio::test]
async fn raw_jwks_and_override() {
    let provider = TestProvider::start().await;
    let raw = [
        json!({"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AAAA"}),
        json!({"kty": "made-up", "kid": "weird"}),
        json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "bad-n", "n": "!!!", "e": "AQAB"}),
    ];
    for jwk in &raw {
        provider.add_raw_jwk(jwk.clone());
    }
    let jwks = get_json(&provider.jwks_uri()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 8 + raw.len());
    assert_eq!(&keys[8..], &raw[..]);

    provider.remove_key("weird");
    assert_eq!(kids(&provider.public_jwks()).len(), 12);
    assert!(!kids(&provider.public_jwks()).contains(&"weird".to_owned()));
    provider.clear_raw_jwks();
    assert_eq!(kids(&provider.public_jwks()).len(), 8);

    provider.set_jwks_override(Some(b"{\"keys\": 42}".to_vec()));
    let response = get(&provider.jwks_uri()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"{\"keys\": 42}");
    provider.set_jwks_override(None);
    assert_eq!(get_json(&provider.jwks_uri()).await, provider.public_jwks());
}

#[tokio::test]
async fn jwks_cache_control_is_configurable() {
    let provider = TestProvider::start().await;
    provider.set_jwks_cache_control(Some("no-store"));
    let response = get(&provider.jwks_uri()).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    provider.set_jwks_cache_control(None);
    let response = get(&provider.jwks_uri()).await;
    assert!(response.headers().get("cache-control").is_none());
}

#[tokio::test]
async fn failure_injection_per_endpoint() {
    let provider = TestProvider::start().await;
    let oauth = format!(
        "{}/.well-known/oauth-authorization-server",
        provider.issuer()
    );

    provider.fail_jwks(Failure::Status(503));
    assert_eq!(get(&provider.jwks_uri()).await.status(), 503);
    assert_eq!(get(&provider.discovery_url()).await.status(), 200);

    provider.fail_discovery(Failure::Status(500));
    assert_eq!(get(&provider.discovery_url()).await.status(), 500);
    assert_eq!(get(&oauth).await.status(), 500);
    provider.fail_discovery(Failure::Status(404));
    assert_eq!(get(&provider.discovery_url()).await.status(), 404);

    provider.fail_jwks(Failure::Garbage);
    let response = get(&provider.jwks_uri()).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());

    provider.fail_jwks(Failure::Huge(3 * 1024 * 1024));
    let response = get(&provider.jwks_uri()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 3 * 1024 * 1024);

    provider.fail_discovery(Failure::Redirect("http://127.0.0.1:9/elsewhere".to_owned()));
    let response = get(&provider.discovery_url()).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://127.0.0.1:9/elsewhere"
    );

    provider.fail_jwks(Failure::Delay(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    let jwks = get_json(&provider.jwks_uri()).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(jwks, provider.public_jwks());

    provider.fail_jwks(Failure::None);
    provider.fail_discovery(Failure::None);
    assert_eq!(get(&provider.jwks_uri()).await.status(), 200);
    assert_eq!(get(&provider.discovery_url()).await.status(), 200);

    assert_eq!(provider.jwks_fetch_count(), 5);
    assert_eq!(provider.discovery_fetch_count(), 6);
}

#[tokio::test]
async fn hang_does_not_block_other_endpoints() {
    let provider = TestProvider::start().await;
    provider.fail_jwks(Failure::Hang);

    let jwks_uri = provider.jwks_uri();
    let hanging = tokio::spawn(async move { client().get(jwks_uri).send().await });
    // Let the hanging request reach the server.
    while provider.jwks_fetch_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let doc = get_json(&provider.discovery_url()).await;
    assert_eq!(doc["issuer"], provider.issuer());

    let timed_out = tokio::time::timeout(
        Duration::from_millis(300),
        client().get(provider.jwks_uri()).send(),
    )
    .await;
    assert!(timed_out.is_err(), "a hanging JWKS must not answer");
    assert!(!hanging.is_finished());

    // Shutdown releases the hanging request with a 503, promptly.
    let started = std::time::Instant::now();
    provider.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let response = hanging.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let provider = TestProvider::start().await;
    let url = provider.discovery_url();
    let clone = provider.clone();
    assert_eq!(get(&url).await.status(), 200);
    provider.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
    // Clones still answer questions about the (stopped) provider.
    assert_eq!(clone.discovery_fetch_count(), 1);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let provider = TestProvider::start().await;
    let url = provider.discovery_url();
    let clone = provider.clone();
    drop(provider);
    assert_eq!(get(&url).await.status(), 200, "a clone is still alive");
    drop(clone);
    let mut stopped = false;
    for _ in 0..200 {
        if client().get(&url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped, "the server must stop once every handle is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_multi_thread_runtime_and_providers_are_independent() {
    let first = TestProvider::start().await;
    let second = TestProvider::start().await;
    assert_ne!(first.issuer(), second.issuer());
    first.rotate_key(SigningAlg::RS256);
    assert_eq!(second.kid(SigningAlg::RS256), "rsa1-RS256");
    let token = second.token().sign();
    verify(&second, &token, SigningAlg::RS256).await.unwrap();
    assert_eq!(first.jwks_fetch_count(), 0);
    assert_eq!(second.jwks_fetch_count(), 1);
}
