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
//! # What is served
//!
//! See [`TestProvider`] for the endpoints, the keys and their kids,
//! [`TokenBuilder`] for the default claims and the hostile tokens, and
//! [`Failure`] for failure injection.
//!
//! The server is spawned on the runtime that calls [`TestProvider::start`],
//! so the test must keep that runtime running while the code under test
//! talks to the provider: await the requests (as with `#[tokio::test]`)
//! rather than blocking the thread on them.

#![deny(missing_docs)]
// This is test support code, yet it needs no crate-wide allowance of
// `unwrap`/`expect`/`panic`: the few deliberate, documented panics (a bad
// kid, no loopback port) are allowed item by item.

mod failure;
mod keys;
mod provider;
mod token;

pub use failure::Failure;
pub use keys::{SigningAlg, UnknownSigningAlg};
pub use provider::TestProvider;
pub use token::TokenBuilder;

#[cfg(test)]
mod tests;
