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
//! This crate depends on `axum-core`, not `axum`.
//!
//! # Example
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use oidc_axum::{Claims, RequireScopes, scope_set};
//! use oidc_core::{AccessTokenVerifier, Provider};
//! use oidc_tower::BearerAuthLayer;
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
//! # fn main() -> Result<(), oidc_core::error::ConfigError> {
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
