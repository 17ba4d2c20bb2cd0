use std::marker::PhantomData;
use std::sync::Arc;

use oidc_core::{AccessTokenVerifier, AdditionalClaims};
use tower_layer::Layer;

use super::BearerAuth;
use crate::error::Challenge;
use crate::response::DefaultRejection;

/// Protects a service with bearer tokens. The layer is its own builder.
///
/// `C` is the application's claim type inserted as [`Claims<C>`](oidc_core::Claims) (default:
/// the payload as a JSON object); `R` builds the response for refused requests.
///
/// See the [module docs](crate::bearer) for an example.
#[must_use]
pub struct BearerAuthLayer<C = AdditionalClaims, R = DefaultRejection> {
    pub(crate) verifier: AccessTokenVerifier,
    pub(crate) realm: Challenge,
    pub(crate) rejection: R,
    pub(crate) allow_anonymous: bool,
    pub(crate) keep_token: bool,
    pub(crate) claims: PhantomData<fn() -> C>,
}

impl BearerAuthLayer {
    /// A layer that verifies tokens with `verifier`, with realm `"api"` and the RFC 6750
    /// [`DefaultRejection`].
    ///
    /// The verifier may stand for several issuers
    /// ([`AccessTokenVerifier::any_of`]); readiness probes then use
    /// [`AccessTokenVerifier::readiness`] to cover all of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use oidc_core::{AccessTokenVerifier, Provider};
    /// use oidc_tower::BearerAuthLayer;
    ///
    /// let tenant = |realm: &str| -> Result<AccessTokenVerifier, oidc_core::error::ConfigError> {
    ///     let issuer = format!("https://id.example.com/realms/{realm}");
    ///     let provider = Provider::builder(issuer).build()?;
    ///     Ok(AccessTokenVerifier::new(provider, "https://api.example.com"))
    /// };
    /// let verifier = AccessTokenVerifier::any_of([tenant("acme")?, tenant("globex")?])?;
    /// let layer = BearerAuthLayer::new(verifier);
    /// # Ok::<_, oidc_core::error::ConfigError>(())
    /// ```
    pub fn new(verifier: AccessTokenVerifier) -> Self {
        Self {
            verifier,
            realm: crate::error::default_realm(),
            rejection: DefaultRejection,
            allow_anonymous: false,
            keep_token: false,
            claims: PhantomData,
        }
    }
}

impl<C, R> BearerAuthLayer<C, R> {
    /// Sets the `realm` of `WWW-Authenticate` challenges. The default value is `"api"`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
    /// # let verifier = oidc_core::AccessTokenVerifier::new(p, "api");
    /// let layer = oidc_tower::BearerAuthLayer::new(verifier).with_realm("orders");
    /// ```
    pub fn with_realm(mut self, realm: impl AsRef<str>) -> Self {
        self.realm = self.realm.with_realm(Arc::from(realm.as_ref()));
        self
    }

    /// Names the resource's RFC 9728 metadata document in every `WWW-Authenticate` challenge
    /// of this layer (`resource_metadata="…"`, RFC 9728 §5.1), and in the 403s of the
    /// [`RequireLayer`](crate::RequireLayer)s behind it, so that a client that knows only the
    /// API's URL (an MCP client, say) finds the authorization server. Serve the document with
    /// [`ProtectedResource`](crate::resource_metadata::ProtectedResource). No attribute by
    /// default.
    ///
    /// # Examples
    ///
    /// ```
    /// use oidc_tower::resource_metadata::ProtectedResource;
    /// # let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
    /// # let verifier = oidc_core::AccessTokenVerifier::new(p, "https://api.example.com");
    /// let metadata = ProtectedResource::new("https://api.example.com")?
    ///     .with_authorization_server("https://id.example.com")?;
    /// let layer = oidc_tower::BearerAuthLayer::new(verifier).with_resource_metadata(&metadata);
    /// # Ok::<_, oidc_tower::resource_metadata::MetadataError>(())
    /// ```
    pub fn with_resource_metadata(
        mut self,
        metadata: &crate::resource_metadata::ProtectedResource,
    ) -> Self {
        self.realm = self
            .realm
            .with_resource_metadata(Arc::from(metadata.metadata_url()));
        self
    }

    /// Puts the verified token itself into the request extensions as a
    /// [`PresentedToken`](super::PresentedToken), for a handler that calls another API on the
    /// caller's behalf (token exchange, RFC 8693, or forwarding). Off by
    /// default: without it, the token is dropped once verified and nothing further in can
    /// leak it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
    /// # let verifier = oidc_core::AccessTokenVerifier::new(p, "api");
    /// let layer = oidc_tower::BearerAuthLayer::new(verifier).keep_presented_token(true);
    /// ```
    pub fn keep_presented_token(mut self, keep: bool) -> Self {
        self.keep_token = keep;
        self
    }

    /// Deserializes the application's claims as `C2` and inserts `Claims<C2>`. A token whose
    /// claims do not fit `C2` is refused as invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims { tenant: String }
    /// # let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
    /// # let verifier = oidc_core::AccessTokenVerifier::new(p, "api");
    /// let layer = oidc_tower::BearerAuthLayer::new(verifier).with_claims::<MyClaims>();
    /// ```
    pub fn with_claims<C2>(self) -> BearerAuthLayer<C2, R> {
        BearerAuthLayer {
            verifier: self.verifier,
            realm: self.realm,
            rejection: self.rejection,
            allow_anonymous: self.allow_anonymous,
            keep_token: self.keep_token,
            claims: PhantomData,
        }
    }

    /// Replaces the rejection: any [`OnRejection`](crate::OnRejection), including a closure
    /// `Fn(&AuthError) -> Response<B>`.
    pub fn with_rejection<R2>(self, rejection: R2) -> BearerAuthLayer<C, R2> {
        BearerAuthLayer {
            verifier: self.verifier,
            realm: self.realm,
            rejection,
            allow_anonymous: self.allow_anonymous,
            keep_token: self.keep_token,
            claims: PhantomData,
        }
    }

    /// Lets requests without bearer credentials through, without an identity: for routes open
    /// to everyone that greet a signed-in caller (`Option<Claims>` in axum). Requests that do
    /// carry credentials must still be valid: a bad token is refused with 401, never ignored.
    /// The default value is `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
    /// # let verifier = oidc_core::AccessTokenVerifier::new(p, "api");
    /// let public = oidc_tower::BearerAuthLayer::new(verifier).allow_anonymous(true);
    /// ```
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// The verifier used.
    pub fn verifier(&self) -> &AccessTokenVerifier {
        &self.verifier
    }
}

impl<C, R: Clone> Clone for BearerAuthLayer<C, R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            realm: self.realm.clone(),
            rejection: self.rejection.clone(),
            allow_anonymous: self.allow_anonymous,
            keep_token: self.keep_token,
            claims: PhantomData,
        }
    }
}

impl<C, R: std::fmt::Debug> std::fmt::Debug for BearerAuthLayer<C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("verifier", &self.verifier)
            .field("realm", &self.realm)
            .field("rejection", &self.rejection)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("keep_presented_token", &self.keep_token)
            .field("claims", &std::any::type_name::<C>())
            .finish()
    }
}

impl<S, C, R: Clone> Layer<S> for BearerAuthLayer<C, R> {
    type Service = BearerAuth<S, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::new(inner, self.clone())
    }
}
