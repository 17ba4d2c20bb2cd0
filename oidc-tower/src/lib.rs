//! Tower layers for OpenID Connect: browser login with server-side sessions and single logout,
//! bearer-token protection, and scope and role requirements.
//!
//! # Overview
//!
//! - [`login::LoginLayer`] logs browser users in (authorization code flow with PKCE), keeps
//!   their sessions on the server, refreshes their tokens and ends their sessions on logout,
//!   also when the provider asks (back-channel logout). See the [`login`] module.
//! - [`BearerAuthLayer`] verifies `Authorization: Bearer` tokens with an
//!   [`AccessTokenVerifier`](oidc_core::AccessTokenVerifier) and puts the verified
//!   [`Identity`](oidc_core::Identity) and [`Claims<C>`](oidc_core::Claims) into the request
//!   extensions. See the [`bearer`] module for the responses it gives.
//! - [`RequireLayer`] requires scopes or roles per route (all-of or any-of). See [`require`].
//! - [`OutboundAuthLayer`] gives an HTTP client service a cached, renewed service token
//!   (client credentials) for calls to other APIs, and retries once on a 401. See [`outbound`].
//! - [`issue::IssuerDocuments`] serves the discovery document and JWKS of the application's
//!   own token issuer ([`oidc_core::issue`]), so other services verify its tokens with
//!   [`BearerAuthLayer`]. See [`issue`].
//! - [`resource_metadata::ProtectedResource`] serves an API's RFC 9728 metadata, which the
//!   bearer layer's challenges name, so that clients (MCP clients, say) find the
//!   authorization server. See [`resource_metadata`].
//! - Refusals are responses, never service errors, so the layers fit axum's infallible stacks;
//!   [`OnRejection`] replaces the RFC 6750 [`DefaultRejection`].
//!
//! The layers are generic over request and response bodies and work with any tower HTTP
//! service: axum, tonic, hyper.
//!
//! ```
//! use oidc_core::{AccessTokenVerifier, Provider};
//! use oidc_tower::{BearerAuthLayer, RequireLayer};
//! use tower::ServiceBuilder;
//!
//! # fn main() -> Result<(), oidc_core::error::ConfigError> {
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let verifier = AccessTokenVerifier::new(provider, "https://api.example.com");
//! let stack = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(verifier))
//!     .layer(RequireLayer::scopes(["orders:write"]));
//! # let _ = stack;
//! # Ok(())
//! # }
//! ```
//!
//! # Security considerations
//!
//! - Tokens are read only from the `Authorization` header; a token in the URL query is refused
//!   with 400 so that clients stop leaking tokens into logs.
//! - When keys cannot be obtained the layer fails closed with 503 and `Retry-After`; it never
//!   lets a request through unverified and never calls the client's token invalid for the
//!   provider's outage.
//! - Rejection bodies are empty by default and never echo the token or internal errors;
//!   rejections are logged under the `oidc::rejection` target (token problems at `debug`,
//!   unavailable keys at `error`), without the token.
//!
//! # Metrics
//!
//! With the feature `metrics`, the layers report through the
//! [`metrics`](https://docs.rs/metrics) facade (install any recorder, for example
//! `metrics-exporter-prometheus`, and export it at `/metrics`):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `oidc_requests_total` | counter | `outcome`: `authenticated`, `anonymous`, `redirected`, `rejected`; `reason` (for `rejected`: `missing_token`, `invalid_request`, `invalid_token`, `insufficient_scope`, `unavailable`, `missing_layer`, `login_required`, `unauthenticated`, `store_unavailable`; for `authenticated`: `bearer` or `session`) |
//! | `oidc_request_duration_seconds` | histogram | `layer`: `bearer`, `login` |
//! | `oidc_requests_in_flight` | gauge | `layer` |
//! | `oidc_token_refreshes_total` | counter | `outcome`: `ok`, `adopted` (renewed by another instance), `refused`, `failed` |
//! | `oidc_logins_total` | counter | `outcome`: `ok`, `refused`, `failed` |
//! | `oidc_logouts_total` | counter | `kind`: `rp` (the user), `backchannel` (the provider) |
//! | `oidc_jwks_fetches_total` | counter | `outcome`: `ok`, `error` (from oidc-core) |

#[macro_use]
mod macros;

pub mod bearer;
mod document;
mod error;
mod future;
pub mod issue;
pub mod login;
mod metrics;
pub mod outbound;
pub mod require;
pub mod resource_metadata;
mod response;

// The provider guides: every Rust snippet in them is compiled (and the last one run) by
// `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/providers.md")]
mod provider_guides {}

pub use crate::bearer::{BearerAuth, BearerAuthLayer, PresentedToken};
pub use crate::error::{Anonymous, AuthError, AuthErrorKind, Realm};
pub use crate::future::{BoxResponseFuture, ResponseFuture};
pub use crate::outbound::{OnBehalfOf, OnBehalfOfLayer, OutboundAuth, OutboundAuthLayer};
pub use crate::require::{Require, RequireLayer};
pub use crate::response::{DefaultRejection, GrpcRejection, OnRejection};
