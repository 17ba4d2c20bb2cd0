//! App-issued tokens: the application mints its own short-lived signed JWTs for its logged-in
//! users, and other services verify them with an ordinary
//! [`AccessTokenVerifier`](crate::AccessTokenVerifier) pointed at the application as issuer.
//!
//! # Overview
//!
//! - [`SigningKey`]: an `ES256` (P-256) or `EdDSA` (Ed25519) private key, generated with
//!   aws-lc-rs or loaded from an unencrypted PKCS#8 PEM file; its `kid` is the RFC 7638 JWK
//!   thumbprint of the public key. `Debug` never shows private material.
//! - [`TokenIssuer`]: mints tokens, [rotates](TokenIssuer::rotate) keys, and gives the
//!   public [JWKS](TokenIssuer::jwks) and a minimal
//!   [discovery document](TokenIssuer::discovery_document). `oidc-tower`'s
//!   `issue::IssuerDocuments` serves both.
//! - [`Revalidator`]: keeps each user's provider tokens (the refresh token among them)
//!   server-side and asks the provider again every interval (default 5 minutes) before a
//!   token is minted; once the provider says no, no more tokens for that login.
//!
//! ```
//! use oidc_core::Algorithm;
//! use oidc_core::issue::{MintRequest, SigningKey, TokenIssuer};
//!
//! // Generated here; `SigningKey::load_or_generate("token-key.pem", …)` keeps it across restarts.
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let issuer = TokenIssuer::builder("https://app.example.com", key)
//!     .with_default_audience("https://connector.example.com")
//!     .build()?;
//!
//! let token = issuer.mint("user-42", &MintRequest::new().with_claim("scope", "read"))?;
//! assert_eq!(token.kid(), issuer.signing_kid());
//! assert_eq!(token.token().secret().split('.').count(), 3);
//!
//! // What other services fetch: the discovery document and the public keys.
//! assert_eq!(issuer.discovery_document()["jwks_uri"], "https://app.example.com/.well-known/jwks.json");
//! assert!(issuer.jwks()["keys"][0].get("d").is_none());
//!
//! // Registered claims are the issuer's own.
//! assert!(issuer.mint("user-42", &MintRequest::new().with_claim("sub", "admin")).is_err());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! The other service verifies them with no code of its own:
//!
//! ```no_run
//! use oidc_core::{AccessTokenVerifier, Provider};
//!
//! # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let app = Provider::builder("https://app.example.com").build()?;
//! let verifier = AccessTokenVerifier::new(app, "https://connector.example.com").require_at_jwt(true);
//! let claims: oidc_core::Claims = verifier.verify(token).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # The tokens
//!
//! Header: `alg` (`ES256` or `EdDSA`), `kid`, `typ: at+jwt` (RFC 9068, so verifiers can
//! [require it](crate::AccessTokenVerifier::require_at_jwt)). Claims: `iss` (the issuer URL,
//! exactly), `sub`, `aud` (from the [`MintRequest`], or the issuer's default; one is
//! required), `iat` = `nbf` = now, `exp` = now + lifetime (default 5 minutes, at most 1
//! hour), `jti` (128 random bits), then the request's extra claims. An extra claim named like
//! a registered one (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`) is refused
//! ([`MintError::ReservedClaim`]), not merged.
//!
//! # Keys and rotation
//!
//! - [`TokenIssuer::rotate`] makes a new key the signer at once. The previous key stays in
//!   the JWKS until every token it signed has expired: lifetime plus the verifiers' leeway
//!   ([`TokenIssuerBuilder::with_leeway`], default 60 s); then it is dropped from the set.
//!   At most [`MAX_PUBLISHED_KEYS`] keys are published at once.
//! - Verifiers fetch the new key when they first see its `kid` (a key set refetch, at most
//!   once per cooldown), and stop trusting a dropped key at their next refresh of the set.
//! - Keys live in memory. A generated key is lost at restart (its tokens stop verifying
//!   when verifiers next refresh their set): use [`SigningKey::load_or_generate`] for a key
//!   file (`0600`) that survives restarts.
//!
//! # Revalidation
//!
//! A minted token says "the provider accepted this user recently". [`Revalidator::mint`]
//! makes that true:
//!
//! 1. After a login ([`OidcClient::complete`](crate::flow::OidcClient::complete)),
//!    [`Revalidator::register`] keeps the [`TokenSet`](crate::flow::TokenSet) under a key of
//!    the application's choosing. A login without a refresh token is refused: it could not
//!    be revalidated.
//! 2. Before each mint, if the last check is older than the interval (default 5 minutes),
//!    the provider is asked again: a refresh with the user's refresh token
//!    ([`OidcClient::refresh`](crate::flow::OidcClient::refresh), which also checks that the
//!    new ID token keeps `iss`, `sub` and `aud`), and UserInfo with the new access token when
//!    [required](RevalidatorBuilder::require_userinfo). A rotated refresh token replaces the
//!    old one.
//! 3. Single flight per user: concurrent mints for one user wait for one refresh and use its
//!    result. (Two refreshes with one rotated refresh token would look like a replay to the
//!    provider, which then revokes the grant.) The refresh runs in a task of its own, so a
//!    caller that goes away does not lose the rotated refresh token.
//!
//! | the provider… | minting | later attempts |
//! |---|---|---|
//! | confirms (refresh succeeds) | allowed | from this check for one interval |
//! | says no: the refresh is refused (`invalid_grant`: user disabled or deleted, grant revoked), the ID token changes, UserInfo refuses | [`RevalidationError::Refused`] | refused too, without asking the provider again, until the user logs in again ([`Revalidator::register`]) |
//! | cannot be asked (down, timeout, 5xx, `temporarily_unavailable`, a broken answer) | [`RevalidationError::Unavailable`] | refused until it answers; asked again after at most 5 s (the interval if shorter) |
//!
//! **Fail closed.** An unavailable provider is not a verdict on the user, so it does not end
//! the login; but once the interval has passed, no token is minted until the provider has
//! confirmed the user again. There is no grace period.
//!
//! # Security
//!
//! - A minted token cannot be recalled: a user disabled at the provider is refused new
//!   tokens after at most the interval, and keeps using the last token until its `exp` (plus
//!   the verifiers' leeway). The bound on access after disabling is interval + lifetime +
//!   leeway (by default 5 + 5 + 1 minutes). Keep both short.
//! - The JWKS holds public members only (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`).
//! - Give each receiving service its own audience, and verify with that audience: a token
//!   minted for one service is refused by another.
//! - Errors never carry tokens, keys or claim values.

mod error;
mod issuer;
mod key;
mod revalidate;

pub use self::error::{BuildError, KeyError, MintError, RevalidationError};
pub use self::issuer::{
    DEFAULT_LIFETIME, MAX_LIFETIME, MAX_PUBLISHED_KEYS, MintRequest, MintedToken, TokenIssuer,
    TokenIssuerBuilder,
};
pub use self::key::SigningKey;
pub use self::revalidate::{ActiveUser, DEFAULT_INTERVAL, Revalidator, RevalidatorBuilder};
