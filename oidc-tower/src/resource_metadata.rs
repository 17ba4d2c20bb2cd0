//! OAuth 2.0 Protected Resource Metadata (RFC 9728): how a client that knows only an API's
//! URL finds the authorization server to get a token from. MCP clients work this way.
//!
//! [`ProtectedResource`] is the document and the tower service that serves it; give the same
//! value to [`BearerAuthLayer::with_resource_metadata`](crate::BearerAuthLayer::with_resource_metadata)
//! so that every `WWW-Authenticate` challenge of the API names it:
//!
//! ```text
//! GET /mcp                                  → 401
//!   WWW-Authenticate: Bearer realm="api", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"
//! GET /.well-known/oauth-protected-resource/mcp → 200
//!   {"resource":"https://api.example.com/mcp","authorization_servers":["https://id.example.com"],"bearer_methods_supported":["header"],…}
//! ```
//!
//! | request | response |
//! |---|---|
//! | `GET`/`HEAD` on [`ProtectedResource::path`] | 200, `application/json`, `Cache-Control: public, max-age=3600`, `Access-Control-Allow-Origin: *` |
//! | another method on that path | 405, `Allow: GET, HEAD` |
//! | any other path | 404 |
//!
//! # Decisions
//!
//! - The metadata URL is derived from the resource identifier as RFC 9728 §3.1 says: the
//!   well-known segment goes between the host and the path
//!   (`https://api.example.com/mcp` → `https://api.example.com/.well-known/oauth-protected-resource/mcp`).
//!   Serve the service on [`ProtectedResource::path`] at the origin of the resource.
//! - The resource identifier and every URL in the document are `https` (or `http` on a
//!   loopback host, for development), with no fragment and no user info. Clients must check
//!   that `resource` equals the URL they called (§3.3), so give the exact URL clients use;
//!   it should also be the audience your verifier requires.
//! - `bearer_methods_supported` is always `["header"]`: [`BearerAuthLayer`](crate::BearerAuthLayer)
//!   refuses tokens in the query or a form body.
//! - The document is public and carries no credentials, so it is served to every origin
//!   (`Access-Control-Allow-Origin: *`, no `Allow-Credentials`): browser-based clients read it
//!   before they have a token.
//!
//! # Example
//!
//! ```
//! use axum::Router;
//! use oidc_core::{AccessTokenVerifier, Provider};
//! use oidc_tower::BearerAuthLayer;
//! use oidc_tower::resource_metadata::ProtectedResource;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = ProtectedResource::new("https://api.example.com/mcp")?
//!     .with_authorization_server("https://id.example.com")?
//!     .with_scopes_supported(["tools:read", "tools:call"]);
//! let provider = Provider::builder("https://id.example.com").build()?;
//! let verifier = AccessTokenVerifier::new(provider, "https://api.example.com/mcp");
//!
//! let app: Router = Router::new()
//!     .route("/mcp", axum::routing::post(|| async { "tools" }))
//!     .layer(BearerAuthLayer::new(verifier).with_resource_metadata(&metadata))
//!     .route_service(metadata.path(), metadata.clone());
//!
//! let call = http::Request::post("/mcp").body(axum::body::Body::empty())?;
//! let res = app.clone().oneshot(call).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(
//!     res.headers()["www-authenticate"],
//!     r#"Bearer realm="api", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#,
//! );
//!
//! let get = http::Request::get(metadata.path()).body(axum::body::Body::empty())?;
//! let res = app.oneshot(get).await?;
//! assert_eq!(res.status(), 200);
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower_service::Service;

use crate::document;
use url::{Host, Url};

/// Why a [`ProtectedResource`] could not be built. It will grow: match with a wildcard arm.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A URL of the document does not parse or is not allowed (`what` names it).
    #[error("the {what} is not a usable URL: {reason}")]
    InvalidUrl {
        /// Which URL: `resource identifier`, `authorization server` or `documentation URL`.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// The metadata document of a protected resource (RFC 9728 §2) and the tower service that
/// serves it. Cheap to clone. See the [module docs](crate::resource_metadata).
#[derive(Clone, Debug)]
#[must_use]
pub struct ProtectedResource {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    resource: String,
    metadata_url: String,
    path: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
    documentation: Option<String>,
    /// The rendered document, kept in step with the fields above.
    body: String,
}

/// Parses `raw` as a URL the document may name: `https` (or `http` on a loopback host), a
/// host, no user info, no fragment.
fn checked(raw: &str, what: &'static str) -> Result<Url, MetadataError> {
    let invalid = |reason| MetadataError::InvalidUrl { what, reason };
    let url = Url::parse(raw).map_err(|_| invalid("it does not parse as an absolute URL"))?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(invalid("a host is required")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(invalid(
                "the scheme must be https (http only on a loopback host)",
            ));
        }
    }
    if url.fragment().is_some() {
        return Err(invalid("a fragment is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("user info is not allowed"));
    }
    Ok(url)
}

/// The metadata URL of `resource` (RFC 9728 §3.1) and its path with query.
fn metadata_location(resource: &Url) -> (String, String) {
    let suffix = resource.path().trim_end_matches('/');
    let mut path = format!("/.well-known/oauth-protected-resource{suffix}");
    if let Some(query) = resource.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut origin = resource.origin().ascii_serialization();
    origin.push_str(&path);
    (origin, path)
}

impl ProtectedResource {
    /// The metadata of the resource whose identifier is `resource`: the URL clients call, and
    /// the audience their tokens must carry.
    ///
    /// # Errors
    ///
    /// [`MetadataError::InvalidUrl`] for a URL that is not `https` (`http` is allowed on a
    /// loopback host), has no host, or has user info or a fragment.
    pub fn new(resource: impl AsRef<str>) -> Result<Self, MetadataError> {
        let raw = resource.as_ref();
        let url = checked(raw, "resource identifier")?;
        let (metadata_url, path) = metadata_location(&url);
        Ok(Self::from_inner(Inner {
            resource: raw.to_owned(),
            metadata_url,
            path,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
            documentation: None,
            body: String::new(),
        }))
    }

    fn from_inner(mut inner: Inner) -> Self {
        inner.body = document(&inner).to_string();
        Self {
            inner: Arc::new(inner),
        }
    }

    fn edit(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        f(&mut inner);
        Self::from_inner(inner)
    }

    /// Adds an authorization server clients may get tokens from: its issuer identifier, as in
    /// its discovery document (RFC 8414). Several may be named; the order is kept.
    ///
    /// # Errors
    ///
    /// [`MetadataError::InvalidUrl`] as for [`ProtectedResource::new`], and for an issuer
    /// with a query.
    pub fn with_authorization_server(self, issuer: impl AsRef<str>) -> Result<Self, MetadataError> {
        let raw = issuer.as_ref();
        let url = checked(raw, "authorization server")?;
        if url.query().is_some() {
            return Err(MetadataError::InvalidUrl {
                what: "authorization server",
                reason: "an issuer has no query",
            });
        }
        let issuer = raw.to_owned();
        Ok(self.edit(|inner| {
            if !inner.authorization_servers.contains(&issuer) {
                inner.authorization_servers.push(issuer);
            }
        }))
    }

    /// The scopes clients may request for this resource (`scopes_supported`). None named by
    /// default.
    pub fn with_scopes_supported<I, T>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.edit(|inner| inner.scopes_supported = scopes)
    }

    /// A name for people (`resource_name`). None by default.
    pub fn with_resource_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(|inner| inner.resource_name = Some(name))
    }

    /// A page for developers (`resource_documentation`). None by default.
    ///
    /// # Errors
    ///
    /// [`MetadataError::InvalidUrl`] as for [`ProtectedResource::new`].
    pub fn with_documentation(self, url: impl AsRef<str>) -> Result<Self, MetadataError> {
        let raw = url.as_ref();
        checked(raw, "documentation URL")?;
        let url = raw.to_owned();
        Ok(self.edit(|inner| inner.documentation = Some(url)))
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// Where the document is served: the `resource_metadata` of challenges.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// The path (with the query, if the resource identifier has one) to route the service at,
    /// on the resource's origin.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The document (RFC 9728 §2).
    pub fn document(&self) -> serde_json::Value {
        document(&self.inner)
    }

    fn respond(&self, method: &Method, path_and_query: &str) -> Response<String> {
        if path_and_query != self.inner.path {
            return document::status(StatusCode::NOT_FOUND);
        }
        let mut res = document::respond(
            method,
            "application/json",
            HeaderValue::from_static("public, max-age=3600"),
            || self.inner.body.clone(),
        );
        if res.status() == StatusCode::OK {
            res.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        res
    }
}

fn document(inner: &Inner) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert("resource".into(), inner.resource.clone().into());
    if !inner.authorization_servers.is_empty() {
        doc.insert(
            "authorization_servers".into(),
            inner.authorization_servers.clone().into(),
        );
    }
    if !inner.scopes_supported.is_empty() {
        doc.insert(
            "scopes_supported".into(),
            inner.scopes_supported.clone().into(),
        );
    }
    doc.insert("bearer_methods_supported".into(), vec!["header"].into());
    if let Some(name) = &inner.resource_name {
        doc.insert("resource_name".into(), name.clone().into());
    }
    if let Some(url) = &inner.documentation {
        doc.insert("resource_documentation".into(), url.clone().into());
    }
    serde_json::Value::Object(doc)
}

impl<B> Service<Request<B>> for ProtectedResource {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        std::future::ready(Ok(self.respond(req.method(), path)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn metadata_url_puts_the_well_known_segment_between_host_and_path() {
        let cases = [
            (
                "https://api.example.com",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://api.example.com:8443/v1/orders/",
                "https://api.example.com:8443/.well-known/oauth-protected-resource/v1/orders",
            ),
            (
                "http://127.0.0.1:3000/api?tenant=a",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource/api?tenant=a",
            ),
        ];
        for (resource, want) in cases {
            let metadata = ProtectedResource::new(resource).unwrap();
            assert_eq!(metadata.metadata_url(), want, "{resource}");
            assert!(want.ends_with(metadata.path()), "{resource}");
        }
    }

    #[test]
    fn urls_that_are_not_https_or_carry_secrets_are_refused() {
        for bad in [
            "http://api.example.com/mcp",
            "ftp://api.example.com",
            "https://user:pw@api.example.com",
            "https://api.example.com/#frag",
            "/relative",
            "data:text/plain,x",
        ] {
            assert!(
                matches!(
                    ProtectedResource::new(bad),
                    Err(MetadataError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        let metadata = ProtectedResource::new("https://api.example.com").unwrap();
        for bad in [
            "http://id.example.com",
            "https://id.example.com/?tenant=a",
            "https://id.example.com/#x",
        ] {
            assert!(
                metadata.clone().with_authorization_server(bad).is_err(),
                "{bad}"
            );
        }
        assert!(metadata.with_documentation("javascript:alert(1)").is_err());
    }

    #[test]
    fn document_names_what_was_configured_and_only_the_header_method() {
        let shared = ProtectedResource::new("https://api.example.com/mcp")
            .unwrap()
            .with_authorization_server("https://id.example.com")
            .unwrap();
        // A clone taken before a change keeps the old document.
        let before = shared.clone();
        let metadata = shared
            .with_authorization_server("https://id.example.com")
            .unwrap()
            .with_authorization_server("https://other.example.com/realms/a")
            .unwrap()
            .with_scopes_supported(["tools:read"])
            .with_resource_name("Tools")
            .with_documentation("https://docs.example.com/api")
            .unwrap();
        assert_eq!(
            metadata.document(),
            serde_json::json!({
                "resource": "https://api.example.com/mcp",
                "authorization_servers": ["https://id.example.com", "https://other.example.com/realms/a"],
                "scopes_supported": ["tools:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Tools",
                "resource_documentation": "https://docs.example.com/api",
            })
        );
        assert_eq!(
            before.document(),
            serde_json::json!({
                "resource": "https://api.example.com/mcp",
                "authorization_servers": ["https://id.example.com"],
                "bearer_methods_supported": ["header"],
            })
        );
    }
}
