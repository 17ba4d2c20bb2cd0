//! Turning an [`AuthError`] into a response: replaceable.

use http::{HeaderValue, Response, header};

use crate::error::AuthError;

/// Builds the response for a refused request.
///
/// Implemented by [`DefaultRejection`] and by every `Fn(&AuthError) -> Response<B> + Clone`,
/// so a closure can replace the default.
///
/// # Examples
///
/// ```
/// use http::Response;
/// use oidc_tower::{AuthError, BearerAuthLayer};
/// # fn verifier() -> oidc_core::AccessTokenVerifier {
/// #     let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
/// #     oidc_core::AccessTokenVerifier::new(p, "api")
/// # }
///
/// let layer = BearerAuthLayer::new(verifier()).with_rejection(|e: &AuthError| {
///     let mut res = Response::new(format!(r#"{{"error":"{}"}}"#, e.status().as_u16()));
///     *res.status_mut() = e.status();
///     res
/// });
/// ```
pub trait OnRejection<B>: Clone {
    /// The response for `error`.
    fn on_rejection(&self, error: &AuthError) -> Response<B>;
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&AuthError) -> Response<B> + Clone,
{
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        self(error)
    }
}

/// The RFC 6750 rejection: the status of [`AuthError::status`], its `WWW-Authenticate`
/// challenge, `Location` for a login redirect, `Retry-After` for 503, `Cache-Control: no-store`, an empty body, and the
/// [`AuthError`] in the response extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: Default> OnRejection<B> for DefaultRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = error.status();
        let headers = res.headers_mut();
        if let Some(challenge) = error.www_authenticate() {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(location) = error.location().and_then(|l| HeaderValue::from_str(l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if let Some(wait) = error.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.extensions_mut().insert(error.clone());
        res
    }
}

/// The rejection for gRPC services (tonic and others): a *trailers-only* gRPC answer, HTTP
/// 200 with `content-type: application/grpc`, a `grpc-status` and a fixed `grpc-message`, so
/// that a gRPC client reports the status code rather than a transport error. The
/// `WWW-Authenticate` challenge of [`DefaultRejection`] is kept as response metadata (gRPC
/// clients read it like any header), and so is `Retry-After`.
///
/// | refusal | `grpc-status` |
/// |---|---|
/// | no token, invalid token, malformed credentials (401, 400), a login needed (303) | 16 `UNAUTHENTICATED` |
/// | missing scope or role (403) | 7 `PERMISSION_DENIED` |
/// | keys unavailable (503) | 14 `UNAVAILABLE` |
/// | authentication layer missing (500), and anything else | 13 `INTERNAL` |
///
/// # Examples
///
/// ```
/// use oidc_tower::{BearerAuthLayer, GrpcRejection, RequireLayer};
/// # fn verifier() -> oidc_core::AccessTokenVerifier {
/// #     let p = oidc_core::Provider::builder("https://id.example.com").build().unwrap();
/// #     oidc_core::AccessTokenVerifier::new(p, "api")
/// # }
///
/// let bearer = BearerAuthLayer::new(verifier()).with_rejection(GrpcRejection);
/// let write = RequireLayer::scopes(["orders:write"]).with_rejection(GrpcRejection);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection;

impl<B: Default> OnRejection<B> for GrpcRejection {
    fn on_rejection(&self, error: &AuthError) -> Response<B> {
        use crate::error::AuthErrorKind::*;
        let (code, message) = match error.kind() {
            MissingToken => ("16", "no bearer token"),
            InvalidRequest => ("16", "malformed bearer credentials"),
            InvalidToken => ("16", "invalid token"),
            LoginRequired => ("16", "login required"),
            InsufficientScope => ("7", "insufficient scope"),
            Unavailable => ("14", "token keys unavailable"),
            _ => ("13", "authentication is misconfigured"),
        };
        let mut res: Response<B> = DefaultRejection.on_rejection(error);
        *res.status_mut() = http::StatusCode::OK;
        let headers = res.headers_mut();
        headers.remove(header::LOCATION);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        res
    }
}

/// Logs a rejection: token problems at debug, missing keys and misconfiguration at error.
pub(crate) fn log(error: &AuthError) {
    use crate::error::AuthErrorKind::*;
    crate::metrics::rejected(error);
    match error.kind() {
        Unavailable => {
            tracing::error!(target: "oidc::rejection", cause = ?error.verify_error(), "{error}")
        }
        MissingLayer => tracing::error!(target: "oidc::rejection", "{error}"),
        _ => tracing::debug!(target: "oidc::rejection", cause = ?error.verify_error(), "{error}"),
    }
}
