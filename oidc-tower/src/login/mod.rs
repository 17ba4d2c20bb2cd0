//! Browser login: the authorization code flow with PKCE, server-side sessions, refresh,
//! revalidation and logout.
//!
//! [`LoginLayer`] wraps an app: `.layer(login)` is the whole set-up. The layer brings its own
//! session handling (tower-sessions' session manager on the layer's store, with the cookie
//! described under "Sessions"), so there is no second layer to add and no order to get wrong.
//! It serves these routes itself, under the app URL:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /auth/login?return_to=/path` | starts a login: a new transaction in the session, 303 to the provider (`login_hint` and `prompt` pass through); with several providers, a page listing them |
//! | `GET /auth/login/{provider}` | starts a login at that provider (404 for an unknown name) |
//! | `GET /auth/callback` (the client's redirect URI) | finishes it: see below |
//! | `POST /auth/backchannel-logout` | OIDC Back-Channel Logout: the provider ends sessions by `sid` or `sub` (see below) |
//! | `POST /auth/logout` | same-origin only (`Origin`, or `Sec-Fetch-Site: same-origin`; else 403; `GET` is 405): destroys the server-side session, clears the cookie, 303 to the provider's `end_session_endpoint` with `id_token_hint`, `client_id`, `post_logout_redirect_uri` and `state` (or to `post_logout_redirect_uri` when the provider has none) |
//!
//! On every other request it loads the session. A logged-in request reaches the service with
//! the [`Identity`](oidc_core::Identity), the [`Claims`](oidc_core::Claims) (ID token and
//! UserInfo claims) and a [`LoginSession`] (with a fresh access token) in its extensions. A
//! request without a login is, by [`default_policy`], redirected (303) to the provider when it
//! is a top-level browser navigation, and answered 401 otherwise, with no transaction stored.
//! With [`LoginLayer::require_login(false)`](LoginLayer::require_login) it reaches the service
//! marked [`Anonymous`](crate::Anonymous) instead.
//!
//! # The callback
//!
//! - The transaction is found by `state` among the browser's pending ones (at most 5, each
//!   valid 10 minutes) and consumed whatever the outcome. No transaction, a malformed or
//!   duplicated parameter, a wrong RFC 9207 `iss`: **400**, no token request made. An expired
//!   transaction: **400** with a link to start again.
//! - The code is redeemed and the ID token validated ([`oidc_core::flow`]); UserInfo is
//!   fetched when the ID token lacks `email` (its `sub` must match). A failed authentication:
//!   **401**; a broken provider **502**, a silent one **504**.
//! - The login hook ([`LoginLayer::with_login_hook`]) may map the user to the app's own, or
//!   refuse (**403**).
//! - The session id is cycled (session fixation), the tokens are stored server-side, and the
//!   browser gets a bare **303** to the transaction's return-to path, with
//!   `Cache-Control: no-store` and `Referrer-Policy: no-referrer`.
//!
//! # Sessions
//!
//! The cookie (`oidc-session`, [`LoginLayer::with_cookie_name`]) carries only the session id:
//! `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and `Secure` with the `__Host-` prefix
//! when the app URL is `https`. Sessions end after the
//! idle timeout (30 min) or the absolute timeout (12 h), whatever the refreshes. Access tokens
//! are refreshed 60 s before they expire, once per session even under concurrent requests; a
//! rotated refresh token is stored at once; a refreshed ID token must keep `iss`, `sub` and
//! `aud`. Every 5 minutes the session is revalidated with the provider (a refresh, or UserInfo
//! without a refresh token); `invalid_grant` or a refused token ends it. When the provider
//! cannot be reached the session is kept and revalidated later. A session store failure
//! answers 503 (fail closed).
//!
//! # Several providers
//!
//! [`LoginLayer::with_providers`] takes any number of [`LoginProvider`]s, each a name, a
//! display name and an [`OidcClient`](oidc_core::flow::OidcClient) (issuer or manual
//! endpoints, credentials, scopes). `/auth/login` then lists them (replace the HTML with
//! [`LoginLayer::with_login_page`]), keeping `return_to`, `login_hint` and `prompt` in each
//! link, and an unauthenticated navigation is sent there. The transaction remembers the
//! issuer and redirect URI it was started with: the code is redeemed only at that provider,
//! and only when the response arrives at that provider's callback (RFC 9700 mix-up defence;
//! give each provider its own redirect URI). [`LoginSession::provider`] and the `iss` claim
//! say who authenticated the user.
//!
//! # Logout and token revocation
//!
//! After `POST /auth/logout` has ended the session, the layer revokes its refresh token and
//! then its access token at the provider (RFC 7009) when the provider has a
//! `revocation_endpoint` (discovered, or set by hand with
//! [`ProviderBuilder::with_revocation_endpoint`](oidc_core::ProviderBuilder::with_revocation_endpoint)),
//! authenticating as the client does at the token endpoint. This never delays or fails the
//! logout: it runs in the background once the answer is ready, bounded by
//! [`LoginLayer::with_revocation_timeout`] (5 s) and by at most 64 revocations at once (a
//! logout beyond that is not revoked); failures are logged without any token. A back-channel
//! logout revokes nothing: the provider ended that session itself.
//! [`LoginLayer::revoke_on_logout(false)`](LoginLayer::revoke_on_logout) turns it off.
//!
//! # A provider configured by hand
//!
//! A [`Provider`](oidc_core::Provider) configured by hand (no discovery: JWKS location,
//! authorization, token, and optionally UserInfo, end-session and revocation endpoints, see
//! [`ProviderBuilder`](oidc_core::ProviderBuilder#configured-by-hand)) works for login as a
//! discovered one does. [`LoginLayer::new`] refuses one without an authorization or token
//! endpoint ([`ConfigError::MissingEndpoint`](oidc_core::error::ConfigError::MissingEndpoint));
//! without UserInfo the claims are the ID token's, without end-session the logout is local.
//!
//! # Back-channel logout, and many instances
//!
//! At login the session is indexed by the ID token's `sid` and by `sub` in a
//! [`SessionRegistry`]. A logout token (validated as [`oidc_core::flow`] describes under
//! "Logout token checks") with `sid` ends the sessions of that provider session, one with
//! only `sub` every session of that user at that issuer. Ended sessions are
//! deleted from the store and marked in the registry, which every request checks, so that a
//! request in flight cannot write an ended session back. Register
//! `{app_url}/auth/backchannel-logout` as the client's `backchannel_logout_uri`.
//!
//! Instances of one app share sessions through a shared store
//! ([`LoginLayer::with_shared_store`]; the Redis and PostgreSQL stores of [`store`] with the
//! features `redis` and `postgres`). Through its registry one instance at a time refreshes a
//! session's tokens: the others wait (up to 15 s) and take over the stored result, so a
//! rotated refresh token is not spent twice. A refresh refused because another instance
//! already used the grant is also resolved by taking over the stored tokens rather than
//! ending the session. One narrow window remains: tower-sessions writes whole records, and a
//! request records activity in the session (at most once a minute, written at once after
//! loading it); when another instance stores refreshed tokens between that load and that
//! write, the previous tokens are written back, the next refresh fails and the session ends
//! (the user signs in again).
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use oidc_core::Provider;
//! use oidc_core::flow::OidcClient;
//! use oidc_tower::login::LoginLayer;
//! use oidc_tower::login::store::MemoryStore;
//!
//! # fn main() -> Result<(), oidc_core::error::ConfigError> {
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let client = OidcClient::new(provider, "web-app", "https://app.example.com/auth/callback")?
//!     .with_client_secret("s3cret");
//! let login = LoginLayer::new(client, "https://app.example.com")?
//!     .with_store(MemoryStore::with_max_sessions(50_000));
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "only for logged-in users" }))
//!     .layer(login);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod backchannel;
mod callback;
mod hook;
mod layer;
mod logout;
mod pages;
mod policy;
mod providers;
mod refresh;
pub mod registry;
mod service;
mod session;
mod sessions;
mod start;
pub mod store;

pub use self::hook::{HookFuture, LoginInfo, LoginRefused, OnLogin};
pub use self::layer::LoginLayer;
pub use self::policy::{Unauthenticated, default_policy};
pub use self::providers::{LoginProvider, ProviderLink};
pub use self::registry::{MemoryRegistry, SessionRegistry};
pub use self::service::Login;
pub use self::session::LoginSession;
pub use self::store::LoginStore;
