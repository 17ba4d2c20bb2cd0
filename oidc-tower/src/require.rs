//! Scope and role requirements per route.
//!
//! [`RequireLayer`] goes inside an authentication layer (such as
//! [`BearerAuthLayer`](crate::BearerAuthLayer)) and checks the verified
//! [`Identity`] it finds in the request extensions. A request that lacks
//! what is required gets **403** with `WWW-Authenticate: Bearer error="insufficient_scope"`
//! and, for scopes, the `scope` attribute listing what the route requires (RFC 6750 §3.1).
//! A request that an authentication layer let through anonymously gets **401** with that
//! layer's challenge. A request without any identity gets **500**: the authentication layer is
//! missing, which is a bug in the application, not the client's fault; nothing is let through.
//!
//! # Example
//!
//! ```
//! use oidc_tower::RequireLayer;
//!
//! // All of these scopes.
//! let write = RequireLayer::scopes(["api:read", "api:write"]);
//! // Any one of these roles, and also the scope.
//! let admin = RequireLayer::any_role(["admin", "owner"]).and_scopes(["api:read"]);
//! ```
//!
//! With axum, put it on a route with `route_layer` and the bearer layer around the router:
//!
//! ```ignore
//! Router::new()
//!     .route("/api/admin", get(admin).route_layer(RequireLayer::scopes(["api:write"])))
//!     .layer(BearerAuthLayer::new(verifier));
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use oidc_core::Identity;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{Anonymous, AuthError, AuthErrorKind, Challenge};
use crate::future::ResponseFuture;
use crate::response::{DefaultRejection, OnRejection, log};

#[derive(Debug, Default)]
struct Requirements {
    all_scopes: Vec<String>,
    any_scopes: Vec<String>,
    all_roles: Vec<String>,
    any_roles: Vec<String>,
}

fn strings<I: IntoIterator<Item = T>, T: Into<String>>(items: I) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

impl Requirements {
    /// `Err(description)` naming what is missing.
    fn check(&self, id: &Identity) -> Result<(), &'static str> {
        let scopes = id.scopes();
        if !self.all_scopes.iter().all(|s| scopes.contains(s)) {
            return Err("a required scope is missing");
        }
        if !self.any_scopes.is_empty() && !self.any_scopes.iter().any(|s| scopes.contains(s)) {
            return Err("none of the accepted scopes was granted");
        }
        if !self.all_roles.iter().all(|r| id.has_role(r)) {
            return Err("a required role is missing");
        }
        if !self.any_roles.is_empty() && !self.any_roles.iter().any(|r| id.has_role(r)) {
            return Err("none of the accepted roles was granted");
        }
        Ok(())
    }

    /// The scopes to name in the challenge.
    fn challenge_scopes(&self) -> Arc<[String]> {
        let mut out = self.all_scopes.clone();
        if self.all_scopes.is_empty() {
            out.extend(self.any_scopes.iter().cloned());
        }
        Arc::from(out)
    }
}

/// Requires scopes and/or roles of the verified identity. The layer is its own builder.
///
/// See the [module docs](crate::require).
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireLayer<R = DefaultRejection> {
    requirements: Arc<Requirements>,
    scopes: Arc<[String]>,
    /// The realm set with [`RequireLayer::with_realm`]; without it, the authenticating
    /// layer's.
    realm: Option<Arc<str>>,
    rejection: R,
}

impl RequireLayer {
    fn from_requirements(requirements: Requirements) -> Self {
        Self {
            scopes: requirements.challenge_scopes(),
            requirements: Arc::new(requirements),
            realm: None,
            rejection: DefaultRejection,
        }
    }

    /// Requires every one of `scopes`.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(scopes: I) -> Self {
        Self::from_requirements(Requirements {
            all_scopes: strings(scopes),
            ..Requirements::default()
        })
    }

    /// Requires at least one of `scopes`.
    pub fn any_scope<I: IntoIterator<Item = T>, T: Into<String>>(scopes: I) -> Self {
        Self::from_requirements(Requirements {
            any_scopes: strings(scopes),
            ..Requirements::default()
        })
    }

    /// Requires every one of `roles`.
    pub fn roles<I: IntoIterator<Item = T>, T: Into<String>>(roles: I) -> Self {
        Self::from_requirements(Requirements {
            all_roles: strings(roles),
            ..Requirements::default()
        })
    }

    /// Requires at least one of `roles`.
    pub fn any_role<I: IntoIterator<Item = T>, T: Into<String>>(roles: I) -> Self {
        Self::from_requirements(Requirements {
            any_roles: strings(roles),
            ..Requirements::default()
        })
    }
}

impl<R> RequireLayer<R> {
    fn update(mut self, f: impl FnOnce(&mut Requirements)) -> Self {
        let mut req = Requirements {
            all_scopes: self.requirements.all_scopes.clone(),
            any_scopes: self.requirements.any_scopes.clone(),
            all_roles: self.requirements.all_roles.clone(),
            any_roles: self.requirements.any_roles.clone(),
        };
        f(&mut req);
        self.scopes = req.challenge_scopes();
        self.requirements = Arc::new(req);
        self
    }

    /// Also requires every one of `scopes`.
    pub fn and_scopes<I: IntoIterator<Item = T>, T: Into<String>>(self, scopes: I) -> Self {
        self.update(|r| r.all_scopes.extend(strings(scopes)))
    }

    /// Also requires every one of `roles`.
    pub fn and_roles<I: IntoIterator<Item = T>, T: Into<String>>(self, roles: I) -> Self {
        self.update(|r| r.all_roles.extend(strings(roles)))
    }

    /// Sets the `realm` of the challenge. By default the challenge names the realm of the
    /// layer that authenticated the request (its [`Realm`](crate::Realm), as
    /// [`BearerAuthLayer::with_realm`](crate::BearerAuthLayer::with_realm) set it), `"api"`
    /// when that layer did not say.
    pub fn with_realm(mut self, realm: impl AsRef<str>) -> Self {
        self.realm = Some(Arc::from(realm.as_ref()));
        self
    }

    /// Replaces the rejection. See [`OnRejection`].
    pub fn with_rejection<R2>(self, rejection: R2) -> RequireLayer<R2> {
        RequireLayer {
            requirements: self.requirements,
            scopes: self.scopes,
            realm: self.realm,
            rejection,
        }
    }
}

impl<R> RequireLayer<R> {
    /// The realm of the challenge for `req`.
    ///
    /// The metadata URL comes from the authenticating layer in every case.
    fn realm<B>(&self, req: &Request<B>) -> Challenge {
        let challenge = AuthError::realm_of(req.extensions());
        match &self.realm {
            Some(realm) => challenge.with_realm(Arc::clone(realm)),
            None => challenge,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireLayer<R> {
    type Service = Require<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct Require<S, R = DefaultRejection> {
    inner: S,
    layer: RequireLayer<R>,
}

impl<S, R> Require<S, R> {
    /// Wraps `inner` with the requirements of `layer`.
    pub fn new(inner: S, layer: RequireLayer<R>) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: OnRejection<ResBody>,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let layer = &self.layer;
        let identity = req.extensions().get::<Identity>().cloned();
        let anonymous = req.extensions().get::<Anonymous>().cloned();
        let outcome = match identity.as_ref() {
            None => Err(match anonymous {
                Some(anonymous) => {
                    let (parts, body) = req.into_parts();
                    let error = anonymous.error_for(&parts);
                    req = Request::from_parts(parts, body);
                    error
                }
                None => AuthError::new(AuthErrorKind::MissingLayer, layer.realm(&req)),
            }),
            Some(id) => layer.requirements.check(id).map_err(|description| {
                AuthError::insufficient_scope_in(
                    layer.realm(&req),
                    layer.scopes.clone(),
                    description,
                )
            }),
        };
        match outcome {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(error) => {
                log(&error);
                ResponseFuture::ready(Ok(layer.rejection.on_rejection(&error)))
            }
        }
    }
}
