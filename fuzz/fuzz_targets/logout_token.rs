//! Arbitrary bytes as a back-channel logout token through `OidcClient::verify_logout_token`,
//! against a provider (discovery + JWKS from memory) whose keys are the committed test keys.
//!
//! Must never panic; a token that is accepted must deserve it: a signature by the committed
//! key of RS256 or ES256, `iss` the issuer, `aud` naming the client, `events` holding the
//! back-channel member as an object, a `jti`, `sid` or `sub`, no `nonce`, and a `typ` that is
//! absent, `JWT` or `logout+jwt`.

#![no_main]

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_fuzz::{Canned, ISSUER, JWKS, block_on, clock, discovery_document, keys};
use serde_json::Value;

const CLIENT_ID: &str = "web-app";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn client() -> &'static OidcClient {
    static C: OnceLock<OidcClient> = OnceLock::new();
    C.get_or_init(|| {
        let _ = keys();
        let http = Canned::new(Some(discovery_document(ISSUER)), JWKS.as_bytes().to_vec());
        let provider = Provider::builder(ISSUER)
            .with_http_client(Arc::new(http))
            .build()
            .unwrap();
        OidcClient::new(provider, CLIENT_ID, "https://app.example.com/auth/callback")
            .unwrap()
            .with_clock(clock())
    })
}

fn segment(token: &str, index: usize) -> Value {
    let part = token
        .split('.')
        .nth(index)
        .expect("accepted: three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("accepted: base64url"))
        .expect("accepted: JSON")
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(logout) = block_on(client().verify_logout_token(token)) else {
        return;
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token without three segments");
    let header = segment(token, 0);
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => jsonwebtoken::Algorithm::RS256,
        Some("ES256") => jsonwebtoken::Algorithm::ES256,
        other => panic!("accepted alg {other:?}"),
    };
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => &keys().ec_public,
        _ => &keys().rsa_public,
    };
    let message = format!("{}.{}", parts[0], parts[1]);
    assert!(
        jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), key, alg).unwrap_or(false),
        "accepted a signature the committed key does not verify"
    );
    if let Some(typ) = header.get("typ").filter(|t| !t.is_null()) {
        let typ = typ
            .as_str()
            .expect("accepted a non-string typ")
            .to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        assert!(matches!(typ, "jwt" | "logout+jwt"), "accepted typ {typ}");
    }
    let claims = segment(token, 1);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(logout.issuer(), ISSUER);
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == CLIENT_ID,
        Value::Array(a) => a.iter().any(|v| v == CLIENT_ID),
        _ => false,
    };
    assert!(aud_ok, "accepted aud {:?}", claims["aud"]);
    assert!(
        claims["events"][EVENT].is_object(),
        "accepted events {:?}",
        claims["events"]
    );
    assert!(claims.get("nonce").is_none(), "accepted a nonce");
    assert_eq!(claims["jti"].as_str(), Some(logout.jti()));
    assert!(!logout.jti().is_empty());
    assert!(
        logout.session_id().is_some() || logout.subject().is_some(),
        "accepted neither sid nor sub"
    );
});
