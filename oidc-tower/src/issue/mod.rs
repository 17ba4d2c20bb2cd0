//! Serving an application's own token issuer: the discovery document and the JWKS of an
//! [`oidc_core::issue::TokenIssuer`], so that other services verify its tokens with the same
//! [`BearerAuthLayer`](crate::BearerAuthLayer) they use for any provider.
//!
//! [`IssuerDocuments`] is a tower service that answers two paths, derived from the issuer
//! URL:
//!
//! | request | response |
//! |---|---|
//! | `GET`/`HEAD` `{issuer path}/.well-known/openid-configuration` | 200, `application/json`: `issuer`, `jwks_uri`, `id_token_signing_alg_values_supported`, `subject_types_supported` |
//! | `GET`/`HEAD` `{issuer path}/.well-known/jwks.json` | 200, `application/jwk-set+json`: the public keys (the signer and retired keys whose tokens can still be valid) |
//! | another method on those paths | 405, `Allow: GET, HEAD` |
//! | any other path | 404 |
//!
//! Both answers carry `Cache-Control: public, max-age=60` by default
//! ([`IssuerDocuments::with_max_age`]): `AccessTokenVerifier` refreshes the key set on that
//! schedule (60 s is its lower bound) and fetches it at once for a token whose `kid` it does
//! not know, so a rotation is picked up by the first token of the new key.
//!
//! The minting route is the application's (it decides who may get a token); see
//! `examples/token-service`.
//!
//! # Example
//!
//! ```
//! use axum::Router;
//! use oidc_core::Algorithm;
//! use oidc_core::issue::{SigningKey, TokenIssuer};
//! use oidc_tower::issue::IssuerDocuments;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TokenIssuer::builder("https://app.example.com", SigningKey::generate(Algorithm::EdDSA)?)
//!     .with_default_audience("https://connector.example.com")
//!     .build()?;
//! let documents = IssuerDocuments::new(issuer);
//! let (discovery, jwks) = (documents.discovery_path().to_owned(), documents.jwks_path().to_owned());
//! let app: Router = Router::new()
//!     .route_service(&discovery, documents.clone())
//!     .route_service(&jwks, documents);
//!
//! let request = http::Request::get("/.well-known/jwks.json").body(axum::body::Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.headers()["cache-control"], "public, max-age=60");
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use oidc_core::issue::TokenIssuer;
use tower_service::Service;

use crate::document;

/// Serves the discovery document and the JWKS of a [`TokenIssuer`]. Cheap to clone. See the
/// [module docs](crate::issue).
#[derive(Clone, Debug)]
pub struct IssuerDocuments {
    issuer: TokenIssuer,
    paths: Arc<Paths>,
    cache_control: HeaderValue,
}

#[derive(Debug)]
struct Paths {
    discovery: String,
    jwks: String,
}

/// The path of a URL (`/` for none); the whole string if it does not parse.
fn path_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned())
}

impl IssuerDocuments {
    /// Serves the documents of `issuer`.
    pub fn new(issuer: TokenIssuer) -> Self {
        let base = path_of(issuer.issuer());
        let paths = Paths {
            discovery: format!(
                "{}/.well-known/openid-configuration",
                base.trim_end_matches('/')
            ),
            jwks: path_of(issuer.jwks_uri()),
        };
        Self {
            issuer,
            paths: Arc::new(paths),
            cache_control: HeaderValue::from_static("public, max-age=60"),
        }
    }

    /// How long clients may cache the documents (`Cache-Control: public, max-age=…`). The
    /// default value is 60 s.
    ///
    /// # Security
    ///
    /// Verifiers keep a dropped key until their next refresh of the set, up to this long
    /// (and no shorter than their own minimum, 60 s for `AccessTokenVerifier`).
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
                .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=60"));
        self
    }

    /// The path of the discovery document: `{issuer path}/.well-known/openid-configuration`.
    pub fn discovery_path(&self) -> &str {
        &self.paths.discovery
    }

    /// The path of the JWKS: `{issuer path}/.well-known/jwks.json`.
    pub fn jwks_path(&self) -> &str {
        &self.paths.jwks
    }

    /// The issuer whose documents are served.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    fn respond(&self, method: &Method, path: &str) -> Response<String> {
        if path == self.paths.discovery {
            document::respond(
                method,
                "application/json",
                self.cache_control.clone(),
                || self.issuer.discovery_document().to_string(),
            )
        } else if path == self.paths.jwks {
            document::respond(
                method,
                "application/jwk-set+json",
                self.cache_control.clone(),
                || self.issuer.jwks().to_string(),
            )
        } else {
            document::status(StatusCode::NOT_FOUND)
        }
    }
}

impl<B> Service<Request<B>> for IssuerDocuments {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.respond(req.method(), req.uri().path())))
    }
}
