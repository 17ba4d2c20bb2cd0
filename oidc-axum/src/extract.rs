//! The extractors.

use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use oidc_core::{AdditionalClaims, Identity};

use crate::rejection::ClaimsRejection;

/// The rejection when no identity is present: 401 if a layer let the request through
/// anonymously, else 500 (no layer).
fn missing(parts: &Parts, claims_type: &'static str) -> ClaimsRejection {
    match parts.extensions.get::<oidc_tower::Anonymous>() {
        Some(anonymous) => ClaimsRejection::Unauthenticated(anonymous.error_for(parts)),
        None => ClaimsRejection::MissingLayer { claims_type },
    }
}

/// The verified claims of the request, with the application's claims as `C`.
///
/// Inserted by [`BearerAuthLayer`](oidc_tower::BearerAuthLayer) (use
/// `.with_claims::<C>()` there for a custom `C`). Dereferences to
/// [`oidc_core::Claims<C>`] and so to [`Identity`].
///
/// Without the layer, extraction fails with [`ClaimsRejection::MissingLayer`] (500); behind a
/// layer that let the request through anonymously, with
/// [`ClaimsRejection::Unauthenticated`] (401).
/// `Option<Claims<C>>` gives `None` instead, for routes open to everyone.
///
/// See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct Claims<C = AdditionalClaims>(pub oidc_core::Claims<C>);

impl<C> Deref for Claims<C> {
    type Target = oidc_core::Claims<C>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<oidc_core::Claims<C>>()
            .cloned()
            .map(Claims)
            .ok_or_else(|| missing(parts, std::any::type_name::<C>()))
    }
}

impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<oidc_core::Claims<C>>()
            .cloned()
            .map(Claims))
    }
}

/// The verified [`Identity`] of the request, whatever the layer's claim type.
///
/// Fails with [`ClaimsRejection::MissingLayer`] (500) without an authentication layer;
/// `Option<Authenticated>` gives `None` instead.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Identity);

impl Deref for Authenticated {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| missing(parts, "oidc_core::Identity"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Identity>()
            .cloned()
            .map(Authenticated))
    }
}

/// A set of scopes a handler requires, named by a type. Define one with [`scope_set!`](crate::scope_set).
pub trait ScopeSet: Send + Sync + 'static {
    /// Every one of these scopes is required.
    const SCOPES: &'static [&'static str];
}

/// The verified claims, extracted only when the token grants every scope of `R`.
///
/// Fails with [`ClaimsRejection::InsufficientScope`] otherwise: 403 with the challenge of
/// [`AuthError::insufficient_scope`](oidc_tower::AuthError::insufficient_scope), naming the
/// realm of the layer that authenticated the request, as `RequireLayer` does.
///
/// ```
/// use oidc_axum::{RequireScopes, scope_set};
///
/// scope_set!(pub ApiWrite = ["api:write"]);
///
/// async fn admin(RequireScopes(claims, ..): RequireScopes<ApiWrite>) -> String {
///     format!("hello {}", claims.subject())
/// }
/// ```
pub struct RequireScopes<R: ScopeSet, C = AdditionalClaims>(
    pub oidc_core::Claims<C>,
    pub PhantomData<R>,
);

impl<R: ScopeSet, C: std::fmt::Debug> std::fmt::Debug for RequireScopes<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequireScopes")
            .field(&self.0)
            .field(&R::SCOPES)
            .finish()
    }
}

impl<R: ScopeSet, C: Clone> Clone for RequireScopes<R, C> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<R: ScopeSet, C> Deref for RequireScopes<R, C> {
    type Target = oidc_core::Claims<C>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S, R, C> FromRequestParts<S> for RequireScopes<R, C>
where
    S: Send + Sync,
    R: ScopeSet,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Claims(claims) =
            <Claims<C> as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if R::SCOPES.iter().all(|s| claims.scopes().contains(s)) {
            Ok(Self(claims, PhantomData))
        } else {
            Err(ClaimsRejection::InsufficientScope(
                oidc_tower::AuthError::insufficient_scope(
                    &parts.extensions,
                    R::SCOPES.iter().copied(),
                    "a required scope is missing",
                ),
            ))
        }
    }
}

/// Defines a [`ScopeSet`] type: `scope_set!(pub Name = ["scope:a", "scope:b"]);`.
#[macro_export]
macro_rules! scope_set {
    ($vis:vis $name:ident = [$($scope:literal),+ $(,)?]) => {
        #[doc = concat!("Requires the scopes ", $(stringify!($scope), " ",)+ ".")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $crate::ScopeSet for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
        }
    };
}

/// The logged-in browser user: the [`LoginSession`](oidc_tower::login::LoginSession) of a
/// [`LoginLayer`](oidc_tower::login::LoginLayer), with the ID token and UserInfo claims, the
/// app's own user id from the login hook, and a fresh access token for downstream calls.
///
/// Behind a login layer that does not require login, a request without a session gets **303**
/// to the login (browser navigation) or **401**; `Option<User>` gives `None` instead. Without
/// a login layer: **500**.
#[derive(Debug, Clone)]
pub struct User(pub oidc_tower::login::LoginSession);

impl Deref for User {
    type Target = oidc_tower::login::LoginSession;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<oidc_tower::login::LoginSession>()
            .cloned()
            .map(User)
            .ok_or_else(|| missing(parts, "oidc_tower::login::LoginSession"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for User {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<oidc_tower::login::LoginSession>()
            .cloned()
            .map(User))
    }
}
