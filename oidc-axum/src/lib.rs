//! axum extractors for identities verified by `oidc-tower`.
//!
//! # Overview
//!
//! - [`Claims<C>`]: the verified claims (standard part plus the application's `C`);
//!   `Option<Claims<C>>` for routes open to everyone.
//! - [`Authenticated`]: the verified [`Identity`](oidc_core::Identity) alone.
//! - [`User`]: the logged-in browser user of a `LoginLayer` (claims, app user id, fresh
//!   access token); `Option<User>` on public pages.
//! - [`RequireScopes<R>`]: the claims, only when the token has every scope of the
//!   [`ScopeSet`] `R` (defined with [`scope_set!`]); 403 otherwise.
//!
//! Rejections ([`ClaimsRejection`]) are responses. A missing layer answers **500** with a
//! message that names the layer to add: it is a bug in the application, and nothing is let
//! through.
//!
//! This crate depends on `axum-core`, not `axum`. It re-exports what a router needs besides
//! the extractors ([`Provider`], [`AccessTokenVerifier`], [`OidcClient`], [`BearerAuthLayer`],
//! [`RequireLayer`], [`LoginLayer`], [`LoginProvider`]), and the two crates themselves
//! ([`oidc_core`], [`oidc_tower`]) for everything else, so that an axum app depends on
//! `oidc-axum` alone.
//!
//! # Example
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use oidc_axum::{AccessTokenVerifier, BearerAuthLayer, Claims, Provider, RequireScopes, scope_set};
//!
//! scope_set!(ApiWrite = ["api:write"]);
//!
//! async fn me(claims: Claims) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "sub": claims.subject() }))
//! }
//!
//! async fn admin(claims: RequireScopes<ApiWrite>) -> String {
//!     format!("admin {}", claims.subject())
//! }
//!
//! async fn home(user: Option<Claims>) -> String {
//!     user.map_or("hello stranger".to_owned(), |c| format!("hello {}", c.subject()))
//! }
//!
//! # fn main() -> Result<(), oidc_axum::oidc_core::error::ConfigError> {
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let verifier = AccessTokenVerifier::new(provider, "https://api.example.com");
//! let app: Router = Router::new()
//!     .route("/api/me", get(me))
//!     .route("/api/admin", get(admin))
//!     .layer(BearerAuthLayer::new(verifier))
//!     .route("/", get(home));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod extract;
mod rejection;

pub use crate::extract::{Authenticated, Claims, RequireScopes, ScopeSet, User};
pub use crate::rejection::ClaimsRejection;

/// The OpenID Connect core (discovery, keys, token verification, the login flow).
pub use oidc_core;
/// The tower layers (bearer, scope requirements, browser login).
pub use oidc_tower;

pub use oidc_core::flow::OidcClient;
pub use oidc_core::{AccessTokenVerifier, Provider};
pub use oidc_tower::login::{LoginLayer, LoginProvider};
pub use oidc_tower::{BearerAuthLayer, RequireLayer};
