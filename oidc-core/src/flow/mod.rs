//! The authorization code flow (OIDC Core 3.1) with PKCE, `state` and `nonce`; code exchange,
//! refresh, UserInfo and RP-initiated logout.
//!
//! [`OidcClient`] is the relying party. `openidconnect` builds the authorization request and
//! performs the token requests; its type parameters stay inside this module. ID tokens are
//! validated by this crate through the provider's shared [JWKS cache](crate::jwks), so key
//! rotation works for logins exactly as for bearer tokens.
//!
//! # The flow
//!
//! 1. [`OidcClient::authorize`] gives the provider URL and a [`Transaction`] (state, nonce,
//!    PKCE S256 verifier, the sanitized return-to path, the issuer). Keep the transaction
//!    server-side, bound to the browser; it is single use.
//! 2. At the callback, parse the query with [`AuthorizationResponse::from_query`] (duplicate
//!    parameters are refused), find the transaction by its `state`, and call
//!    [`OidcClient::complete`]: it checks `state` and the RFC 9207 `iss` parameter before any
//!    request to the provider, then redeems the code and validates the ID token (see
//!    `id_token` checks below).
//! 3. Keep the [`TokenSet`] server-side. [`OidcClient::refresh`] renews it;
//!    [`OidcClient::userinfo`] fetches UserInfo (its `sub` must match);
//!    [`OidcClient::end_session_url`] ends the provider session.
//!
//! # ID token checks
//!
//! Signature and algorithm as for access tokens; `typ` absent or `JWT`; exact `iss`; `aud`
//! contains the client id and no untrusted audience (`azp` required with several, and equal to
//! the client id when present); `sub`; `exp` and `iat` required; `nonce` equal to the
//! transaction's; `at_hash` when present; `auth_time` when `max_age` was sent. On refresh the
//! new ID token must keep `iss`, `sub` and `aud` and not add `azp`.
//!
//! # Errors
//!
//! Every step returns a [`FlowError`](crate::error::FlowError) whose
//! [`kind`](crate::error::FlowError::kind) maps to the answer: the callback not bound to the
//! transaction (400), a failed authentication (401), a broken provider (502) or a silent one
//! (504).

mod callback;
mod client;
mod id_token;
mod secret;
mod tokens;
mod transaction;

pub use self::callback::AuthorizationResponse;
pub use self::client::{ClientAuth, OidcClient};
pub use self::secret::Secret;
pub use self::tokens::TokenSet;
pub use self::transaction::{AuthorizeOptions, Transaction, sanitize_return_to};
