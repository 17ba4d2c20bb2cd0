//! The authorization code flow (OIDC Core 3.1) with PKCE, `state` and `nonce`; code exchange,
//! refresh, UserInfo, RP-initiated logout and back-channel logout tokens.
//!
//! [`OidcClient`] is the relying party. `openidconnect` builds the authorization request and
//! performs the token requests; its type parameters stay inside this module. ID tokens are
//! validated by this crate through the provider's shared [JWKS cache](crate::jwks), so key
//! rotation works for logins exactly as for bearer tokens.
//!
//! [`ServiceClient`] is the other kind of client: a service that obtains tokens for itself
//! with the client credentials grant (see [`client_credentials`]); it shares the token
//! request and client authentication code of [`OidcClient`].
//!
//! [`TokenExchanger`] calls a downstream API on behalf of the signed-in user: it exchanges the
//! user's access token for a token of that API (RFC 8693, see [`token_exchange`]), with the
//! client authentication and cache rules of [`ServiceClient`].
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
//! 4. When the provider ends a session on its side, it POSTs a logout token to the client's
//!    `backchannel_logout_uri` (OpenID Connect Back-Channel Logout 1.0);
//!    [`OidcClient::verify_logout_token`] checks it (see `logout_token` checks below) and
//!    returns a [`LogoutToken`] naming the provider session (`sid`) or the user (`sub`) whose
//!    sessions to end.
//!
//! # ID token checks
//!
//! Signature and algorithm as for access tokens (the client's
//! [`with_id_token_algorithms`](OidcClient::with_id_token_algorithms), by default `RS256`,
//! `ES256` and, when the provider advertises it, `EdDSA`; narrowed by the provider's
//! `id_token_signing_alg_values_supported`; a `kid` shared by several keys is refused);
//! `typ` absent or `JWT`; exact `iss`; `aud`
//! contains the client id and no untrusted audience (`azp` required with several, and equal to
//! the client id when present); `sub`; `exp` and `iat` required; `nonce` equal to the
//! transaction's; `at_hash` when present; `auth_time` when `max_age` was sent. On refresh the
//! new ID token must keep `iss`, `sub` and `aud` and not add `azp`.
//!
//! # Logout token checks
//!
//! In this order, stopping at the first failure. Every failure is a
//! [`FlowError`](crate::error::FlowError) of kind
//! [`Rejected`](crate::error::FlowErrorKind::Rejected) (BCL §2.8: answer 400), except keys that
//! cannot be obtained, which is a provider failure: the token was not checked.
//!
//! 1. Size, form, header and signature exactly as for ID tokens: the 16 KiB cap before
//!    anything is decoded; three base64url segments; no `crit`; the algorithm must be one of
//!    the client's ID token algorithms
//!    ([`with_id_token_algorithms`](OidcClient::with_id_token_algorithms)) and, when the
//!    provider publishes `id_token_signing_alg_values_supported`, one of those (§2.6 #2: "in
//!    the same way an ID Token signature is validated"). `none` and HMAC can never be
//!    configured, so a token signed with either is refused, as is a valid signature with an
//!    algorithm the client did not configure (the OIDF "wrong alg" case). The key comes from
//!    the provider's JWKS only (`jku`, `x5u`, `jwk`, `x5c` are ignored); an unknown `kid`
//!    forces at most one key set refresh per cooldown, as for every token.
//! 2. Header `typ`: absent, `JWT`, or `logout+jwt` (§2.4 recommends it; also with
//!    `application/`, in any case). Any other type, such as an access token's `at+jwt`, is
//!    refused: explicit typing keeps one kind of JWT from being replayed as another (RFC 8725
//!    §3.11).
//! 3. `iss` equals the provider's issuer exactly.
//! 4. `aud` contains the client id, and every other audience is one the client trusts
//!    ([`add_trusted_audience`](OidcClient::add_trusted_audience)), as for ID tokens (OIDC Core
//!    3.1.3.7 #3). Logout tokens carry no `azp`, so none is required with several audiences.
//! 5. `exp` and `iat` are required integers; `exp` not passed and `iat` (and `nbf`, when
//!    present) not in the future, with the client's leeway (default 60 s). §2.4 only makes
//!    `exp` recommended; this library requires it so that a captured token cannot be replayed
//!    forever (providers such as `oidc-provider` and Keycloak send it).
//! 6. `events` is a JSON object with the member
//!    `http://schemas.openid.net/event/backchannel-logout`, whose value is a JSON object
//!    (§2.6 #5; other events may sit beside it).
//! 7. No `nonce` (§2.6 #6): with the `events` check, this is what keeps an ID token from being
//!    accepted as a logout token.
//! 8. `jti` is a non-empty string (§2.4: required). The caller may remember recent `jti`s to
//!    refuse replays (§2.6 #7, optional).
//! 9. `sid`, `sub` or both are present (§2.6 #4): `sid` a non-empty string, `sub` a non-empty
//!    string of at most 255 characters.
//!
//! Other claims are ignored (§2.4). Errors name the check that failed and never carry the
//! token or its claims.
//!
//! # Errors
//!
//! Every step returns a [`FlowError`](crate::error::FlowError) whose
//! [`kind`](crate::error::FlowError::kind) maps to the answer: the callback not bound to the
//! transaction (400), a failed authentication (401), a broken provider (502) or a silent one
//! (504).

mod callback;
pub(crate) mod client;
pub mod client_credentials;
pub mod device;
pub mod grants;
mod id_token;
mod logout_token;
pub mod par;
pub mod revocation;
mod secret;
mod token_cache;
pub mod token_exchange;
mod tokens;
mod transaction;

pub use self::callback::AuthorizationResponse;
pub use self::client::{ClientAuth, OidcClient};
pub use self::client_credentials::{ServiceClient, ServiceToken, ServiceTokenRequest};
pub use self::device::{DeviceAuthorization, DeviceFlow, DevicePoll};
pub use self::grants::Grant;
pub use self::logout_token::LogoutToken;
pub use self::par::PushedAuthorization;
pub use self::revocation::{TokenRevoker, TokenTypeHint};
pub use self::secret::Secret;
pub use self::token_exchange::{
    ExchangeRequest, ExchangeTokenType, ExchangedToken, TokenExchanger,
};
pub use self::tokens::TokenSet;
pub use self::transaction::{AuthorizeOptions, Transaction, sanitize_return_to};

/// Whether `code` is an OAuth error code worth passing on: RFC 6749 A.7 characters
/// (`%x20-21 / %x23-5B / %x5D-7E`), 1 to 64 of them.
pub(crate) fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}
