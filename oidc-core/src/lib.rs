//! OpenID Connect relying-party core: provider discovery, a JWKS cache, access token
//! verification and the login flow.
//!
//! # Overview
//!
//! This crate holds the protocol side of the `oidc-*` crates; `oidc-tower` turns it into
//! tower layers and `oidc-axum` into extractors. Most applications use those.
//!
//! - [`Provider`]: an OpenID Provider, by issuer (discovered on first need) or configured by
//!   hand. It owns the [JWKS cache](crate::jwks) and the [HTTP client](crate::http).
//! - [`AccessTokenVerifier`]: checks a bearer token against the provider's keys and the
//!   configured audience, and returns its [`Claims`]. The [module docs](crate::verify) list
//!   every check.
//! - [`flow::OidcClient`]: the relying party of the authorization code flow with PKCE: the
//!   authorization request, the callback, ID token, refresh, UserInfo, RP-initiated and
//!   back-channel logout. The [module docs](crate::flow) list its checks.
//! - [`flow::ServiceClient`]: service tokens by the client credentials grant, cached per
//!   scopes and resource and renewed before expiry, single-flight
//!   ([`flow::client_credentials`]).
//! - [`issue::TokenIssuer`]: the application's own short-lived ES256/EdDSA tokens, with a
//!   JWKS, key rotation and revalidation of the user with the provider ([`issue`]).
//!
//! Signatures are checked with aws-lc-rs directly; no JWT library is used at run time.
//!
//! ```no_run
//! use oidc_core::{AccessTokenVerifier, Claims, Provider};
//!
//! # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let verifier = AccessTokenVerifier::new(provider, "https://api.example.com");
//!
//! let claims: Claims = verifier.verify(token).await?;
//! println!("{} may {:?}", claims.subject(), claims.scopes());
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `reqwest` | yes | the default HTTP client, [`http::ReqwestClient`] (reqwest + rustls on aws-lc-rs) |
//! | `metrics` | no | counts JWKS fetches through the `metrics` facade (`oidc_jwks_fetches_total`) |
//! | `cli` | no | command-line login: the loopback redirect, a token file, logout (`oidc_core::cli`) |
//!
//! # Security considerations
//!
//! - No I/O happens while building a provider or verifier; nothing the token says makes this
//!   crate open a connection. `jku`, `x5u`, `jwk` and `x5c` headers are ignored.
//! - The signature algorithm comes from configuration, never from the token. `none` and HMAC
//!   cannot be configured for access tokens. The default is `RS256` and `ES256`, plus `EdDSA`
//!   (Ed25519) when the provider advertises it; a published
//!   `id_token_signing_alg_values_supported` narrows any list.
//! - A `kid` that names several keys of the provider's set is refused, not resolved to the
//!   first one ([jwks](crate::jwks#several-keys-under-one-kid)).
//! - Access tokens bound to a key (a `cnf` claim: DPoP, RFC 9449, or mTLS, RFC 8705) are
//!   refused: this crate verifies bearer tokens only (RFC 9449 §7.1).
//! - Provider URLs must be `https`, except loopback hosts; the default HTTP client follows no
//!   redirects, has timeouts and caps response bodies (SSRF and resource exhaustion).
//! - Errors never contain token contents; log them freely.
//! - See [`verify`](crate::verify#security) for how ID tokens are told apart from access
//!   tokens, and when to turn on strict `at+jwt` mode.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod backoff;
pub mod claims;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
mod clock;
pub mod discovery;
pub mod error;
pub mod flow;
pub mod http;
pub mod issue;
pub mod jwks;
mod jws;
mod private_file;
mod provider;
pub mod settings;
mod url_policy;
pub mod verify;

pub use crate::algorithm::Algorithm;
pub use crate::claims::{AdditionalClaims, Claims, Identity, Scopes};
pub use crate::discovery::ProviderMetadata;
pub use crate::provider::{Provider, ProviderBuilder, Readiness};
pub use crate::verify::AccessTokenVerifier;
