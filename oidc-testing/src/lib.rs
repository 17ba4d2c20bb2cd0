//! An in-process OpenID Provider for tests.
//!
//! `oidc-testing` starts a real HTTP server on `127.0.0.1` (an ephemeral
//! port) inside your test's tokio runtime. It serves an OpenID Connect
//! discovery document and a JWKS, signs test tokens with its keys, and lets
//! the test break it on purpose: rotate and remove keys, publish unusable
//! JWKs, rewrite the discovery document, make endpoints fail, hang, answer
//! slowly or with huge or non-JSON bodies, and build hostile tokens (`alg:
//! none`, HS256 key confusion, foreign keys, tampered signatures and
//! payloads). Use it to test an API protected by `oidc-tower` or
//! `oidc-axum` — or by any other OpenID Connect verifier — end to end.
//!
//! It is also a small authorization server for the authorization code flow
//! with PKCE: an HTML login form (any username, no password), provider
//! sessions, a token endpoint with refresh token rotation, UserInfo,
//! RP-initiated logout and back-channel logout (logout tokens POSTed to the
//! clients, recorded with their answers; hostile logout tokens on demand),
//! plus knobs that make each step misbehave (forged ID tokens, wrong
//! callback `iss`, PKCE downgrade, broken token responses, ...), for testing
//! relying parties' login flows.
//!
//! # Public test keys: never use them in production
//!
//! The provider signs with RSA-2048, EC P-256 and Ed25519 private keys that
//! are **committed to a public repository and shipped in this crate** (the
//! `keys/TEST-ONLY-*.pem` files). Anyone can sign tokens with them. Never
//! configure anything but a test to trust this provider or its keys.
//!
//! # Example
//!
//! Start a provider, point the code under test at its issuer, and give it
//! tokens:
//!
//! ```
//! use jsonwebtoken::jwk::JwkSet;
//! use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
//! use oidc_testing::{Failure, TestProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = TestProvider::start().await;
//!
//! // What a verifier does: discovery, then the JWKS.
//! let discovery: serde_json::Value =
//!     reqwest::get(provider.discovery_url()).await?.json().await?;
//! assert_eq!(discovery["issuer"], provider.issuer());
//! let jwks: JwkSet = reqwest::get(provider.jwks_uri()).await?.json().await?;
//!
//! // A valid access token, and the same token with a forged payload.
//! let builder = provider.token().claim("sub", "alice").scope("openid api:write");
//! let token = builder.sign();
//! let forged = builder.sign_then_replace_claim("sub", "admin");
//!
//! let kid = decode_header(&token)?.kid.ok_or("no kid")?;
//! let key = DecodingKey::from_jwk(jwks.find(&kid).ok_or("unknown kid")?)?;
//! let mut validation = Validation::new(Algorithm::RS256);
//! validation.set_issuer(&[provider.issuer()]);
//! validation.set_audience(&["api://default"]);
//!
//! let claims = decode::<serde_json::Value>(&token, &key, &validation)?.claims;
//! assert_eq!(claims["sub"], "alice");
//! assert!(decode::<serde_json::Value>(&forged, &key, &validation).is_err());
//!
//! // Break the JWKS endpoint and watch the verifier's reaction.
//! provider.fail_jwks(Failure::Status(503));
//! assert_eq!(reqwest::get(provider.jwks_uri()).await?.status().as_u16(), 503);
//! assert_eq!(provider.jwks_fetch_count(), 2);
//!
//! provider.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Authorization code flow
//!
//! Register the client under test, then drive the flow (here with
//! [`set_auto_login`](TestProvider::set_auto_login) instead of the form):
//!
//! ```
//! use oidc_testing::{ClientRegistration, TestProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = TestProvider::start().await;
//! let redirect_uri = "http://127.0.0.1:3000/auth/callback";
//! provider.register_client(ClientRegistration::public("app", redirect_uri));
//! provider.set_auto_login(Some("alice"));
//!
//! // PKCE pair from RFC 7636 appendix B.
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
//! let mut authorize = url::Url::parse(&provider.authorization_endpoint())?;
//! authorize.query_pairs_mut()
//!     .append_pair("client_id", "app")
//!     .append_pair("redirect_uri", redirect_uri)
//!     .append_pair("response_type", "code")
//!     .append_pair("scope", "openid email")
//!     .append_pair("state", "xyz")
//!     .append_pair("nonce", "n-1")
//!     .append_pair("code_challenge", challenge)
//!     .append_pair("code_challenge_method", "S256");
//!
//! let http = reqwest::Client::builder()
//!     .redirect(reqwest::redirect::Policy::none())
//!     .build()?;
//! let response = http.get(authorize.as_str()).send().await?;
//! assert_eq!(response.status(), 303);
//! let callback = url::Url::parse(response.headers()["location"].to_str()?)?;
//! let code = callback.query_pairs().find(|(k, _)| k == "code").ok_or("no code")?.1;
//!
//! let body = url::form_urlencoded::Serializer::new(String::new())
//!     .append_pair("grant_type", "authorization_code")
//!     .append_pair("code", &code)
//!     .append_pair("redirect_uri", redirect_uri)
//!     .append_pair("code_verifier", verifier)
//!     .append_pair("client_id", "app")
//!     .finish();
//! let tokens: serde_json::Value = http
//!     .post(provider.token_endpoint())
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(body)
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(tokens["token_type"], "Bearer");
//! assert!(tokens["id_token"].is_string() && tokens["refresh_token"].is_string());
//! assert_eq!(provider.token_requests().len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # What is served
//!
//! See [`TestProvider`] for the endpoints, the authorization server, the
//! keys and their kids, [`ClientRegistration`] for clients, [`TokenBuilder`]
//! for the default claims and the hostile tokens, [`Failure`] for failure
//! injection, and [`BackchannelDelivery`] for back-channel logout.
//!
//! The server is spawned on the runtime that calls [`TestProvider::start`],
//! so the test must keep that runtime running while the code under test
//! talks to the provider: await the requests (as with `#[tokio::test]`)
//! rather than blocking the thread on them.

#![deny(missing_docs)]
// This is test support code, yet it needs no crate-wide allowance of
// `unwrap`/`expect`/`panic`: the few deliberate, documented panics (a bad
// kid, no loopback port) are allowed item by item.

// The modules form layers; each uses only those of the layers below it, so
// no two modules use each other:
// 1. keys, failure, html, params, crypto; knobs (public knob and recording
//    types); client (registrations)
// 2. state (all mutable state of the provider)
// 3. token (signing), then provider (the `TestProvider` handle)
// 4. backchannel (logout token delivery), browser (an app's test browser), slow_client, then endpoints/ (one file per
//    endpoint, with its knobs), then server (start and shutdown)
mod backchannel;
mod browser;
mod client;
mod crypto;
mod endpoints;
mod failure;
mod html;
mod keys;
mod knobs;
mod params;
mod provider;
mod server;
pub mod slow_client;
mod state;
mod token;

pub use browser::{Browser, Page};
pub use client::{ClientRegistration, TokenEndpointAuth};
pub use endpoints::introspection::IntrospectionRequest;
pub use failure::Failure;
pub use keys::{SigningAlg, UnknownSigningAlg};
pub use knobs::TokenExchangeAnswer;
pub use knobs::{
    BackchannelDelivery, CallbackIss, IdTokenSigning, LogoutState, RecordedTokenRequest,
};
pub use params::find_param;
pub use provider::TestProvider;
pub use token::TokenBuilder;

#[cfg(test)]
mod backchannel_tests;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;
