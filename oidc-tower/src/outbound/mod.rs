//! Outbound calls with a service token (OAuth 2.0 client credentials, RFC 6749 §4.4).
//!
//! [`OutboundAuthLayer`] wraps an HTTP *client* service (hyper-util's legacy `Client`,
//! reqwest through a tower adapter, or any `Service<http::Request<B>>`): every request gets
//! `Authorization: Bearer <token>` from a [`ServiceClient`](oidc_core::flow::ServiceClient),
//! which caches the token and renews it before it expires (single-flight; see
//! [`oidc_core::flow::client_credentials`]).
//!
//! | situation | what the layer does |
//! |---|---|
//! | cached token fresh | sends it; no request to the provider |
//! | token at its renewal time | renews it (one token request for all concurrent callers), then sends |
//! | the caller set an `Authorization` header | replaces it: the upstream only ever sees the service token |
//! | upstream answers 401 | renews the token (unless another call already did) and sends the request **once** more; a second 401 is returned as it is |
//! | upstream answers anything else (403, 5xx…) | returned as it is, no retry |
//! | no token obtainable | [`OutboundError::Token`], the upstream is not called |
//!
//! # Request bodies
//!
//! The retry sends the same request again, so the body must be replayable: the layer requires
//! `B: Clone` and keeps one clone of each request until the first answer arrives. That is
//! cheap for the bodies clients normally send (`Full<Bytes>`, `Empty<Bytes>`, `String`,
//! `Vec<u8>`; `Bytes` clones share the buffer). A streaming body is not `Clone`: collect it
//! first (with a size limit of your choice) or call without the layer.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, header};
//! use oidc_core::Provider;
//! use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
//! use oidc_tower::outbound::OutboundAuthLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let op = oidc_testing::TestProvider::start().await;
//! # op.register_client(oidc_testing::ClientRegistration::confidential(
//! #     "reports", "s3cret", "http://127.0.0.1/unused"));
//! # let issuer = op.issuer();
//! let provider = Provider::builder(issuer).build()?;
//! let client = ServiceClient::new(provider, "reports", "s3cret");
//! let layer = OutboundAuthLayer::new(
//!     client,
//!     ServiceTokenRequest::new().with_resource("https://api.example.test"),
//! );
//!
//! // Stands in for hyper_util::client::legacy::Client or another HTTP client service.
//! let upstream = service_fn(|req: Request<String>| async move {
//!     let bearer = req.headers()[header::AUTHORIZATION].to_str().unwrap_or_default().to_owned();
//!     Ok::<_, Infallible>(Response::new(bearer))
//! });
//! let api = ServiceBuilder::new().layer(layer).service(upstream);
//!
//! let res = api.oneshot(Request::new(String::new())).await?;
//! assert!(res.body().starts_with("Bearer "));
//! # Ok(())
//! # }
//! ```
//!
//! # On behalf of the user
//!
//! [`OnBehalfOfLayer`] calls the upstream *as the signed-in user* rather than as this service.
//! The handler puts the user's access token into the request extensions as a [`UserToken`]
//! (from [`LoginSession::access_token`](crate::login::LoginSession::access_token), or from the
//! [`PresentedToken`](crate::PresentedToken) of a [`BearerAuthLayer`](crate::BearerAuthLayer)
//! built with [`keep_presented_token(true)`](crate::BearerAuthLayer::keep_presented_token)),
//! and the layer sends:
//!
//! - [`OnBehalfOfLayer::exchange`]: a token obtained by token exchange (RFC 8693) with a
//!   [`TokenExchanger`](oidc_core::flow::TokenExchanger): issued by the provider for the
//!   upstream's audience, carrying the user's `sub`; cached per user and request (see
//!   [`oidc_core::flow::token_exchange`]). The recommended mode.
//! - [`OnBehalfOfLayer::forward`]: the user's token itself. Opt-in and weaker: the upstream
//!   sees a token with its original audience (this application), so it must accept tokens
//!   not meant for it, and could replay them wherever they are accepted.
//!
//! | situation | exchange | forward |
//! |---|---|---|
//! | no [`UserToken`] in the request | [`OutboundError::NoUserToken`], upstream not called | same |
//! | the caller set an `Authorization` header | replaced | replaced |
//! | exchange refused (`invalid_grant`: the user's token is expired or revoked…) | [`OutboundError::Token`], upstream not called | — |
//! | upstream answers 401 | one fresh exchange (bypassing the cache), one retry; a second 401 is returned | returned as it is, no retry |
//! | anything else | returned as it is | returned as it is |
//!
//! The [`UserToken`] extension is removed from the request before the HTTP client sees it.
//! Bodies must be `Clone`, as above.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, header};
//! use oidc_core::Provider;
//! use oidc_core::flow::{ExchangeRequest, Secret, TokenExchanger};
//! use oidc_tower::outbound::{OnBehalfOfLayer, UserToken};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let op = oidc_testing::TestProvider::start().await;
//! # op.register_client(oidc_testing::ClientRegistration::confidential(
//! #     "app", "s3cret", "http://127.0.0.1/unused"));
//! # let users_token = op.issue_access_token("app", "ada");
//! # let issuer = op.issuer();
//! let provider = Provider::builder(issuer).build()?;
//! let exchanger = TokenExchanger::new(provider, "app", "s3cret");
//! let layer = OnBehalfOfLayer::exchange(
//!     exchanger,
//!     ExchangeRequest::new().with_audience("https://orders.example.test"),
//! );
//! let upstream = service_fn(|req: Request<String>| async move {
//!     let bearer = req.headers()[header::AUTHORIZATION].to_str().unwrap_or_default().to_owned();
//!     Ok::<_, Infallible>(Response::new(bearer))
//! });
//! let orders = ServiceBuilder::new().layer(layer).service(upstream);
//!
//! // In a handler: the user's token from the login session or the bearer layer.
//! let mut request = Request::new(String::new());
//! request.extensions_mut().insert(UserToken::from(Secret::new(users_token.clone())));
//! let res = orders.oneshot(request).await?;
//! assert!(res.body().starts_with("Bearer "));
//! assert_ne!(res.body(), &format!("Bearer {users_token}"));
//! # Ok(())
//! # }
//! ```
//!
//! # Security
//!
//! The `Authorization` value is marked sensitive (`HeaderValue::set_sensitive`: HTTP/2
//! never-indexed, hidden from `Debug`); the token never appears in errors or logs. Point the
//! layer only at the services the token is meant for (its `resource`/audience): every request
//! through it carries the token, whatever its URL.

mod layer;
mod on_behalf_of;
mod service;

pub use self::layer::OutboundAuthLayer;
pub use self::on_behalf_of::{OnBehalfOf, OnBehalfOfLayer, UserToken};
pub use self::service::{OutboundAuth, OutboundError};
